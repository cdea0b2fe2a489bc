package dps

import "time"

// RegistrationStatus is the state of a device's registration, spelled as the
// Azure SDKs compare it (lower case, exact).
type RegistrationStatus string

// Registration statuses (dps-protocol.md §2.5).
const (
	Unassigned RegistrationStatus = "unassigned"
	Assigning  RegistrationStatus = "assigning"
	Assigned   RegistrationStatus = "assigned"
	Failed     RegistrationStatus = "failed"
	StatusOff  RegistrationStatus = "disabled"
)

// Registration is the record DPS keeps of a device that registered: where it
// was assigned and how the last attempt ended. Devices create them by
// registering; operators can read and delete them but not change them.
type Registration struct {
	RegistrationID string
	GroupID        string // enrollment group the device registered through; "" for individual enrollments
	DeviceID       string
	AssignedHub    string
	Status         RegistrationStatus
	Substatus      string
	ErrorCode      int
	ErrorMessage   string
	Payload        map[string]any
	ETag           string
	Created        time.Time
	Updated        time.Time
}
