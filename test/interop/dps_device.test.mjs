// Drives the unmodified Azure IoT DPS device SDK (azure-iot-provisioning-device with its HTTP and
// MQTT transports and azure-iot-security-symmetric-key, pinned in package.json) against a running
// usher server, and checks what provisioning created with the IoT Hub service SDK (azure-iothub).
// Enrollments are made with the DPS service SDK (azure-iot-provisioning-service).
//
// Run by interop_test.go, which starts the server and sets the environment common.mjs reads:
//   USHER_CONNECTION_STRING      the DPS service connection string; its HostName is also the device endpoint
//   USHER_HUB_CONNECTION_STRING  the hub service connection string; its HostName is the expected assignedHub
//   USHER_ID_SCOPE               the ID scope devices name
//   NODE_EXTRA_CA_CERTS          the server's CA file
//
// Expected wire behaviour: shared/spec/wire/dps-https-register.md, dps-mqtt-register.md and
// hub-service-registry.md. The SDK's HTTP transport only dials port 443; its MQTT transport dials 8883.
// A token for another registration ID cannot be made with the SDK (it signs for the ID it registers),
// so that refusal is left to the Go tests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import provisioningService from 'azure-iot-provisioning-service';
import provisioningDevice from 'azure-iot-provisioning-device';
import provisioningHttp from 'azure-iot-provisioning-device-http';
import provisioningMqtt from 'azure-iot-provisioning-device-mqtt';
import symmetricKey from 'azure-iot-security-symmetric-key';
import iothub from 'azure-iothub';
import { requiredEnv, hostName, runIds, body, withoutMetadata } from './common.mjs';

const { ProvisioningServiceClient } = provisioningService;
const { ProvisioningDeviceClient } = provisioningDevice;
const { Http } = provisioningHttp;
const { Mqtt } = provisioningMqtt;
const { SymmetricKeySecurityClient } = symmetricKey;
const { Registry } = iothub;

const serviceConnectionString = requiredEnv('USHER_CONNECTION_STRING');
const hubConnectionString = requiredEnv('USHER_HUB_CONNECTION_STRING');
const idScope = requiredEnv('USHER_ID_SCOPE');
const dpsHost = hostName(serviceConnectionString);
const hubHost = hostName(hubConnectionString);

const service = ProvisioningServiceClient.fromConnectionString(serviceConnectionString);
const registry = Registry.fromConnectionString(hubConnectionString);

const { runPrefix, newId } = runIds('dev');
// Each register() takes about a second (the server answers retry-after 1); the SDK's own request
// timeout is 30 s.
const TIMEOUT = { timeout: 90_000 };

const TRANSPORTS = {
  http: () => new Http(),
  mqtt: () => new Mqtt(),
};

// deriveKey is the enrollment-group device key: base64(HMAC-SHA256(base64decode(groupKey), registrationId)).
function deriveKey(groupKey, registrationId) {
  return createHmac('sha256', Buffer.from(groupKey, 'base64')).update(registrationId, 'utf8').digest('base64');
}

function initialTwin(tag) {
  return {
    tags: { environment: 'test', run: runPrefix, case: tag },
    properties: { desired: { telemetryInterval: 30, nested: { mode: tag, list: [1, 2] } } },
  };
}

// createEnrollment makes an individual symmetric-key enrollment with service-generated keys and
// returns it with those keys (fetched through the attestation mechanism call).
async function createEnrollment(tag, extra = {}) {
  const enrollment = {
    registrationId: newId(tag),
    attestation: { type: 'symmetricKey', symmetricKey: {} },
    provisioningStatus: 'enabled',
    initialTwin: initialTwin(tag),
    ...extra,
  };
  const { registrationId } = enrollment;
  await service.createOrUpdateIndividualEnrollment(enrollment);
  const mechanism = await body(service.getIndividualEnrollmentAttestationMechanism(registrationId));
  assert.equal(mechanism?.type, 'symmetricKey', `attestation mechanism of ${registrationId}`);
  return { ...enrollment, keys: mechanism.symmetricKey };
}

// createGroup makes a symmetric-key enrollment group with service-generated keys and returns it
// with those keys.
async function createGroup(tag, extra = {}) {
  const enrollmentGroupId = newId(tag);
  const group = {
    enrollmentGroupId,
    attestation: { type: 'symmetricKey', symmetricKey: {} },
    provisioningStatus: 'enabled',
    initialTwin: initialTwin(tag),
    ...extra,
  };
  await service.createOrUpdateEnrollmentGroup(group);
  const mechanism = await body(service.getEnrollmentGroupAttestationMechanism(enrollmentGroupId));
  assert.equal(mechanism?.type, 'symmetricKey', `attestation mechanism of group ${enrollmentGroupId}`);
  return { ...group, keys: mechanism.symmetricKey };
}

// register runs the device SDK's register() for registrationId with key over transport.
function register(transport, registrationId, key, { scope = idScope, payload } = {}) {
  const client = ProvisioningDeviceClient.create(
    dpsHost, scope, TRANSPORTS[transport](), new SymmetricKeySecurityClient(registrationId, key),
  );
  if (payload !== undefined) {
    client.setProvisioningPayload(payload);
  }
  return client.register();
}

function assertAssigned(result, registrationId, deviceId = registrationId) {
  assert.equal(typeof result, 'object', `register() result: ${JSON.stringify(result)}`);
  assert.equal(result.status, 'assigned', `status in ${JSON.stringify(result)}`);
  assert.equal(result.assignedHub, hubHost, 'assignedHub is the hub connection string HostName');
  assert.equal(result.registrationId, registrationId, 'registrationId');
  assert.equal(result.deviceId, deviceId, 'deviceId');
}

// assertHubDevice checks the hub device provisioning created: enabled, SAS keys as given.
async function assertHubDevice(deviceId, keys, { iotEdge = false } = {}) {
  const device = await body(registry.get(deviceId));
  assert.equal(device.deviceId, deviceId, 'hub deviceId');
  assert.equal(device.status, 'enabled', 'hub device status');
  assert.equal(device.authentication?.type, 'sas', `hub device authentication type: ${JSON.stringify(device.authentication)}`);
  assert.equal(device.authentication?.symmetricKey?.primaryKey, keys.primaryKey, 'hub device primaryKey is the enrollment key');
  assert.equal(device.authentication?.symmetricKey?.secondaryKey, keys.secondaryKey, 'hub device secondaryKey is the enrollment key');
  assert.equal(device.capabilities?.iotEdge, iotEdge, 'hub device capabilities.iotEdge');
  return device;
}

async function assertHubTwin(deviceId, want) {
  const twin = await body(registry.getTwin(deviceId));
  assert.equal(twin.deviceId, deviceId, 'twin deviceId');
  assert.deepEqual(twin.tags, want.tags, 'twin tags are the enrollment initialTwin tags');
  assert.deepEqual(withoutMetadata(twin.properties?.desired), want.properties.desired,
    'twin desired properties are the enrollment initialTwin desired properties');
}

// assertNoHubDevice checks that the hub has no device deviceId (Registry.get answers 404).
async function assertNoHubDevice(deviceId) {
  await assert.rejects(registry.get(deviceId), (err) => {
    assert.equal(err?.response?.statusCode, 404, `Registry.get(${deviceId}): want HTTP 404, got ${err?.response?.statusCode}: ${err}`);
    assert.equal(err.name, 'DeviceNotFoundError', 'error name');
    return true;
  });
}

// assertUnauthorized checks a refused attestation: 401 over both transports. Over MQTT Usher accepts
// the CONNECT and answers the register request on $dps/registrations/res/401 (as real DPS does,
// dps-protocol.md §4.1), which the SDK turns into the same UnauthorizedError as over HTTP.
async function assertUnauthorized(transport, promise) {
  await assert.rejects(promise, (err) => {
    assert.equal(err?.name, 'UnauthorizedError', `want UnauthorizedError over ${transport}, got ${err?.name}: ${err}`);
    if (transport === 'http') {
      assert.equal(err.response?.statusCode, 401, 'HTTP status');
    }
    return true;
  });
}

// assertDisabled checks a refused registration for a disabled enrollment: the service answers
// status "disabled", which the SDK's polling state machine turns into SyntaxError("status is
// disabled") carrying the answer as err.result (azure-iot-provisioning-device/dist/polling_state_machine.js).
async function assertDisabled(promise) {
  await assert.rejects(promise, (err) => {
    assert.equal(err?.name, 'SyntaxError', `want SyntaxError, got ${err?.name}: ${err}`);
    assert.equal(err.message, 'status is disabled', 'message');
    assert.equal(err.result?.status, 'disabled', `status in the answer: ${JSON.stringify(err.result)}`);
    return true;
  });
}

for (const transport of Object.keys(TRANSPORTS)) {
  test(`[${transport}] individual enrollment: device is assigned, hub device and twin come from the enrollment`, TIMEOUT, async () => {
    const enrollment = await createEnrollment(`ind-${transport}`);
    const id = enrollment.registrationId;

    const result = await register(transport, id, enrollment.keys.primaryKey);
    assertAssigned(result, id);
    await assertHubDevice(id, enrollment.keys);
    await assertHubTwin(id, enrollment.initialTwin);
  });

  test(`[${transport}] enrollment group: device with a derived key is assigned with derived hub keys`, TIMEOUT, async () => {
    const group = await createGroup(`grp-${transport}`);
    const id = newId(`member-${transport}`);
    const keys = {
      primaryKey: deriveKey(group.keys.primaryKey, id),
      secondaryKey: deriveKey(group.keys.secondaryKey, id),
    };

    const result = await register(transport, id, keys.primaryKey);
    assertAssigned(result, id);
    assert.equal(result.symmetricKey?.enrollmentGroupId, group.enrollmentGroupId, 'registrationState.symmetricKey.enrollmentGroupId');
    await assertHubDevice(id, keys);
    await assertHubTwin(id, group.initialTwin);
  });

  test(`[${transport}] custom payload round-trips in the registration result`, TIMEOUT, async () => {
    const enrollment = await createEnrollment(`payload-${transport}`);
    const id = enrollment.registrationId;
    const payload = { modelId: 'dtmi:usher:interop;1', extra: 42, nested: { list: ['a', 'b'], flag: true } };

    const result = await register(transport, id, enrollment.keys.primaryKey, { payload });
    assertAssigned(result, id);
    assert.deepEqual(result.payload, payload, 'registrationState.payload');
  });

  test(`[${transport}] re-registering an assigned device returns the same hub and device`, TIMEOUT, async () => {
    const enrollment = await createEnrollment(`again-${transport}`);
    const id = enrollment.registrationId;

    const first = await register(transport, id, enrollment.keys.primaryKey);
    assertAssigned(first, id);
    const second = await register(transport, id, enrollment.keys.secondaryKey);
    assertAssigned(second, id);
    assert.equal(second.assignedHub, first.assignedHub, 'same assignedHub');
    assert.equal(second.deviceId, first.deviceId, 'same deviceId');
    await assertHubDevice(id, enrollment.keys);
  });

  test(`[${transport}] wrong key is refused and creates no hub device`, TIMEOUT, async () => {
    const enrollment = await createEnrollment(`wrongkey-${transport}`);
    const id = enrollment.registrationId;

    await assertUnauthorized(transport, register(transport, id, randomBytes(64).toString('base64')));
    await assertNoHubDevice(id);
  });

  test(`[${transport}] unknown ID scope is refused and creates no hub device`, TIMEOUT, async () => {
    const enrollment = await createEnrollment(`scope-${transport}`);
    const id = enrollment.registrationId;
    const otherScope = `0ne${randomBytes(4).toString('hex').toUpperCase()}`;
    assert.notEqual(otherScope, idScope);

    await assertUnauthorized(transport, register(transport, id, enrollment.keys.primaryKey, { scope: otherScope }));
    await assertNoHubDevice(id);
  });

  test(`[${transport}] disabled enrollment is refused and creates no hub device`, TIMEOUT, async () => {
    const enrollment = await createEnrollment(`disabled-${transport}`, { provisioningStatus: 'disabled' });
    const id = enrollment.registrationId;

    await assertDisabled(register(transport, id, enrollment.keys.primaryKey));
    await assertNoHubDevice(id);
  });

  test(`[${transport}] disabled enrollment group is refused and creates no hub device`, TIMEOUT, async () => {
    const group = await createGroup(`grp-disabled-${transport}`, { provisioningStatus: 'disabled' });
    const id = newId(`member-disabled-${transport}`);

    await assertDisabled(register(transport, id, deriveKey(group.keys.primaryKey, id)));
    await assertNoHubDevice(id);
  });
}

test('[http] edge-enabled enrollment makes an IoT Edge hub device', TIMEOUT, async () => {
  const enrollment = await createEnrollment('edge', { capabilities: { iotEdge: true } });
  const id = enrollment.registrationId;

  const result = await register('http', id, enrollment.keys.primaryKey);
  assertAssigned(result, id);
  await assertHubDevice(id, enrollment.keys, { iotEdge: true });
});

test('[http] enrollment deviceId overrides the registration ID as the hub device ID', TIMEOUT, async () => {
  const registrationId = newId('override');
  const deviceId = `${registrationId}-device`;
  const enrollment = await createEnrollment('override', { registrationId, deviceId });

  const result = await register('http', registrationId, enrollment.keys.primaryKey);
  assertAssigned(result, registrationId, deviceId);
  await assertHubDevice(deviceId, enrollment.keys);
  await assertHubTwin(deviceId, enrollment.initialTwin);
  await assertNoHubDevice(registrationId);
});
