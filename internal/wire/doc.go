// Package wire holds the exact JSON shapes of the Azure APIs Usher speaks,
// the conversions between them and the domain types, and the one table that
// turns a fault.Kind into an Azure status code and error body. Every
// transport (HTTPS now, MQTT next) encodes through here, so a shape or an
// error code is written once.
//
// References: Azure DPS service API 2021-10-01 (shared/spec/dps-protocol.md
// §8.6) and the Node SDK captures in shared/spec/wire/.
package wire
