package hub

import "context"

// ConfigurationStore persists configurations (automatic device management
// and IoT Edge deployments) and the content applied to single edge devices.
// Configuration IDs are compared exactly (they are lower case by rule).
type ConfigurationStore interface {
	// Configuration returns one configuration. Errors: fault.NotFound.
	Configuration(ctx context.Context, id string) (Configuration, error)
	// CreateConfiguration stores a new configuration. Errors:
	// fault.Conflict when one with its ID exists.
	CreateConfiguration(ctx context.Context, c Configuration) error
	// UpdateConfiguration replaces the configuration whose stored etag is
	// etag ("" for any). Errors: fault.NotFound, fault.PreconditionFailed.
	UpdateConfiguration(ctx context.Context, c Configuration, etag string) error
	// DeleteConfiguration deletes the configuration whose stored etag is
	// etag ("" for any). Errors: fault.NotFound, fault.PreconditionFailed.
	DeleteConfiguration(ctx context.Context, id, etag string) error
	// Configurations lists at most limit configurations ordered by ID.
	Configurations(ctx context.Context, limit int) ([]Configuration, error)

	// DeviceDeployment returns the content last applied to one device with
	// applyConfigurationContent. Errors: fault.NotFound.
	DeviceDeployment(ctx context.Context, deviceID string) (DeviceDeployment, error)
	// PutDeviceDeployment creates or replaces a device's content.
	PutDeviceDeployment(ctx context.Context, d DeviceDeployment) error
	// DeleteDeviceDeployment removes a device's content; removing content
	// that does not exist is not an error.
	DeleteDeviceDeployment(ctx context.Context, deviceID string) error
}
