package wire

import (
	"fmt"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

// HubErrorBody is IoT Hub's error envelope (hub-protocol.md §1.3): the
// legacy "ErrorCode:<Name>;<text>" Message satisfies the Node, .NET and
// aziot parsers alike.
type HubErrorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

type hubError struct {
	status int
	name   string
}

// hubErrors maps every fault.Kind to IoT Hub's status and error code name.
var hubErrors = map[fault.Kind]hubError{
	fault.Malformed:            {400, "IotHubFormatError"},
	fault.Invalid:              {400, "ArgumentInvalid"},
	fault.Unsupported:          {400, "ArgumentInvalid"},
	fault.Unauthenticated:      {401, "IotHubUnauthorizedAccess"},
	fault.Forbidden:            {401, "IotHubUnauthorizedAccess"},
	fault.NotFound:             {404, "DeviceNotFound"},
	fault.MethodNotAllowed:     {405, "MethodNotAllowed"},
	fault.Conflict:             {409, "DeviceAlreadyExists"},
	fault.PreconditionFailed:   {412, "PreconditionFailed"},
	fault.TooLarge:             {413, "MessageTooLarge"},
	fault.UnsupportedMediaType: {415, "UnsupportedMediaType"},
	fault.Throttled:            {429, "ThrottlingException"},
	fault.Internal:             {500, "ServerError"},
	fault.Unavailable:          {503, "ServiceUnavailable"},
}

// HubError returns the status, the iothub-errorcode name and the body for
// err on the hub's surfaces.
func HubError(err error, trackingID string, now time.Time) (int, string, HubErrorBody) {
	e, ok := hubErrors[fault.KindOf(err)]
	if !ok {
		e = hubErrors[fault.Internal]
	}
	return e.status, e.name, HubErrorBody{
		Message:          "ErrorCode:" + e.name + ";" + fault.MessageOf(err),
		ExceptionMessage: fmt.Sprintf("Tracking ID:%s-TimeStamp:%s", trackingID, now.UTC().Format("01/02/2006 15:04:05")),
	}
}

// neverTime is how IoT Hub renders "never".
const neverTime = "0001-01-01T00:00:00Z"

func hubTime(t time.Time) string {
	if t.IsZero() {
		return neverTime
	}
	return FormatTime(t)
}

// Device is IoT Hub's Device JSON (hub-protocol.md §2.1).
type Device struct {
	DeviceID                   string               `json:"deviceId"`
	GenerationID               string               `json:"generationId"`
	ETag                       string               `json:"etag"`
	ConnectionState            string               `json:"connectionState"`
	ConnectionStateUpdatedTime string               `json:"connectionStateUpdatedTime"`
	Status                     string               `json:"status"`
	StatusReason               *string              `json:"statusReason"`
	StatusUpdatedTime          string               `json:"statusUpdatedTime"`
	LastActivityTime           string               `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int                  `json:"cloudToDeviceMessageCount"`
	Authentication             DeviceAuthentication `json:"authentication"`
	Capabilities               Capabilities         `json:"capabilities"`
	DeviceScope                string               `json:"deviceScope,omitempty"`
	ParentScopes               []string             `json:"parentScopes"`
}

// DeviceAuthentication is IoT Hub's AuthenticationMechanism.
type DeviceAuthentication struct {
	SymmetricKey   *HubSymmetricKey `json:"symmetricKey"`
	X509Thumbprint X509Thumbprint   `json:"x509Thumbprint"`
	Type           string           `json:"type"`
}

// HubSymmetricKey carries a hub identity's keys.
type HubSymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint is always present in IoT Hub's answers, null for SAS.
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// FromDevice renders a device identity.
func FromDevice(d hub.Device) Device {
	out := Device{
		DeviceID: d.ID, GenerationID: d.GenerationID, ETag: d.ETag, ConnectionState: "Disconnected",
		ConnectionStateUpdatedTime: neverTime, Status: string(d.Status), StatusUpdatedTime: hubTime(d.StatusUpdated),
		LastActivityTime: neverTime,
		Authentication:   DeviceAuthentication{SymmetricKey: &HubSymmetricKey{PrimaryKey: d.PrimaryKey, SecondaryKey: d.SecondaryKey}, Type: "sas"},
		Capabilities:     Capabilities{IoTEdge: d.IoTEdge}, DeviceScope: d.DeviceScope, ParentScopes: []string{},
	}
	if d.StatusReason != "" {
		r := d.StatusReason
		out.StatusReason = &r
	}
	return out
}

// Twin is IoT Hub's Twin JSON (hub-protocol.md §3.2).
type Twin struct {
	DeviceID          string         `json:"deviceId"`
	ModuleID          string         `json:"moduleId,omitempty"`
	ETag              string         `json:"etag"`
	DeviceETag        string         `json:"deviceEtag"`
	Status            string         `json:"status"`
	StatusUpdateTime  string         `json:"statusUpdateTime"`
	ConnectionState   string         `json:"connectionState"`
	LastActivityTime  string         `json:"lastActivityTime"`
	C2DMessageCount   int            `json:"cloudToDeviceMessageCount"`
	AuthenticationTyp string         `json:"authenticationType"`
	X509Thumbprint    X509Thumbprint `json:"x509Thumbprint"`
	ModelID           string         `json:"modelId"`
	Version           int64          `json:"version"`
	Tags              map[string]any `json:"tags"`
	Properties        TwinProperties `json:"properties"`
	Capabilities      *Capabilities  `json:"capabilities,omitempty"`
	DeviceScope       string         `json:"deviceScope,omitempty"`
	ParentScopes      []string       `json:"parentScopes,omitempty"`
}

// TwinProperties holds desired and reported properties, each with its
// $version.
type TwinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// FromTwin renders a device twin with its device's projection.
func FromTwin(t hub.Twin, d hub.Device) Twin {
	out := Twin{
		DeviceID: t.DeviceID, ModuleID: t.ModuleID, ETag: t.ETag, DeviceETag: d.ETag, Status: string(d.Status),
		StatusUpdateTime: hubTime(d.StatusUpdated), ConnectionState: "Disconnected", LastActivityTime: neverTime,
		AuthenticationTyp: "sas", Version: t.Version, Tags: orEmpty(t.Tags),
		Properties: TwinProperties{Desired: withVersion(t.Desired, t.DesiredVersion), Reported: withVersion(t.Reported, t.ReportedVersion)},
	}
	if t.ModuleID == "" {
		out.Capabilities = &Capabilities{IoTEdge: d.IoTEdge}
		out.DeviceScope = d.DeviceScope
	}
	return out
}

// withVersion copies a property collection and adds its "$version".
func withVersion(m map[string]any, version int64) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out["$version"] = version
	return out
}
