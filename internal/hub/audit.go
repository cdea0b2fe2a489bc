package hub

import "context"

// Auditor is told of every change an operator makes through the service
// side: devices and modules created, updated or deleted, twins' tags and
// desired properties written, configurations created, updated or deleted,
// configuration content applied to a device. What devices do themselves
// (reported properties, connections) and what the hub does on its own
// (provisioning, deployments converging module twins) is not reported: it
// is not an operator's change, and it would put a write on devices' paths.
// Who and how come from the context (the transports put them there).
// Implementations must not block for long and report their own failures.
type Auditor interface {
	Changed(ctx context.Context, c Change)
}

// Record kinds a Change names.
const (
	ChangeDevice        = "device"
	ChangeModule        = "module"
	ChangeTwin          = "twin"
	ChangeConfiguration = "configuration"
)

// Change is one record an operator wrote or deleted. It carries no key
// material.
type Change struct {
	Kind       string // ChangeDevice, ChangeModule, ChangeTwin or ChangeConfiguration
	ID         string // device ID, "device/module", or configuration ID
	Action     string // "create", "update" or "delete"
	ETagBefore string // "" on create, and on a delete without If-Match
	ETagAfter  string // "" on delete
	Detail     string // what more there is to say (never a key)
}

// subject names a device or module twin or identity in a Change.
func subject(deviceID, moduleID string) string {
	if moduleID == "" {
		return deviceID
	}
	return deviceID + "/" + moduleID
}

type nopAuditor struct{}

func (nopAuditor) Changed(context.Context, Change) {}
