package wire

import (
	"bytes"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
)

// DeviceRegistration is the body a device sends to register
// (dps-protocol.md §2.4). Python sends "payload": null; C# over MQTT sends no
// registrationId; tpm is accepted only to be refused clearly.
type DeviceRegistration struct {
	RegistrationID string         `json:"registrationId"`
	Payload        map[string]any `json:"payload"`
	TPM            any            `json:"tpm,omitempty"`
}

// DecodeDeviceRegistration decodes the optional body of a register request,
// the same on every transport: an empty (or all-space) body is no body (C#
// over MQTT, the C SDK without a payload), anything else must be a
// DeviceRegistration. A body with tpm is refused as fault.Unsupported until
// TPM attestation exists.
func DecodeDeviceRegistration(body []byte) (DeviceRegistration, error) {
	var reg DeviceRegistration
	if len(bytes.TrimSpace(body)) == 0 {
		return reg, nil
	}
	if err := Decode(body, &reg); err != nil {
		return DeviceRegistration{}, err
	}
	if reg.TPM != nil {
		return DeviceRegistration{}, fault.New(fault.Unsupported, "TPM attestation is not supported yet; use a symmetric key")
	}
	return reg, nil
}

// RegistrationOperationStatus is what register and poll answer
// (dps-protocol.md §2.5, §2.6).
type RegistrationOperationStatus struct {
	OperationID       string                    `json:"operationId"`
	Status            string                    `json:"status"`
	RegistrationState *DeviceRegistrationResult `json:"registrationState,omitempty"`
}

// DeviceRegistrationResult is the device's view of its registration state.
type DeviceRegistrationResult struct {
	DeviceRegistrationState
	SymmetricKey *SymmetricKeyRegistrationResult `json:"symmetricKey,omitempty"`
}

// SymmetricKeyRegistrationResult names the group a device registered
// through.
type SymmetricKeyRegistrationResult struct {
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
}

// Assigning is the first answer to a registration (Azure's clients need 202
// "assigning" with an operationId, and registrationState.registrationId while
// assigning — aziot-identityd fails without it).
func Assigning(op dps.Operation) RegistrationOperationStatus {
	return RegistrationOperationStatus{
		OperationID: op.ID,
		Status:      string(dps.Assigning),
		RegistrationState: &DeviceRegistrationResult{DeviceRegistrationState: DeviceRegistrationState{
			RegistrationID: op.RegistrationID, Status: string(dps.Assigning),
		}},
	}
}

// FromOperation renders a finished operation for a poll.
func FromOperation(op dps.Operation) RegistrationOperationStatus {
	r := FromDeviceRegistration(op.Registration)
	return RegistrationOperationStatus{OperationID: op.ID, Status: string(op.Status), RegistrationState: &r}
}

// FromDeviceRegistration renders a registration record for its device.
func FromDeviceRegistration(r dps.Registration) DeviceRegistrationResult {
	out := DeviceRegistrationResult{DeviceRegistrationState: FromRegistration(r)}
	if r.GroupID != "" {
		out.SymmetricKey = &SymmetricKeyRegistrationResult{EnrollmentGroupID: r.GroupID}
	}
	return out
}
