package dps

import (
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// ProvisioningStatus says whether devices may provision through an
// enrollment.
type ProvisioningStatus string

// Provisioning statuses as Azure spells them.
const (
	Enabled  ProvisioningStatus = "enabled"
	Disabled ProvisioningStatus = "disabled"
)

// AttestationType is how a device proves who it is.
type AttestationType string

// Attestation types Azure knows. Usher implements SymmetricKey; the others are
// refused with fault.Unsupported until their issues land.
const (
	SymmetricKey AttestationType = "symmetricKey"
	X509         AttestationType = "x509"
	TPM          AttestationType = "tpm"
	NoAttestion  AttestationType = "none"
)

// Key sizes (dps-protocol.md §8.7): generated keys are 64 random bytes;
// supplied keys must decode to 16–64 bytes.
const (
	GeneratedKeyBytes = 64
	MinKeyBytes       = 16
	MaxKeyBytes       = 64
)

// Attestation is an enrollment's attestation mechanism. For SymmetricKey the
// keys are base64; empty keys on input mean "generate" (create) or "keep"
// (update).
type Attestation struct {
	Type         AttestationType
	PrimaryKey   string
	SecondaryKey string
}

// Masked returns a copy without key material, as GET and query answer.
func (a Attestation) Masked() Attestation {
	return Attestation{Type: a.Type}
}

// InitialTwin is the twin state a device's hub identity starts with. Both
// collections are free-form JSON objects (nil when absent).
type InitialTwin struct {
	Tags    map[string]any
	Desired map[string]any
}

// ReprovisionPolicy says what happens when a provisioned device registers
// again (stored and echoed; acted on by the reprovisioning issue).
type ReprovisionPolicy struct {
	UpdateHubAssignment bool
	MigrateDeviceData   bool
}

// CustomAllocation names an allocation webhook (stored and echoed).
type CustomAllocation struct {
	WebhookURL string
	APIVersion string
}

// Settings are the fields individual enrollments and groups share.
type Settings struct {
	Attestation        Attestation
	IoTEdge            bool
	InitialTwin        *InitialTwin
	ProvisioningStatus ProvisioningStatus
	ReprovisionPolicy  *ReprovisionPolicy
	AllocationPolicy   string // "", hashed, geoLatency, static, custom
	IoTHubs            []string
	IoTHubHostName     string
	CustomAllocation   *CustomAllocation
	ETag               string
	Created            time.Time
	Updated            time.Time
}

// Enrollment is an individual enrollment: one device, one registration ID.
type Enrollment struct {
	RegistrationID            string
	DeviceID                  string
	OptionalDeviceInformation map[string]any
	Settings
}

// Group is an enrollment group: many devices, each proving itself with a key
// derived from the group's key and its own registration ID.
type Group struct {
	ID string
	Settings
}

var allocationPolicies = []string{"hashed", "geoLatency", "static", "custom"}

// Validate checks the shared settings and normalises case-insensitive enums
// to Azure's spelling.
func (s *Settings) Validate() error {
	if err := s.validateAttestation(); err != nil {
		return err
	}
	switch strings.ToLower(string(s.ProvisioningStatus)) {
	case "", "enabled":
		s.ProvisioningStatus = Enabled
	case "disabled":
		s.ProvisioningStatus = Disabled
	default:
		return fault.New(fault.Invalid, "provisioningStatus %q is not one of enabled, disabled", s.ProvisioningStatus)
	}
	if s.ReprovisionPolicy == nil {
		s.ReprovisionPolicy = &ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
	}
	if s.AllocationPolicy != "" {
		found := false
		for _, p := range allocationPolicies {
			if strings.EqualFold(p, s.AllocationPolicy) {
				s.AllocationPolicy, found = p, true
			}
		}
		if !found {
			return fault.New(fault.Invalid, "allocationPolicy %q is not one of %s", s.AllocationPolicy, strings.Join(allocationPolicies, ", "))
		}
	}
	if s.CustomAllocation != nil {
		if s.CustomAllocation.WebhookURL == "" || s.CustomAllocation.APIVersion == "" {
			return fault.New(fault.Invalid, "customAllocationDefinition needs webhookUrl and apiVersion")
		}
		if !strings.HasPrefix(strings.ToLower(s.CustomAllocation.WebhookURL), "https://") {
			return fault.New(fault.Invalid, "customAllocationDefinition.webhookUrl must be an https URL")
		}
	}
	if s.AllocationPolicy == "custom" && s.CustomAllocation == nil {
		return fault.New(fault.Invalid, "allocationPolicy custom needs a customAllocationDefinition")
	}
	for i, h := range s.IoTHubs {
		if strings.TrimSpace(h) == "" || len(h) > 255 {
			return fault.New(fault.Invalid, "iotHubs[%d] is not a host name", i)
		}
	}
	return nil
}

func (s *Settings) validateAttestation() error {
	a := &s.Attestation
	switch strings.ToLower(string(a.Type)) {
	case "symmetrickey":
		a.Type = SymmetricKey
	case "x509", "tpm":
		return fault.New(fault.Unsupported, "attestation type %q is not supported yet; use symmetricKey", a.Type)
	case "":
		return fault.New(fault.Invalid, "attestation.type is required")
	default:
		return fault.New(fault.Invalid, "attestation type %q is unknown; use symmetricKey", a.Type)
	}
	for _, k := range []struct{ name, v string }{{"primaryKey", a.PrimaryKey}, {"secondaryKey", a.SecondaryKey}} {
		if k.v == "" {
			continue
		}
		if err := validateKey(k.name, k.v); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks an individual enrollment.
func (e *Enrollment) Validate() error {
	if err := ValidateID("registrationId", e.RegistrationID); err != nil {
		return err
	}
	if e.DeviceID != "" {
		if err := ValidateDeviceID(e.DeviceID); err != nil {
			return err
		}
	}
	return e.Settings.Validate()
}

// Validate checks an enrollment group.
func (g *Group) Validate() error {
	if err := ValidateID("enrollmentGroupId", g.ID); err != nil {
		return err
	}
	return g.Settings.Validate()
}

// ValidateDeviceID checks an IoT Hub device ID: up to 128 characters, ASCII
// letters, digits and - . % _ * ? ! ( ) , : = @ $ ' (IoT Hub identity registry rules).
func ValidateDeviceID(id string) error {
	if id == "" || len(id) > 128 {
		return fault.New(fault.Invalid, "deviceId must be 1 to 128 characters long")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !alnum(c) && !strings.ContainsRune("-.%_*?!(),:=@$'+#;", rune(c)) {
			return fault.New(fault.Invalid, "deviceId %q contains %q, which IoT Hub does not allow", id, string(rune(c)))
		}
	}
	return nil
}
