package dps

import "context"

// Assignment is what provisioning asks of an IoT hub for one device: create
// or update its identity with the keys it attested with, and seed its twin.
type Assignment struct {
	DeviceID     string
	PrimaryKey   string
	SecondaryKey string
	IoTEdge      bool
	InitialTwin  *InitialTwin
	// ResetTwin asks the hub to replace an existing device's twin with the
	// initial twin (reprovisioning with migrateDeviceData false).
	ResetTwin bool
}

// Hub is an IoT hub devices can be assigned to. The built-in hub is one;
// linked external hubs will be others.
type Hub interface {
	// HostName is the name devices connect to (the assignedHub).
	HostName() string
	// Assign creates or updates the device. Errors are reported to the
	// device as a failed registration.
	Assign(ctx context.Context, a Assignment) error
}

// Allocator picks the hub for a registration: the seam where allocation
// policies (hashed, static, custom webhook) plug in.
type Allocator interface {
	Allocate(ctx context.Context, req AllocationRequest) (Hub, error)
}

// AllocationRequest is what an allocation policy may look at.
type AllocationRequest struct {
	RegistrationID string
	Settings       *Settings // of the enrollment or group that admitted the device
	CurrentHub     string    // the hub of a previous assignment, "" if none
	Payload        map[string]any
}

// SingleHub allocates every device to one hub.
type SingleHub struct{ Hub Hub }

// Allocate implements Allocator.
func (s SingleHub) Allocate(context.Context, AllocationRequest) (Hub, error) { return s.Hub, nil }
