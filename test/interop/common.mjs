// What the interop test files share: the environment interop_test.go sets, run-unique ids, and
// small helpers over the Azure SDKs' answers.
//
// interop_test.go starts the server and sets:
//   USHER_CONNECTION_STRING      the DPS service connection string; its HostName is also the device endpoint
//   USHER_HUB_CONNECTION_STRING  the hub service connection string; its HostName is the expected assignedHub
//   USHER_ID_SCOPE               the ID scope devices name
//   NODE_EXTRA_CA_CERTS          the server's CA file

import { randomBytes } from 'node:crypto';

// requiredEnv returns an environment variable interop_test.go sets, or throws saying how to run.
export function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set; run this file through \`go test ./test/interop/\``);
  }
  return value;
}

// hostName is a connection string's HostName (with its key kept out of any error).
export function hostName(connectionString) {
  const m = /(?:^|;)HostName=([^;]+)/.exec(connectionString);
  if (!m) {
    throw new Error(`no HostName in connection string ${connectionString.replace(/SharedAccessKey=[^;]*/, 'SharedAccessKey=…')}`);
  }
  return m[1];
}

// runIds returns this run's prefix and newId(tag), which makes ids that all start with it, so
// reruns against the same server never collide.
export function runIds(kind) {
  const runPrefix = `usher-${kind}-${randomBytes(4).toString('hex')}`;
  return { runPrefix, newId: (tag) => `${runPrefix}-${tag}-${randomBytes(3).toString('hex')}` };
}

// body awaits a service SDK promise, which resolves to {responseBody, httpResponse}, and returns
// the body: what the tests look at.
export async function body(promise) {
  const { responseBody } = await promise;
  return responseBody;
}

// withoutMetadata drops the $metadata and $version entries a twin adds to a property set.
export function withoutMetadata(properties) {
  return Object.fromEntries(Object.entries(properties ?? {}).filter(([k]) => !k.startsWith('$')));
}
