// Package sas parses, verifies and builds the shared access signature (SAS)
// tokens that Azure IoT clients present to the Device Provisioning Service and
// to IoT Hub, derives per-device keys for symmetric-key enrollment groups, and
// reads the "HostName=…;SharedAccessKey=…" connection strings that carry keys.
//
// The reference is the project's protocol digest, dps-protocol.md §3 (token
// format §3.1, verification recipe §3.2, derived keys and test vectors §3.3),
// which in turn follows Microsoft's "Control access to IoT Hub with shared
// access signatures" and the DPS "Control access" and symmetric-key attestation
// documents.
//
// A token looks like
//
//	SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>[&skn=<key name>]
//
// with its fields in any order. The signature is base64(HMAC-SHA256(key,
// sr + "\n" + se)). Clients disagree on how they encode sr: the C SDK sends
// the DPS audience percent-encoded with lowercase hex, C# and Python with
// uppercase hex, the Node SDK raw, and the IoT Edge identity daemon lowercased.
// Each client signs exactly the string it sends, so the one rule that accepts
// them all is the one this package implements: the HMAC is computed over sr
// and se exactly as they appear in the token, and sr is percent-decoded only
// to compare it with the expected audience (see [Token.Resource] and
// [AudienceMatch]).
//
// Every failure is a [fault.Error]: Unauthenticated for tokens a client
// presented, Invalid for keys and connection strings an operator supplied.
package sas
