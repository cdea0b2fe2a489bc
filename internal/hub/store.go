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

	// Devices lists devices ordered by ID (byte order), those after after,
	// at most limit.
	Devices(ctx context.Context, after string, limit int) ([]Device, error)
	// DeleteDevice deletes the device whose etag is etag, with its twin,
	// its modules and their twins, in one transaction.
	DeleteDevice(ctx context.Context, id, etag string) error
	// Modules lists a device's modules ordered by module ID; none (not
	// fault.NotFound) when the device has none or does not exist.
	Modules(ctx context.Context, deviceID string) ([]Module, error)
	// CreateModule writes a module and its twin in one transaction:
	// fault.NotFound when the device does not exist, fault.Conflict when
	// the module does.
	CreateModule(ctx context.Context, m Module, twin Twin) error
	// UpdateModule replaces the module whose etag is etag.
	UpdateModule(ctx context.Context, m Module, etag string) error
	// DeleteModule deletes the module whose etag is etag and its twin.
	DeleteModule(ctx context.Context, deviceID, moduleID, etag string) error
}
