package hub

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// Status says whether a device may connect.
type Status string

// Device statuses.
const (
	Enabled  Status = "enabled"
	Disabled Status = "disabled"
)

// Device is an identity in the registry. Device IDs are case-sensitive, as
// in IoT Hub.
type Device struct {
	ID            string
	GenerationID  string
	ETag          string
	Status        Status
	StatusReason  string
	StatusUpdated time.Time
	PrimaryKey    string // symmetric keys (base64); "sas" authentication
	SecondaryKey  string
	IoTEdge       bool
	DeviceScope   string // ms-azure-iot-edge://{id}-{generationId} for edge devices
	Created       time.Time
	Updated       time.Time
}

// Module is a module identity of a device ($edgeAgent, $edgeHub, or one an
// edge runtime creates).
type Module struct {
	DeviceID     string
	ID           string
	GenerationID string
	ETag         string
	ManagedBy    string
	PrimaryKey   string
	SecondaryKey string
	Created      time.Time
	Updated      time.Time
}

// Twin is a device or module twin. Tags and desired properties are written
// by the service side, reported properties by the device.
type Twin struct {
	DeviceID        string
	ModuleID        string // "" for a device twin
	ETag            string
	Version         int64
	Tags            map[string]any
	Desired         map[string]any
	DesiredVersion  int64
	Reported        map[string]any
	ReportedVersion int64
	// Configurations maps a configuration (deployment) ID to its status on
	// this twin: "Targeted" or "Applied".
	Configurations map[string]string
	Updated        time.Time
}

// Identity is a device with its twin and its module identities and their
// twins: what provisioning creates in one atomic step.
type Identity struct {
	Device      Device
	Twin        Twin
	Modules     []Module
	ModuleTwins []Twin
}

// Edge system modules created with every IoT Edge device (hub-protocol.md §2.1).
const (
	EdgeAgent = "$edgeAgent"
	EdgeHub   = "$edgeHub"
)

// ValidateDeviceID checks IoT Hub's device ID rules: 1–128 ASCII letters,
// digits and - : . + % _ # * ? ! ( ) , = @ ; $ '.
func ValidateDeviceID(id string) error { return validateID("device ID", id) }

// ValidateModuleID checks a module ID: the same rules as device IDs
// (hub-protocol.md §2.2).
func ValidateModuleID(id string) error { return validateID("module ID", id) }

func validateID(what, id string) error {
	if id == "" || len(id) > 128 {
		return fault.New(fault.Invalid, "%s must be 1 to 128 characters long", what)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-:.+%_#*?!(),=@;$'", c) >= 0) {
			return fault.New(fault.Invalid, "%s %q contains %q, which IoT Hub does not allow", what, id, string(rune(c)))
		}
	}
	return nil
}

// newGenerationID returns an 18-digit decimal, the shape of IoT Hub's
// generation IDs; it is unique per (re)creation of an identity.
func newGenerationID(now time.Time) string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000)) // crypto/rand does not fail
	return fmt.Sprintf("6%011d%06d", now.Unix()%100_000_000_000, n.Int64())
}

func newETag() string {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	return fmt.Sprintf("%016x", n)
}

func edgeScope(id, generation string) string {
	return "ms-azure-iot-edge://" + id + "-" + generation
}
