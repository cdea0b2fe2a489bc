// Package hub is the built-in IoT Hub's domain: the identity registry
// (devices and their module identities, with symmetric keys), and device and
// module twins. It never imports the provisioning domain; main adapts this
// package to the allocation interface dps needs.
//
// Reference: shared/spec/hub-protocol.md (§2 identity registry, §3 twins,
// §8.5 what provisioning does in the hub).
package hub
