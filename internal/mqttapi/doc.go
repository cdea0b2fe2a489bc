// Package mqttapi serves Usher's MQTT surface: MQTT 3.1.1 over TLS on one
// listener (8883), shared by devices registering with DPS ($dps/... topics,
// dps-protocol.md §4) and, from the hub issue on, hub devices.
//
// The broker is the embedded mochi-mqtt server; this package is its hooks.
// It is not a general broker:
//
//   - CONNECT: the username says what the connection is for (a kind: DPS
//     or hub) and who it is; the client ID must be that identity (else
//     CONNACK 2); the credentials are checked at once (else CONNACK 5, as
//     the captured stubs and the SDKs expect; a store failure is CONNACK 3).
//     MQTT 3.1 and 5 are refused (CONNACK 1, reason 0x84). Keepalive 0 means
//     no deadline at all (the C SDK never pings).
//   - Sessions are keyed by kind and identity ("dps:{registrationId}"), so a
//     provisioning connection never takes over a hub session. DPS sessions
//     are always clean and never carry a will: DPS keeps no sessions.
//   - ACL: each kind may subscribe only to its response filter (anything
//     else gets SUBACK 0x80) and publish only to its request topics (other
//     publishes are dropped at QoS 0 and end the connection at QoS 1; QoS 2
//     ends it always). Nothing is retained.
//   - Requests are acknowledged, taken out of the broker's fan-out, and
//     answered by the domain use case (dps.Registrar); every answer is
//     written to the one connection that asked, at the QoS its subscription
//     was granted (at most 1).
package mqttapi
