// Drives the unmodified Azure IoT DPS service SDK (azure-iot-provisioning-service,
// pinned in package.json) against a running usher server.
//
// Run by interop_test.go, which starts the server and sets:
//   USHER_CONNECTION_STRING  the DPS service connection string (HostName=…;SharedAccessKeyName=…;SharedAccessKey=…)
//   NODE_EXTRA_CA_CERTS      the server's CA file
//
// Expected wire behaviour: shared/spec/wire/dps-service-enrollments.md. Two SDK quirks are
// worked around here, not in the server: the promise form of runBulkEnrollmentOperation never
// settles (dist/provisioningserviceclient.js: it only calls back when a callback was passed), and
// query.next() without an argument re-reads page 1 (dist/query.js), so tokens are passed explicitly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import provisioning from 'azure-iot-provisioning-service';
import { requiredEnv, runIds, body } from './common.mjs';

const { ProvisioningServiceClient } = provisioning;

const connectionString = requiredEnv('USHER_CONNECTION_STRING');

const client = ProvisioningServiceClient.fromConnectionString(connectionString);

const { newId } = runIds('it');
const TIMEOUT = { timeout: 30_000 };

// rejectsWith asserts that promise rejects with an SDK error for HTTP status (and error name, if given).
async function rejectsWith(promise, status, name) {
  await assert.rejects(promise, (err) => {
    assert.equal(err?.response?.statusCode, status, `want HTTP ${status}, got ${err?.response?.statusCode}: ${err}`);
    if (name) {
      assert.equal(err.name, name, `error name for HTTP ${status}`);
    }
    return true;
  });
}

function bulk(operation) {
  return new Promise((resolve, reject) => {
    client.runBulkEnrollmentOperation(operation, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

// runQuery pages through a query, passing each continuation token explicitly.
async function runQuery(query, pageSize) {
  const pages = [];
  let token = null;
  for (let i = 0; i < 1000; i++) {
    const page = await body(query.next(token));
    assert.ok(Array.isArray(page), `query page ${i} is not an array: ${JSON.stringify(page)}`);
    assert.ok(page.length <= pageSize, `query page ${i} has ${page.length} items, page size is ${pageSize}`);
    pages.push(page);
    if (!query.hasMoreResults) {
      return pages;
    }
    token = query.continuationToken;
    assert.equal(typeof token, 'string', 'continuation token');
  }
  assert.fail('query did not end after 1000 pages');
}

function assertKey(key, bytes, what) {
  assert.equal(typeof key, 'string', `${what} is a string`);
  const raw = Buffer.from(key, 'base64');
  assert.equal(raw.toString('base64'), key, `${what} is canonical base64`);
  assert.equal(raw.length, bytes, `${what} decodes to ${bytes} bytes`);
}

function assertRecentTime(value, what) {
  assert.equal(typeof value, 'string', `${what} is a string`);
  const t = Date.parse(value);
  assert.ok(!Number.isNaN(t), `${what} ${value} is a date`);
  assert.ok(Math.abs(Date.now() - t) < 10 * 60_000, `${what} ${value} is within 10 minutes of now`);
}

// assertEchoes checks that every field the client sent comes back unchanged (attestation is
// checked by the caller, since keys may be generated).
function assertEchoes(got, sent) {
  for (const [field, value] of Object.entries(sent)) {
    if (field === 'attestation' || field === 'etag') {
      continue;
    }
    assert.deepEqual(got[field], value, `field ${field}`);
  }
}

// assertServerFields checks what the service adds to every enrollment and group it returns.
function assertServerFields(got) {
  assert.equal(typeof got.etag, 'string', 'etag');
  assert.ok(got.etag.length > 0, 'etag is not empty');
  assertRecentTime(got.createdDateTimeUtc, 'createdDateTimeUtc');
  assertRecentTime(got.lastUpdatedDateTimeUtc, 'lastUpdatedDateTimeUtc');
  assert.ok(Date.parse(got.lastUpdatedDateTimeUtc) >= Date.parse(got.createdDateTimeUtc), 'lastUpdated >= created');
}

// masked is what a GET or a query returns for an object a PUT returned: the same, keys null.
function masked(withKeys) {
  return {
    ...withKeys,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: null, secondaryKey: null } },
  };
}

function symmetricKeyEnrollment(registrationId, extra = {}) {
  return {
    registrationId,
    attestation: {
      type: 'symmetricKey',
      symmetricKey: {
        primaryKey: randomBytes(32).toString('base64'),
        secondaryKey: randomBytes(32).toString('base64'),
      },
    },
    provisioningStatus: 'enabled',
    ...extra,
  };
}

test('individual enrollment with generated keys round-trips every field', TIMEOUT, async () => {
  const id = newId('gen');
  const sent = {
    registrationId: id,
    deviceId: `${id}-device`,
    attestation: { type: 'symmetricKey', symmetricKey: {} },
    capabilities: { iotEdge: true },
    initialTwin: {
      tags: { environment: 'test', site: 'lab-1' },
      properties: { desired: { telemetryInterval: 30, nested: { a: [1, 2] } } },
    },
    provisioningStatus: 'enabled',
    reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: false },
    allocationPolicy: 'hashed',
    optionalDeviceInformation: { manufacturer: 'contoso', model: { name: 'gw-1', revision: 3 } },
  };

  const created = await body(client.createOrUpdateIndividualEnrollment(sent));
  assertEchoes(created, sent);
  assertServerFields(created);
  assert.equal(created.attestation.type, 'symmetricKey');
  const keys = created.attestation.symmetricKey;
  assertKey(keys.primaryKey, 64, 'generated primaryKey');
  assertKey(keys.secondaryKey, 64, 'generated secondaryKey');
  assert.notEqual(keys.primaryKey, keys.secondaryKey, 'generated keys differ');

  const got = await body(client.getIndividualEnrollment(id));
  assert.deepEqual(got, masked(created), 'GET returns what PUT returned, keys masked');

  const mechanism = await body(client.getIndividualEnrollmentAttestationMechanism(id));
  assert.deepEqual(mechanism, { type: 'symmetricKey', symmetricKey: keys }, 'attestation mechanism');
});

test('update with the current etag succeeds; with a stale etag it fails with 412', TIMEOUT, async () => {
  const id = newId('etag');
  const created = await body(client.createOrUpdateIndividualEnrollment(symmetricKeyEnrollment(id, {
    initialTwin: { tags: { environment: 'test', site: 'lab-1' }, properties: { desired: { telemetryInterval: 30 } } },
  })));
  assertServerFields(created);

  const change = {
    ...created,
    initialTwin: { tags: { environment: 'test', site: 'lab-2', rack: 7 }, properties: { desired: { telemetryInterval: 30 } } },
  };
  const updated = await body(client.createOrUpdateIndividualEnrollment(change));
  assertServerFields(updated);
  assert.notEqual(updated.etag, created.etag, 'etag changes on update');
  assert.deepEqual(updated.initialTwin, change.initialTwin, 'tags updated');
  assert.equal(updated.createdDateTimeUtc, created.createdDateTimeUtc, 'createdDateTimeUtc kept');
  const { etag: _e1, lastUpdatedDateTimeUtc: _l1, initialTwin: _t1, ...restUpdated } = updated;
  const { etag: _e2, lastUpdatedDateTimeUtc: _l2, initialTwin: _t2, ...restCreated } = created;
  assert.deepEqual(restUpdated, restCreated, 'other fields unchanged (keys included)');

  const stale = { ...change, initialTwin: { tags: { environment: 'test', site: 'lab-3' } }, etag: created.etag };
  await rejectsWith(client.createOrUpdateIndividualEnrollment(stale), 412, 'InvalidEtagError');

  const got = await body(client.getIndividualEnrollment(id));
  assert.deepEqual(got, masked(updated), 'a refused update changes nothing');
});

test('individual enrollment with supplied 16- and 64-byte keys keeps exactly those keys', TIMEOUT, async () => {
  const id = newId('keys');
  const keys = { primaryKey: randomBytes(16).toString('base64'), secondaryKey: randomBytes(64).toString('base64') };
  const sent = {
    registrationId: id,
    attestation: { type: 'symmetricKey', symmetricKey: keys },
    provisioningStatus: 'disabled',
  };

  const created = await body(client.createOrUpdateIndividualEnrollment(sent));
  assertEchoes(created, sent);
  assertServerFields(created);
  assert.deepEqual(created.attestation, sent.attestation, 'PUT answer carries the supplied keys');

  const got = await body(client.getIndividualEnrollment(id));
  assert.deepEqual(got, masked(created), 'GET returns what PUT returned, keys masked');

  const mechanism = await body(client.getIndividualEnrollmentAttestationMechanism(id));
  assert.deepEqual(mechanism, sent.attestation, 'attestation mechanism returns the supplied keys');
});

test('empty initialTwin tags and desired properties round-trip as {}', TIMEOUT, async () => {
  const initialTwin = { tags: {}, properties: { desired: {} } };

  const enrollment = symmetricKeyEnrollment(newId('empty'), { initialTwin });
  const created = await body(client.createOrUpdateIndividualEnrollment(enrollment));
  assert.deepEqual(created.initialTwin, initialTwin, 'enrollment PUT answer');
  const got = await body(client.getIndividualEnrollment(enrollment.registrationId));
  assert.deepEqual(got.initialTwin, initialTwin, 'enrollment GET');

  const group = { enrollmentGroupId: newId('empty-group'), attestation: { type: 'symmetricKey' }, initialTwin };
  const createdGroup = await body(client.createOrUpdateEnrollmentGroup(group));
  try {
    assert.deepEqual(createdGroup.initialTwin, initialTwin, 'group PUT answer');
    const gotGroup = await body(client.getEnrollmentGroup(group.enrollmentGroupId));
    assert.deepEqual(gotGroup.initialTwin, initialTwin, 'group GET');
  } finally {
    await client.deleteEnrollmentGroup(group.enrollmentGroupId);
  }
});

test('enrollment group create, get, attestation mechanism, delete', TIMEOUT, async () => {
  const id = newId('group');
  const sent = {
    enrollmentGroupId: id,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: null, secondaryKey: null } },
    capabilities: { iotEdge: true },
    initialTwin: {
      tags: { fleet: 'blue', environment: 'test' },
      properties: { desired: { telemetryInterval: 60, modes: ['a', 'b'] } },
    },
    provisioningStatus: 'enabled',
    reprovisionPolicy: { updateHubAssignment: false, migrateDeviceData: true },
    allocationPolicy: 'hashed',
  };

  const created = await body(client.createOrUpdateEnrollmentGroup(sent));
  assert.equal(created.enrollmentGroupId, id);
  assertEchoes(created, sent);
  assertServerFields(created);
  assert.equal(created.attestation.type, 'symmetricKey');
  const keys = created.attestation.symmetricKey;
  assertKey(keys.primaryKey, 64, 'generated group primaryKey');
  assertKey(keys.secondaryKey, 64, 'generated group secondaryKey');

  const got = await body(client.getEnrollmentGroup(id));
  assert.deepEqual(got, masked(created), 'GET returns what PUT returned, keys masked');

  const mechanism = await body(client.getEnrollmentGroupAttestationMechanism(id));
  assert.deepEqual(mechanism, { type: 'symmetricKey', symmetricKey: keys }, 'group attestation mechanism');

  await client.deleteEnrollmentGroup(id);
  await rejectsWith(client.getEnrollmentGroup(id), 404);
});

test('individual enrollment query pages with continuation tokens; WHERE filters on tags', TIMEOUT, async () => {
  const prefix = newId('query');
  const environments = ['test', 'prod', 'test', 'prod', 'test'];
  const created = new Map();
  for (const [i, environment] of environments.entries()) {
    const e = symmetricKeyEnrollment(`${prefix}-${i}`, {
      initialTwin: { tags: { environment, index: i }, properties: { desired: { index: i } } },
    });
    const answer = await body(client.createOrUpdateIndividualEnrollment(e));
    assertEchoes(answer, e);
    created.set(e.registrationId, answer);
  }

  const pageSize = 2;
  const pages = await runQuery(client.createIndividualEnrollmentQuery({ query: '*' }, pageSize), pageSize);
  assert.ok(pages.length > 1, `query '*' over at least ${created.size} enrollments took ${pages.length} page(s)`);
  const all = pages.flat();
  const ids = all.map((e) => e.registrationId);
  assert.equal(new Set(ids).size, ids.length, `no duplicates across pages: ${ids}`);
  const ours = all.filter((e) => e.registrationId.startsWith(`${prefix}-`));
  assert.deepEqual(ours.map((e) => e.registrationId).sort(), [...created.keys()].sort(), 'all five found');
  for (const e of ours) {
    assert.deepEqual(e, masked(created.get(e.registrationId)), `query item ${e.registrationId}`);
  }

  const where = "SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'test'";
  const matched = (await runQuery(client.createIndividualEnrollmentQuery({ query: where }, pageSize), pageSize)).flat();
  for (const e of matched) {
    assert.equal(e.initialTwin?.tags?.environment, 'test', `WHERE result ${e.registrationId} matches`);
  }
  const matchedIds = matched.map((e) => e.registrationId);
  assert.equal(new Set(matchedIds).size, matchedIds.length, `no duplicates in WHERE pages: ${matchedIds}`);
  const want = [...created.values()].filter((e) => e.initialTwin.tags.environment === 'test').map((e) => e.registrationId);
  assert.deepEqual(matchedIds.filter((id) => id.startsWith(`${prefix}-`)).sort(), want.sort(), 'exactly the matching ones');
});

test('bulk enrollment operation: create, conflicting create, delete', TIMEOUT, async () => {
  const enrollments = [
    symmetricKeyEnrollment(newId('bulk'), { capabilities: { iotEdge: false } }),
    symmetricKeyEnrollment(newId('bulk'), {
      deviceId: 'bulk-device',
      initialTwin: { tags: { environment: 'bulk' }, properties: { desired: { x: 1 } } },
    }),
  ];
  const ids = enrollments.map((e) => e.registrationId);

  const first = await bulk({ mode: 'create', enrollments });
  assert.equal(first.isSuccessful, true, `first create: ${JSON.stringify(first)}`);
  assert.deepEqual(first.errors ?? [], [], 'first create has no errors');
  for (const e of enrollments) {
    const got = await body(client.getIndividualEnrollment(e.registrationId));
    assertEchoes(got, e);
    assertServerFields(got);
    const mechanism = await body(client.getIndividualEnrollmentAttestationMechanism(e.registrationId));
    assert.deepEqual(mechanism, e.attestation, `keys of ${e.registrationId}`);
  }

  const again = await bulk({ mode: 'create', enrollments });
  assert.equal(again.isSuccessful, false, `second create: ${JSON.stringify(again)}`);
  assert.ok(Array.isArray(again.errors), 'errors is an array');
  assert.equal(again.errors.length, 2, `two errors: ${JSON.stringify(again.errors)}`);
  assert.deepEqual(again.errors.map((e) => e.registrationId).sort(), [...ids].sort(), 'errors name the registration ids');
  for (const e of again.errors) {
    assert.equal(typeof e.errorCode, 'number', `errorCode of ${e.registrationId}`);
    assert.equal(typeof e.errorStatus, 'string', `errorStatus of ${e.registrationId}`);
  }

  const deleted = await bulk({ mode: 'delete', enrollments });
  assert.equal(deleted.isSuccessful, true, `delete: ${JSON.stringify(deleted)}`);
  assert.deepEqual(deleted.errors ?? [], [], 'delete has no errors');
  for (const id of ids) {
    await rejectsWith(client.getIndividualEnrollment(id), 404);
  }
});

test('deleteIndividualEnrollment by id and by object with etag', TIMEOUT, async () => {
  const byId = newId('del-id');
  await client.createOrUpdateIndividualEnrollment(symmetricKeyEnrollment(byId));
  await client.deleteIndividualEnrollment(byId);
  await rejectsWith(client.getIndividualEnrollment(byId), 404);

  const byObject = newId('del-obj');
  const created = await body(client.createOrUpdateIndividualEnrollment(symmetricKeyEnrollment(byObject)));
  const updated = await body(client.createOrUpdateIndividualEnrollment({ ...created, provisioningStatus: 'disabled' }));
  assert.notEqual(updated.etag, created.etag, 'etag changes on update');
  await rejectsWith(client.deleteIndividualEnrollment(created), 412, 'InvalidEtagError');

  const current = await body(client.getIndividualEnrollment(byObject));
  assert.equal(current.etag, updated.etag);
  await client.deleteIndividualEnrollment(current);
  await rejectsWith(client.getIndividualEnrollment(byObject), 404);
});

test('unknown enrollment is 404; a wrong key is 401', TIMEOUT, async () => {
  await rejectsWith(client.getIndividualEnrollment(newId('missing')), 404);
  await rejectsWith(client.getEnrollmentGroup(newId('missing')), 404);

  const wrongKey = connectionString.replace(/SharedAccessKey=[^;]*/, `SharedAccessKey=${randomBytes(32).toString('base64')}`);
  assert.notEqual(wrongKey, connectionString, 'connection string has a SharedAccessKey');
  const intruder = ProvisioningServiceClient.fromConnectionString(wrongKey);
  await rejectsWith(intruder.getIndividualEnrollment(newId('missing')), 401, 'UnauthorizedError');
  await rejectsWith(intruder.createOrUpdateIndividualEnrollment(symmetricKeyEnrollment(newId('intruder'))), 401, 'UnauthorizedError');
});
