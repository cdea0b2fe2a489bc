package hub

import "github.com/usher-iot/usher/internal/fault"

// Reasons refine a fault.Kind where IoT Hub's error codes tell apart what
// one kind covers (hub-protocol.md §1.4). Package wire maps each one, once,
// to IoT Hub's status and error code name; the comment names the kind each
// goes with.
const (
	// ReasonModuleNotFound (NotFound): the device exists, the module does
	// not.
	ReasonModuleNotFound fault.Reason = "hub.module-not-found"
	// ReasonModuleExists (Conflict): create of a module that exists.
	ReasonModuleExists fault.Reason = "hub.module-exists"
	// ReasonDeviceNotOnline (NotFound): a direct method's target is not
	// connected or does not listen for methods.
	ReasonDeviceNotOnline fault.Reason = "hub.device-not-online"
	// ReasonTwinTooLarge (TooLarge): a twin collection over its size limit;
	// IoT Hub rejects those as a bad argument, not as a large message
	// (hub-protocol.md §3.4).
	ReasonTwinTooLarge fault.Reason = "hub.twin-too-large"
	// ReasonTooManyDevices (TooLarge): a bulk operation over MaxBulkDevices.
	ReasonTooManyDevices fault.Reason = "hub.too-many-devices"
	// ReasonTooManyModules (TooLarge): a device already has MaxModules.
	ReasonTooManyModules fault.Reason = "hub.too-many-modules"
	// ReasonDuplicateDevice (Invalid): one device ID twice in a bulk
	// operation.
	ReasonDuplicateDevice fault.Reason = "hub.duplicate-device"
)

// Reasons lists every reason above, for tables that must cover them all.
func Reasons() []fault.Reason {
	return []fault.Reason{ReasonModuleNotFound, ReasonModuleExists, ReasonDeviceNotOnline, ReasonTwinTooLarge,
		ReasonTooManyDevices, ReasonTooManyModules, ReasonDuplicateDevice}
}
