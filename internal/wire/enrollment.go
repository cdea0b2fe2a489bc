package wire

import (
	"github.com/usher-iot/usher/internal/dps"
)

// IndividualEnrollment is Azure's IndividualEnrollment (dps-protocol.md §8.6).
type IndividualEnrollment struct {
	RegistrationID            string                   `json:"registrationId"`
	DeviceID                  string                   `json:"deviceId,omitempty"`
	RegistrationState         *DeviceRegistrationState `json:"registrationState,omitempty"`
	OptionalDeviceInformation map[string]any           `json:"optionalDeviceInformation,omitempty"`
	EnrollmentSettings
}

// EnrollmentGroup is Azure's EnrollmentGroup.
type EnrollmentGroup struct {
	EnrollmentGroupID string `json:"enrollmentGroupId"`
	EnrollmentSettings
}

// EnrollmentSettings are the members IndividualEnrollment and EnrollmentGroup
// share.
type EnrollmentSettings struct {
	Attestation                *AttestationMechanism       `json:"attestation"`
	Capabilities               *Capabilities               `json:"capabilities,omitempty"`
	IoTHubHostName             string                      `json:"iotHubHostName,omitempty"`
	InitialTwin                *InitialTwin                `json:"initialTwin,omitempty"`
	ETag                       string                      `json:"etag,omitempty"`
	ProvisioningStatus         string                      `json:"provisioningStatus,omitempty"`
	ReprovisionPolicy          *ReprovisionPolicy          `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         string                      `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     string                      `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                      `json:"allocationPolicy,omitempty"`
	IoTHubs                    []string                    `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *CustomAllocationDefinition `json:"customAllocationDefinition,omitempty"`
}

// AttestationMechanism is Azure's AttestationMechanism. TPM and X.509 bodies
// are accepted as raw JSON only so that they can be refused clearly.
type AttestationMechanism struct {
	Type         string                   `json:"type"`
	SymmetricKey *SymmetricKeyAttestation `json:"symmetricKey,omitempty"`
	TPM          any                      `json:"tpm,omitempty"`
	X509         any                      `json:"x509,omitempty"`
}

// SymmetricKeyAttestation carries the two keys. Masked answers send both as
// null, as Azure does.
type SymmetricKeyAttestation struct {
	PrimaryKey   *string `json:"primaryKey"`
	SecondaryKey *string `json:"secondaryKey"`
}

// Capabilities is Azure's DeviceCapabilities.
type Capabilities struct {
	IoTEdge bool `json:"iotEdge"`
}

// InitialTwin is Azure's InitialTwin.
type InitialTwin struct {
	Tags       map[string]any         `json:"tags"`
	Properties *InitialTwinProperties `json:"properties,omitempty"`
}

// InitialTwinProperties is Azure's InitialTwinProperties.
type InitialTwinProperties struct {
	Desired map[string]any `json:"desired"`
}

// ReprovisionPolicy is Azure's ReprovisionPolicy.
type ReprovisionPolicy struct {
	UpdateHubAssignment bool `json:"updateHubAssignment"`
	MigrateDeviceData   bool `json:"migrateDeviceData"`
}

// CustomAllocationDefinition is Azure's CustomAllocationDefinition.
type CustomAllocationDefinition struct {
	WebhookURL string `json:"webhookUrl"`
	APIVersion string `json:"apiVersion"`
}

// ToEnrollment converts a decoded body to the domain type.
func (e *IndividualEnrollment) ToEnrollment() dps.Enrollment {
	return dps.Enrollment{
		RegistrationID:            e.RegistrationID,
		DeviceID:                  e.DeviceID,
		OptionalDeviceInformation: e.OptionalDeviceInformation,
		Settings:                  e.EnrollmentSettings.toDomain(),
	}
}

// ToGroup converts a decoded body to the domain type.
func (g *EnrollmentGroup) ToGroup() dps.Group {
	return dps.Group{ID: g.EnrollmentGroupID, Settings: g.EnrollmentSettings.toDomain()}
}

func (s *EnrollmentSettings) toDomain() dps.Settings {
	out := dps.Settings{
		ProvisioningStatus: dps.ProvisioningStatus(s.ProvisioningStatus),
		IoTHubHostName:     s.IoTHubHostName,
		AllocationPolicy:   s.AllocationPolicy,
		IoTHubs:            s.IoTHubs,
		ETag:               unquoteETag(s.ETag),
	}
	if a := s.Attestation; a != nil {
		out.Attestation.Type = dps.AttestationType(a.Type)
		if k := a.SymmetricKey; k != nil {
			out.Attestation.PrimaryKey = deref(k.PrimaryKey)
			out.Attestation.SecondaryKey = deref(k.SecondaryKey)
		}
	}
	if s.Capabilities != nil {
		out.IoTEdge = s.Capabilities.IoTEdge
	}
	if t := s.InitialTwin; t != nil {
		out.InitialTwin = &dps.InitialTwin{Tags: t.Tags}
		if t.Properties != nil {
			out.InitialTwin.Desired = t.Properties.Desired
		}
	}
	if r := s.ReprovisionPolicy; r != nil {
		out.ReprovisionPolicy = &dps.ReprovisionPolicy{UpdateHubAssignment: r.UpdateHubAssignment, MigrateDeviceData: r.MigrateDeviceData}
	}
	if c := s.CustomAllocationDefinition; c != nil {
		out.CustomAllocation = &dps.CustomAllocation{WebhookURL: c.WebhookURL, APIVersion: c.APIVersion}
	}
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// KeyMode says whether an answer carries symmetric keys.
type KeyMode bool

// Key modes.
const (
	MaskKeys KeyMode = false
	ShowKeys KeyMode = true
)

// FromEnrollment renders an enrollment.
func FromEnrollment(e dps.Enrollment, keys KeyMode) IndividualEnrollment {
	return IndividualEnrollment{
		RegistrationID:            e.RegistrationID,
		DeviceID:                  e.DeviceID,
		OptionalDeviceInformation: e.OptionalDeviceInformation,
		EnrollmentSettings:        fromSettings(e.Settings, keys),
	}
}

// FromGroup renders an enrollment group.
func FromGroup(g dps.Group, keys KeyMode) EnrollmentGroup {
	return EnrollmentGroup{EnrollmentGroupID: g.ID, EnrollmentSettings: fromSettings(g.Settings, keys)}
}

func fromSettings(s dps.Settings, keys KeyMode) EnrollmentSettings {
	out := EnrollmentSettings{
		Attestation:            FromAttestation(s.Attestation, keys),
		Capabilities:           &Capabilities{IoTEdge: s.IoTEdge},
		IoTHubHostName:         s.IoTHubHostName,
		ETag:                   quoteETag(s.ETag),
		ProvisioningStatus:     string(s.ProvisioningStatus),
		CreatedDateTimeUTC:     FormatTime(s.Created),
		LastUpdatedDateTimeUTC: FormatTime(s.Updated),
		AllocationPolicy:       s.AllocationPolicy,
		IoTHubs:                s.IoTHubs,
	}
	if t := s.InitialTwin; t != nil {
		out.InitialTwin = &InitialTwin{Tags: orEmpty(t.Tags), Properties: &InitialTwinProperties{Desired: orEmpty(t.Desired)}}
	}
	if r := s.ReprovisionPolicy; r != nil {
		out.ReprovisionPolicy = &ReprovisionPolicy{UpdateHubAssignment: r.UpdateHubAssignment, MigrateDeviceData: r.MigrateDeviceData}
	}
	if c := s.CustomAllocation; c != nil {
		out.CustomAllocationDefinition = &CustomAllocationDefinition{WebhookURL: c.WebhookURL, APIVersion: c.APIVersion}
	}
	return out
}

// FromAttestation renders an attestation mechanism, with or without keys.
func FromAttestation(a dps.Attestation, keys KeyMode) *AttestationMechanism {
	out := &AttestationMechanism{Type: string(a.Type)}
	if a.Type == dps.SymmetricKey {
		out.SymmetricKey = &SymmetricKeyAttestation{}
		if keys == ShowKeys {
			p, s := a.PrimaryKey, a.SecondaryKey
			out.SymmetricKey.PrimaryKey, out.SymmetricKey.SecondaryKey = &p, &s
		}
	}
	return out
}

// orEmpty renders an absent twin collection as {} (Azure always shows both).
func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// quoteETag renders a stored etag as Azure does: a quoted string. Clients
// send it back in If-Match quoted or not; the domain strips the quotes.
func quoteETag(etag string) string {
	if etag == "" {
		return ""
	}
	return `"` + etag + `"`
}

// unquoteETag reads an etag echoed in a body, quoted as quoteETag renders
// it or bare as the Node SDK sends it back, into the stored form, so that a
// rendered enrollment decodes to the one it was rendered from.
func unquoteETag(etag string) string {
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag[1 : len(etag)-1]
	}
	return etag
}
