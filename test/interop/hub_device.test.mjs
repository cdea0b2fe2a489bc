// Drives the unmodified Azure IoT Hub device SDK (azure-iot-device with azure-iot-device-mqtt,
// pinned in package.json) against the hub built into a running usher server, with the IoT Hub
// service SDK (azure-iothub) on the other side. Devices are provisioned through Usher's DPS with
// azure-iot-provisioning-device over MQTT, from enrollments made with azure-iot-provisioning-service.
//
// Run by interop_test.go, which starts the server and sets:
//   USHER_CONNECTION_STRING      the DPS service connection string; its HostName is also the device endpoint
//   USHER_HUB_CONNECTION_STRING  the hub service connection string; its HostName is the expected assignedHub
//   USHER_ID_SCOPE               the ID scope devices name
//   NODE_EXTRA_CA_CERTS          the server's CA file
//
// Expected wire behaviour: shared/spec/wire/hub-device-mqtt.md (device side, MQTT on 8883) and
// hub-service-registry.md (service side, HTTPS on 443), and shared/spec/hub-protocol.md §3-§6.
//
// Direct methods are invoked with the service SDK's Client.invokeDeviceMethod. That Client is built
// around an AMQP transport, but invokeDeviceMethod never opens it: it sends
// POST /twins/{id}/methods over the Client's REST client (azure-iothub/dist/client.js
// _invokeDeviceMethod -> dist/device_method.js invokeOn), so no AMQP listener is needed.
//
// Two SDK facts the tests live with:
// - A device only receives a desired-property push or a method request once its SUBSCRIBE has
//   been granted, and the SDK starts that subscription from an event listener without telling the
//   app when it is done. For desired properties the tests await the Twin's own
//   enableTwinDesiredPropertiesUpdates (what the listener calls; it resolves on SUBACK and does not
//   subscribe twice, azure-iot-device-mqtt/dist/mqtt_twin_client.js). For methods they retry the
//   invocation while the hub answers 404 (DeviceNotOnline until the device is subscribed,
//   hub-protocol.md §6.3), as a service application would.
// - twin.properties.reported.update() only has a callback form: it drops the promise
//   (azure-iot-device/dist/twin.js _clearCachedProperties).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import provisioningService from 'azure-iot-provisioning-service';
import provisioningDevice from 'azure-iot-provisioning-device';
import provisioningMqtt from 'azure-iot-provisioning-device-mqtt';
import symmetricKey from 'azure-iot-security-symmetric-key';
import iothub from 'azure-iothub';
import iotDevice from 'azure-iot-device';
import iotDeviceMqtt from 'azure-iot-device-mqtt';
import { requiredEnv, hostName, runIds, body, withoutMetadata } from './common.mjs';

const { ProvisioningServiceClient } = provisioningService;
const { ProvisioningDeviceClient } = provisioningDevice;
const { SymmetricKeySecurityClient } = symmetricKey;
const { Registry, Client: ServiceClient } = iothub;
const {
  Client: DeviceClient, ModuleClient, Message, SharedAccessSignature, SharedAccessSignatureAuthenticationProvider,
} = iotDevice;
const { Mqtt: DeviceMqtt } = iotDeviceMqtt;
const { Mqtt: ProvisioningMqtt } = provisioningMqtt;

const serviceConnectionString = requiredEnv('USHER_CONNECTION_STRING');
const hubConnectionString = requiredEnv('USHER_HUB_CONNECTION_STRING');
const idScope = requiredEnv('USHER_ID_SCOPE');
const dpsHost = hostName(serviceConnectionString);
const hubHost = hostName(hubConnectionString);

const dpsService = ProvisioningServiceClient.fromConnectionString(serviceConnectionString);
const registry = Registry.fromConnectionString(hubConnectionString);
const hubService = ServiceClient.fromConnectionString(hubConnectionString);

const { runPrefix, newId } = runIds('hub');
// Provisioning takes about a second per device; waits for pushes and deployments are bounded below.
const TIMEOUT = { timeout: 60_000 };
// How long a device may take to see a push, and the hub to re-evaluate a deployment.
const PUSH_WAIT_MS = 10_000;
const SETTLE_WAIT_MS = 10_000;

// plain turns SDK objects (Twin property bags carry an update function) into JSON data.
function plain(value) {
  return JSON.parse(JSON.stringify(value ?? null));
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// eventually calls check until it stops throwing or ms have passed, then rethrows its last error.
async function eventually(ms, check) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() >= deadline) {
        throw err;
      }
    }
    await sleep(250);
  }
}

// provision makes an individual symmetric-key enrollment (service-generated keys) and registers it
// over MQTT, returning the registration result and the device key.
async function provision(tag, enrollmentExtra) {
  const registrationId = newId(tag);
  await dpsService.createOrUpdateIndividualEnrollment({
    registrationId,
    attestation: { type: 'symmetricKey', symmetricKey: {} },
    provisioningStatus: 'enabled',
    ...enrollmentExtra,
  });
  const mechanism = await body(dpsService.getIndividualEnrollmentAttestationMechanism(registrationId));
  const key = mechanism?.symmetricKey?.primaryKey;
  assert.equal(typeof key, 'string', `enrollment ${registrationId} has a generated primary key`);
  const client = ProvisioningDeviceClient.create(
    dpsHost, idScope, new ProvisioningMqtt(), new SymmetricKeySecurityClient(registrationId, key),
  );
  const result = await client.register();
  assert.equal(result?.status, 'assigned', `registration of ${registrationId}: ${JSON.stringify(result)}`);
  assert.equal(result.assignedHub, hubHost, 'assignedHub is the hub connection string HostName');
  return { deviceId: result.deviceId, assignedHub: result.assignedHub, key };
}

function deviceConnectionString(host, deviceId, key) {
  return `HostName=${host};DeviceId=${deviceId};SharedAccessKey=${key}`;
}

// watch records the 'error' events an SDK object emits, which would otherwise end the process.
function watch(emitter, what) {
  const errors = [];
  emitter.on('error', (err) => errors.push(`${what}: ${err?.name}: ${err?.message}`));
  return errors;
}

// open connects a device or module client; close is added to cleanups.
async function open(client, cleanups) {
  await client.open();
  cleanups.push(() => client.close());
}

async function runCleanups(cleanups) {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch {
      // best effort: the assertion that failed matters more
    }
  }
}

// updateReported wraps the callback-only twin.properties.reported.update.
function updateReported(twin, patch) {
  return new Promise((resolve, reject) => {
    twin.properties.reported.update(patch, (err) => (err ? reject(err) : resolve()));
  });
}

// listenDesired subscribes twin to desired-property pushes and resolves once the SUBSCRIBE is
// granted. The returned next(predicate) resolves with the first event (a copy) that satisfies
// predicate from then on, or rejects after PUSH_WAIT_MS. The SDK also emits the full desired set
// when a listener is added and after every GET; predicates tell pushes apart by their content.
async function listenDesired(twin) {
  const events = [];
  const waiters = new Set();
  twin.on('properties.desired', (delta) => {
    const copy = plain(delta);
    events.push(copy);
    for (const w of waiters) {
      w(copy);
    }
  });
  await promisify(twin.enableTwinDesiredPropertiesUpdates.bind(twin))();
  return {
    events,
    next(predicate, what) {
      const seen = events.find(predicate);
      if (seen) {
        return Promise.resolve(seen);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`${what}: no desired-property event within ${PUSH_WAIT_MS} ms; events: ${JSON.stringify(events)}`));
        }, PUSH_WAIT_MS);
        function waiter(delta) {
          if (predicate(delta)) {
            clearTimeout(timer);
            waiters.delete(waiter);
            resolve(delta);
          }
        }
        waiters.add(waiter);
      });
    },
  };
}

// invokeMethod invokes a direct method, retrying while the hub answers 404 (the device has not
// subscribed to methods yet), for at most PUSH_WAIT_MS.
async function invokeMethod(deviceId, params) {
  const deadline = Date.now() + PUSH_WAIT_MS;
  for (;;) {
    try {
      return await hubService.invokeDeviceMethod(deviceId, { ...params });
    } catch (err) {
      if (err?.response?.statusCode !== 404 || Date.now() >= deadline) {
        throw err;
      }
    }
    await sleep(250);
  }
}

async function assertRefused(promise, what) {
  await assert.rejects(promise, (err) => {
    assert.equal(err?.name, 'UnauthorizedError', `${what}: want UnauthorizedError (CONNACK not authorized), got ${err?.name}: ${err?.message}`);
    return true;
  }, what);
}

test('provisioned device: twin, telemetry and direct methods over MQTT', TIMEOUT, async (t) => {
  const cleanups = [];
  const errors = [];
  let deviceId;
  let client;
  let twin;
  let desired;
  // Each step is a subtest so that one failing step still lets the others report; a step whose
  // prerequisites failed fails too.
  try {
    await t.test('provisioned over MQTT, the device connects to its assigned hub', async () => {
      const device = await provision('dev', {
        initialTwin: { tags: { environment: 'test' }, properties: { desired: { interval: 5 } } },
      });
      deviceId = device.deviceId;
      client = DeviceClient.fromConnectionString(deviceConnectionString(device.assignedHub, deviceId, device.key), DeviceMqtt);
      errors.push(watch(client, 'device client'));
      await open(client, cleanups);
    });

    await t.test('getTwin has the enrollment\'s desired properties', async () => {
      twin = await client.getTwin();
      errors.push(watch(twin, 'device twin'));
      assert.equal(twin.properties.desired.interval, 5, `desired from the enrollment's initial twin: ${JSON.stringify(plain(twin.properties.desired))}`);
      assert.equal(typeof twin.properties.desired.$version, 'number', 'desired $version');
      assert.equal(typeof twin.properties.reported.$version, 'number', 'reported $version');
    });

    await t.test('a reported update is seen by Registry.getTwin', async () => {
      await updateReported(twin, { fw: '1.2.3' });
      const serviceTwin = await body(registry.getTwin(deviceId));
      assert.equal(serviceTwin.properties?.reported?.fw, '1.2.3', `reported on the service side: ${JSON.stringify(serviceTwin.properties?.reported)}`);
    });

    await t.test('a desired change made with the twin\'s etag is pushed with its $version', async () => {
      desired = await listenDesired(twin);
      const before = twin.properties.desired.$version;
      const serviceTwin = await body(registry.getTwin(deviceId));
      await registry.updateTwin(deviceId, { properties: { desired: { interval: 10 } } }, serviceTwin.etag);
      const push = await desired.next((d) => d.interval === 10, 'desired interval 10');
      assert.equal(typeof push.$version, 'number', `push carries $version: ${JSON.stringify(push)}`);
      assert.ok(push.$version > before, `pushed $version ${push.$version} is above the GET's ${before}`);
      assert.equal(twin.properties.desired.interval, 10, 'the SDK merged the push into the twin');
    });

    await t.test('a desired removal is pushed as null', async () => {
      await registry.updateTwin(deviceId, { properties: { desired: { interval: null, mode: 'eco' } } }, '*');
      const push = await desired.next((d) => d.mode === 'eco', 'desired removal');
      assert.ok('interval' in push && push.interval === null, `the push carries interval: null: ${JSON.stringify(push)}`);
      assert.equal(twin.properties.desired.interval, undefined, 'the SDK merged the null as a deletion');
    });

    await t.test('sendEvent with system and application properties resolves on PUBACK', async () => {
      const message = new Message(JSON.stringify({ t: 21 }));
      message.messageId = `${deviceId}-msg-1`;
      message.contentType = 'application/json';
      message.contentEncoding = 'utf-8';
      message.properties.add('alert', 'false');
      await client.sendEvent(message);
    });

    await t.test('a direct method reaches the device and its answer comes back', async () => {
      const requests = [];
      client.onDeviceMethod('reboot', (request, response) => {
        requests.push({ methodName: request.methodName, payload: request.payload });
        response.send(200, { ok: true }, (err) => {
          if (err) {
            errors.push([`method response: ${err}`]);
          }
        });
      });
      const { result } = await invokeMethod(deviceId, { methodName: 'reboot', payload: { delay: 1 }, responseTimeoutInSeconds: 15 });
      assert.deepEqual(result, { status: 200, payload: { ok: true } }, 'method result');
      assert.deepEqual(requests, [{ methodName: 'reboot', payload: { delay: 1 } }], 'the device got the method once, with its payload');
    });

    await t.test('the SDK reported no errors', () => {
      assert.deepEqual(errors.flat(), [], 'SDK error events');
    });

    await t.test('after the device disconnects, a method call answers 404 DeviceNotOnline', async () => {
      await client.close();
      await eventually(SETTLE_WAIT_MS, () => assert.rejects(
        hubService.invokeDeviceMethod(deviceId, { methodName: 'reboot', payload: null, responseTimeoutInSeconds: 5 }),
        (err) => {
          assert.equal(err?.response?.statusCode, 404, `method on a disconnected device: want 404, got ${err?.response?.statusCode}: ${err}`);
          assert.match(String(err.responseBody), /DeviceNotOnline/, 'error code');
          return true;
        },
      ));
    });
  } finally {
    await runCleanups(cleanups);
  }
});

test('device connections with a wrong key or another device\'s token are refused', TIMEOUT, async () => {
  const cleanups = [];
  try {
    const a = await body(registry.create({ deviceId: newId('auth-a') }));
    const b = await body(registry.create({ deviceId: newId('auth-b') }));
    const keyA = a.authentication?.symmetricKey?.primaryKey;
    const keyB = b.authentication?.symmetricKey?.primaryKey;
    assert.ok(keyA && keyB, 'the hub generated keys for both devices');

    const wrongKey = randomBytes(32).toString('base64');
    const wrong = DeviceClient.fromConnectionString(deviceConnectionString(hubHost, a.deviceId, wrongKey), DeviceMqtt);
    watch(wrong, 'wrong-key client');
    await assertRefused(wrong.open(), 'wrong device key');

    // A valid token for device B, presented as device A (client id and username name A).
    const expiry = Math.floor(Date.now() / 1000) + 3600;
    const tokenB = SharedAccessSignature.create(hubHost, b.deviceId, keyB, expiry).toString();
    const stolen = DeviceClient.fromAuthenticationProvider(
      new SharedAccessSignatureAuthenticationProvider({ host: hubHost, deviceId: a.deviceId, sharedAccessSignature: tokenB }),
      DeviceMqtt,
    );
    watch(stolen, 'other-token client');
    await assertRefused(stolen.open(), 'token for another device');

    const unknown = DeviceClient.fromConnectionString(deviceConnectionString(hubHost, newId('unknown'), keyA), DeviceMqtt);
    watch(unknown, 'unknown-device client');
    await assertRefused(unknown.open(), 'unknown device');

    // The same device with its own key, then with its own token, connects (one at a time: a second
    // connection for the same device would take the first one over).
    const good = DeviceClient.fromConnectionString(deviceConnectionString(hubHost, a.deviceId, keyA), DeviceMqtt);
    watch(good, 'good client');
    await good.open();
    await good.close();
    const tokenA = SharedAccessSignature.create(hubHost, a.deviceId, keyA, expiry).toString();
    const own = DeviceClient.fromAuthenticationProvider(
      new SharedAccessSignatureAuthenticationProvider({ host: hubHost, deviceId: a.deviceId, sharedAccessSignature: tokenA }),
      DeviceMqtt,
    );
    watch(own, 'own-token client');
    await open(own, cleanups);
  } finally {
    await runCleanups(cleanups);
  }
});

// edgeAgentDesired is a complete $edgeAgent desired document (hub-protocol.md §5.6).
function edgeAgentDesired({ modules = {}, edgeHubEnv }) {
  return {
    schemaVersion: '1.1',
    runtime: { type: 'docker', settings: {} },
    systemModules: {
      edgeAgent: {
        type: 'docker',
        settings: { image: 'mcr.microsoft.com/azureiotedge-agent:1.5', createOptions: '{}' },
        env: { UpstreamProtocol: { value: 'Mqtt' } },
      },
      edgeHub: {
        type: 'docker',
        status: 'running',
        restartPolicy: 'always',
        settings: { image: 'mcr.microsoft.com/azureiotedge-hub:1.5', createOptions: '{}' },
        env: edgeHubEnv,
      },
    },
    modules,
  };
}

function deployment(id, priority, targetCondition, edgeAgent, routes) {
  return {
    id,
    content: {
      modulesContent: {
        $edgeAgent: { 'properties.desired': edgeAgent },
        $edgeHub: {
          'properties.desired': { schemaVersion: '1.1', routes, storeAndForwardConfiguration: { timeToLiveSecs: 7200 } },
        },
      },
    },
    targetCondition,
    priority,
  };
}

async function systemResults(configurationId) {
  const configuration = await body(registry.getConfiguration(configurationId));
  assert.equal(configuration?.id, configurationId, 'configuration id');
  return configuration.systemMetrics?.results ?? {};
}

test('IoT Edge deployments reach the $edgeAgent module twin by priority and target condition', TIMEOUT, async (t) => {
  const cleanups = [];
  try {
    // The target condition also names this run, so deployments left by other runs against the
    // same server neither outrank these nor count this run's device.
    const condition = `tags.environment='test' and tags.run='${runPrefix}'`;
    const firstAgent = edgeAgentDesired({ edgeHubEnv: { UpstreamProtocol: { value: 'Mqtt' }, OptimizeForPerformance: { value: 'false' } } });
    const first = deployment(newId('deploy-low'), 10, condition, firstAgent, {});
    await registry.addConfiguration(first);
    cleanups.push(() => registry.removeConfiguration(first.id));

    const { deviceId, assignedHub } = await provision('edge', {
      capabilities: { iotEdge: true },
      initialTwin: { tags: { environment: 'test', run: runPrefix } },
    });
    const edgeDevice = await body(registry.get(deviceId));
    assert.equal(edgeDevice.capabilities?.iotEdge, true, 'hub device is an IoT Edge device');

    const agentIdentity = await body(registry.getModule(deviceId, '$edgeAgent'));
    assert.equal(agentIdentity?.moduleId, '$edgeAgent', 'the hub created the $edgeAgent module identity');
    const agentKey = agentIdentity.authentication?.symmetricKey?.primaryKey;
    assert.equal(typeof agentKey, 'string', `$edgeAgent has a SAS key: ${JSON.stringify(agentIdentity.authentication)}`);

    const agent = ModuleClient.fromConnectionString(
      `HostName=${assignedHub};DeviceId=${deviceId};ModuleId=$edgeAgent;SharedAccessKey=${agentKey}`, DeviceMqtt,
    );
    const agentErrors = watch(agent, '$edgeAgent client');
    await open(agent, cleanups);

    // The deployment that existed when the device was provisioned is applied to it.
    const twin = await eventually(SETTLE_WAIT_MS, async () => {
      const got = await agent.getTwin();
      assert.deepEqual(withoutMetadata(plain(got.properties.desired)), firstAgent,
        '$edgeAgent desired properties are the first deployment\'s $edgeAgent content');
      return got;
    });
    watch(twin, '$edgeAgent twin');
    const firstVersion = twin.properties.desired.$version;
    assert.equal(typeof firstVersion, 'number', 'desired $version');
    assert.equal((await systemResults(first.id)).targetedCount, 1, 'first deployment targets this run\'s device');

    // A higher-priority deployment replaces the content; the module sees it pushed.
    const desired = await listenDesired(twin);
    const secondAgent = edgeAgentDesired({
      edgeHubEnv: { UpstreamProtocol: { value: 'Mqtt' } },
      modules: {
        SimulatedTemperatureSensor: {
          version: '1.0',
          type: 'docker',
          status: 'running',
          restartPolicy: 'always',
          settings: { image: 'mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.0', createOptions: '{}' },
        },
      },
    });
    const second = deployment(newId('deploy-high'), 20, condition, secondAgent, { upstream: 'FROM /messages/* INTO $upstream' });
    await registry.addConfiguration(second);
    cleanups.push(() => registry.removeConfiguration(second.id));

    let pushed = true;
    await desired.next((d) => typeof d.$version === 'number' && d.$version > firstVersion, 'second deployment').catch((err) => {
      pushed = false;
      t.diagnostic(`no desired push to $edgeAgent after the second deployment: ${err.message}`);
    });
    if (pushed) {
      // edgeAgent applies pushes to the desired document it holds; the SDK merges them the same way.
      assert.deepEqual(withoutMetadata(plain(twin.properties.desired)), secondAgent,
        `the first deployment's content with the pushed patch merged in is the second deployment's content; pushes: ${JSON.stringify(desired.events.slice(1))}`);
    }
    await eventually(SETTLE_WAIT_MS, async () => {
      const again = await agent.getTwin();
      assert.deepEqual(withoutMetadata(plain(again.properties.desired)), secondAgent,
        '$edgeAgent desired properties are the second deployment\'s $edgeAgent content (replaced, not merged)');
    });
    t.diagnostic(`second deployment ${pushed ? 'was pushed to' : 'was read (not pushed) by'} $edgeAgent`);

    const hubTwin = await body(registry.getModuleTwin(deviceId, '$edgeHub'));
    assert.deepEqual(withoutMetadata(hubTwin.properties?.desired), second.content.modulesContent.$edgeHub['properties.desired'],
      '$edgeHub desired properties are the second deployment\'s $edgeHub content');

    assert.equal((await systemResults(second.id)).targetedCount, 1, 'second deployment targets this run\'s device');
    assert.equal((await systemResults(first.id)).targetedCount, 1, 'first deployment still targets the device');

    // Un-targeting the device leaves its modules as they are.
    await registry.updateTwin(deviceId, { tags: { environment: null } }, '*');
    await eventually(SETTLE_WAIT_MS, async () => {
      assert.equal((await systemResults(second.id)).targetedCount, 0, 'second deployment no longer targets the untagged device');
    });
    assert.equal((await systemResults(first.id)).targetedCount, 0, 'first deployment no longer targets the untagged device');
    const kept = await body(registry.getModuleTwin(deviceId, '$edgeAgent'));
    assert.deepEqual(withoutMetadata(kept.properties?.desired), secondAgent, '$edgeAgent keeps the last applied content');

    assert.deepEqual(agentErrors, [], 'SDK error events');
  } finally {
    await runCleanups(cleanups);
  }
});

// queryAll pages through a twin query with nextAsTwin, passing each continuation token explicitly.
async function queryAll(sql, pageSize) {
  const query = registry.createQuery(sql, pageSize);
  const twins = [];
  let token = null;
  for (let page = 0; page < 1000; page++) {
    const { result } = await query.nextAsTwin(token);
    assert.ok(Array.isArray(result), `page ${page} is an array: ${JSON.stringify(result)}`);
    assert.ok(result.length <= pageSize, `page ${page} has ${result.length} twins, page size is ${pageSize}`);
    twins.push(...result);
    if (!query.hasMoreResults) {
      return twins;
    }
    token = query.continuationToken;
    assert.equal(typeof token, 'string', `continuation token after page ${page}`);
    assert.ok(token.length > 0, `continuation token after page ${page} is not empty`);
  }
  assert.fail('query did not end after 1000 pages');
}

test('twin query pages with continuation tokens and rejects bad SQL with 400', TIMEOUT, async () => {
  const prefix = `${runPrefix}-query`;
  const tags = [{ environment: 'test' }, { environment: 'test' }, { environment: 'prod' }, { environment: 'test' }, null, { environment: 'test' }];
  const want = [];
  for (const [i, tagSet] of tags.entries()) {
    const deviceId = `${prefix}-${i}`;
    await registry.create({ deviceId });
    if (tagSet) {
      await registry.updateTwin(deviceId, { tags: tagSet }, '*');
    }
    if (tagSet?.environment === 'test') {
      want.push(deviceId);
    }
  }

  const twins = await queryAll("SELECT * FROM devices WHERE tags.environment = 'test'", 2);
  for (const twin of twins) {
    assert.equal(twin.tags?.environment, 'test', `every result matches the WHERE: ${twin.deviceId} has tags ${JSON.stringify(twin.tags)}`);
  }
  const ids = twins.map((twin) => twin.deviceId);
  assert.equal(new Set(ids).size, ids.length, `no twin is returned twice across pages: ${ids.join(', ')}`);
  const ours = ids.filter((id) => id.startsWith(`${prefix}-`)).sort();
  assert.deepEqual(ours, want.sort(), 'exactly this run\'s tagged devices');

  await assert.rejects(registry.createQuery('SELECT * FROM devices WHERE', 2).nextAsTwin(), (err) => {
    assert.equal(err?.response?.statusCode, 400, `invalid query: want HTTP 400, got ${err?.response?.statusCode}: ${err}`);
    return true;
  });
});
