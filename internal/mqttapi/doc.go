// Package mqttapi serves Usher's MQTT surface: MQTT 3.1.1 over TLS on one
// listener (8883), shared by devices registering with DPS ($dps/... topics,
// dps-protocol.md §4) and devices and modules of the built-in hub
// ($iothub/... and devices/... topics, hub-protocol.md §6).
//
// The broker is the embedded mochi-mqtt server; this package is its hooks.
// It is not a general broker:
//
//   - CONNECT: the username says what the connection is for (a kind: DPS
//     or hub) and who it is; the client ID must be that identity (else
//     CONNACK 2). DPS admits every well-formed CONNECT and answers bad
//     credentials with 401 on its response topic, as Azure DPS does; the hub
//     checks the device token at once and refuses with CONNACK 5, as IoT Hub
//     does (a store failure is CONNACK 3). MQTT 3.1 and 5 are refused
//     (CONNACK 1, reason 0x84). Keepalive 0 means no deadline at all (the C
//     SDK never pings).
//   - Sessions are keyed by kind and identity ("dps:{registrationId}",
//     "hub:{deviceId}[/{moduleId}]"), so a provisioning connection never
//     takes over a hub session; within a kind a new connection takes over
//     the old one. DPS sessions are always clean and never carry a will;
//     hub sessions may be persistent (the SDKs connect with clean session
//     false), kept in memory for a while after a disconnect.
//   - ACL: each kind may subscribe only to its own filters (anything else
//     gets SUBACK 0x80) and publish only to its own request topics (other
//     publishes are dropped at QoS 0 and end the connection at QoS 1; QoS 2
//     ends it always). Nothing is retained.
//   - Requests are acknowledged, taken out of the broker's fan-out, and
//     answered by the domain use cases (dps.Registrar, hub.Service); every
//     answer is written to the one connection that asked, at the QoS its
//     subscription was granted (at most 1). Hub telemetry is stored before
//     its PUBACK.
//   - Hub connections attach to the hub.Bus, which pushes desired
//     properties, calls direct methods and disconnects devices through them.
package mqttapi
