package hub

import "context"

// Store persists everything the hub keeps. Each part is declared beside
// the use cases that need it. Errors: fault.NotFound, fault.Conflict (create
// of an existing record), fault.PreconditionFailed (etag mismatch). An etag
// argument of "" means unconditional.
type Store interface {
	RegistryStore
	ConfigurationStore
	MessageStore
}

// RegistryStore persists devices, modules and twins.
type RegistryStore interface {
	Device(ctx context.Context, id string) (Device, error)
	Module(ctx context.Context, deviceID, moduleID string) (Module, error)
	// Twin returns a device twin (moduleID "") or a module twin.
	Twin(ctx context.Context, deviceID, moduleID string) (Twin, error)
	// CreateIdentity writes a device, its twin, its modules and their twins
	// in one transaction.
	CreateIdentity(ctx context.Context, id Identity) error
	// UpdateIdentity replaces the device whose etag is etag, and in the same
	// transaction writes the given twin (when not nil) and creates any of
	// the modules (with their twins) that do not exist yet.
	UpdateIdentity(ctx context.Context, d Device, etag string, twin *Twin, modules []Module, moduleTwins []Twin) error
	// TwinRecords lists device twins (modules false) or module twins with
	// their devices, ordered by TwinKey, after after.
	TwinRecords(ctx context.Context, modules bool, after TwinKey, limit int) ([]TwinRecord, error)
	// UpdateTwin replaces the twin whose stored etag is etag.
	UpdateTwin(ctx context.Context, t Twin, etag string) error
}
