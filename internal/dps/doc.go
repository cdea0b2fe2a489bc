// Package dps is the provisioning domain: individual enrollments, enrollment
// groups, their attestation (symmetric keys today; X.509 and TPM later) and the
// registration records devices leave behind. It holds the rules (ID syntax,
// key sizes, etag preconditions, query filtering) and the use cases; it knows
// nothing of HTTP, MQTT or SQL. The Store interface it needs is declared here
// and implemented by the packages under internal/store.
//
// Reference: Azure DPS service API 2021-10-01 (see shared/spec/dps-protocol.md
// §1, §3, §8).
package dps
