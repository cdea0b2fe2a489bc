package wire

import (
	"fmt"
	"strings"
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

// hubErrors maps every fault.Kind to IoT Hub's status and error code name
// (hub-protocol.md §1.4).
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
	fault.Timeout:              {504, "GatewayTimeout"},
}

// hubReasons take precedence over hubErrors where the hub domain named a
// failure more finely than its kind (see hub.Reasons).
var hubReasons = map[fault.Reason]hubError{
	hub.ReasonModuleNotFound:  {404, "ModuleNotFound"},
	hub.ReasonModuleExists:    {409, "ModuleAlreadyExistsOnDevice"},
	hub.ReasonDeviceNotOnline: {404, "DeviceNotOnline"},
	hub.ReasonTwinTooLarge:    {400, "ArgumentInvalid"},
	hub.ReasonTooManyDevices:  {413, "TooManyDevices"},
	hub.ReasonTooManyModules:  {413, "TooManyModulesOnDevice"},
	hub.ReasonDuplicateDevice: {400, "DeviceDefinedMultipleTimes"},

	hub.ReasonConfigurationNotFound:       {404, "ConfigurationNotFound"},
	hub.ReasonConfigurationExists:         {409, "ConfigurationAlreadyExists"},
	hub.ReasonInvalidTargetCondition:      {400, "InvalidConfigurationTargetCondition"},
	hub.ReasonInvalidConfigurationContent: {400, "InvalidConfigurationContent"},
	hub.ReasonInvalidMetricQuery:          {400, "InvalidConfigurationCustomMetricsQuery"},
	hub.ReasonImmutableContent:            {400, "CannotModifyImmutableConfigurationContent"},
	hub.ReasonTooManyConfigurations:       {403, "IotHubQuotaExceeded"},
}

func hubErrorOf(err error) hubError {
	if e, ok := hubReasons[fault.ReasonOf(err)]; ok {
		return e
	}
	if e, ok := hubErrors[fault.KindOf(err)]; ok {
		return e
	}
	return hubErrors[fault.Internal]
}

// HubErrorCode returns IoT Hub's error code name for err (bulk results
// carry it per item).
func HubErrorCode(err error) string { return hubErrorOf(err).name }

// HubError returns the status, the iothub-errorcode name and the body for
// err on the hub's surfaces.
func HubError(err error, trackingID string, now time.Time) (int, string, HubErrorBody) {
	e := hubErrorOf(err)
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
	Capabilities               *Capabilities        `json:"capabilities"`
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

// ConnectionState renders whether an identity is connected, as IoT Hub
// spells it.
func ConnectionState(connected bool) string {
	if connected {
		return "Connected"
	}
	return "Disconnected"
}

// FromDevice renders a device identity with its connection.
func FromDevice(d hub.Device, c hub.Connection) Device {
	out := Device{
		DeviceID: d.ID, GenerationID: d.GenerationID, ETag: d.ETag, ConnectionState: ConnectionState(c.Connected),
		ConnectionStateUpdatedTime: hubTime(c.Updated), Status: string(d.Status), StatusUpdatedTime: hubTime(d.StatusUpdated),
		LastActivityTime: hubTime(c.LastActivity),
		Authentication:   sasAuthentication(d.PrimaryKey, d.SecondaryKey),
		Capabilities:     &Capabilities{IoTEdge: d.IoTEdge}, DeviceScope: d.DeviceScope, ParentScopes: []string{},
	}
	if d.StatusReason != "" {
		r := d.StatusReason
		out.StatusReason = &r
	}
	return out
}

// ToDeviceSpec reads what a client may set from a Device body (PUT
// /devices/{id}); the read-only fields SDKs echo are ignored. The .NET and
// Node SDKs leave authentication.type out at times: a thumbprint then means
// selfSigned, else sas (hub-protocol.md §2.1).
func (d Device) ToDeviceSpec() hub.DeviceSpec {
	spec := hub.DeviceSpec{ID: d.DeviceID, Status: hub.Status(d.Status), AuthType: d.Authentication.authType()}
	if d.StatusReason != nil {
		spec.StatusReason = *d.StatusReason
	}
	if k := d.Authentication.SymmetricKey; k != nil {
		spec.PrimaryKey, spec.SecondaryKey = k.PrimaryKey, k.SecondaryKey
	}
	if d.Capabilities != nil {
		edge := d.Capabilities.IoTEdge
		spec.IoTEdge = &edge
	}
	return spec
}

func (a DeviceAuthentication) authType() string {
	if a.Type != "" {
		return a.Type
	}
	if t := a.X509Thumbprint; t.PrimaryThumbprint != nil && *t.PrimaryThumbprint != "" || t.SecondaryThumbprint != nil && *t.SecondaryThumbprint != "" {
		return "selfSigned"
	}
	return hub.AuthSAS
}

// sasAuthentication renders a hub identity's symmetric keys.
func sasAuthentication(primary, secondary string) DeviceAuthentication {
	return DeviceAuthentication{SymmetricKey: &HubSymmetricKey{PrimaryKey: primary, SecondaryKey: secondary}, Type: hub.AuthSAS}
}

// Module is IoT Hub's Module JSON (hub-protocol.md §2.2). aziot-identityd
// requires generationId in every answer.
type Module struct {
	ModuleID                   string                `json:"moduleId"`
	ManagedBy                  *string               `json:"managedBy"`
	DeviceID                   string                `json:"deviceId"`
	GenerationID               string                `json:"generationId"`
	ETag                       string                `json:"etag"`
	ConnectionState            string                `json:"connectionState"`
	ConnectionStateUpdatedTime string                `json:"connectionStateUpdatedTime"`
	LastActivityTime           string                `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int                   `json:"cloudToDeviceMessageCount"`
	Authentication             *DeviceAuthentication `json:"authentication"`
}

// FromModule renders a module identity with its connection.
func FromModule(m hub.Module, c hub.Connection) Module {
	auth := sasAuthentication(m.PrimaryKey, m.SecondaryKey)
	out := Module{
		ModuleID: m.ID, DeviceID: m.DeviceID, GenerationID: m.GenerationID, ETag: m.ETag, ConnectionState: ConnectionState(c.Connected),
		ConnectionStateUpdatedTime: hubTime(c.Updated), LastActivityTime: hubTime(c.LastActivity), Authentication: &auth,
	}
	if m.ManagedBy != "" {
		by := m.ManagedBy
		out.ManagedBy = &by
	}
	return out
}

// ToModuleSpec reads what a client may set from a Module body (PUT
// /devices/{id}/modules/{mid}). aziot-identityd creates modules with only
// moduleId and deviceId, then sets keys it derived.
func (m Module) ToModuleSpec() hub.ModuleSpec {
	spec := hub.ModuleSpec{DeviceID: m.DeviceID, ID: m.ModuleID}
	if m.ManagedBy != nil {
		spec.ManagedBy = *m.ManagedBy
	}
	if a := m.Authentication; a != nil {
		spec.AuthType = a.authType()
		if k := a.SymmetricKey; k != nil {
			spec.PrimaryKey, spec.SecondaryKey = k.PrimaryKey, k.SecondaryKey
		}
	}
	return spec
}

// Twin is IoT Hub's Twin JSON (hub-protocol.md §3.2).
type Twin struct {
	DeviceID          string                       `json:"deviceId"`
	ModuleID          string                       `json:"moduleId,omitempty"`
	ETag              string                       `json:"etag"`
	DeviceETag        string                       `json:"deviceEtag"`
	Status            string                       `json:"status"`
	StatusUpdateTime  string                       `json:"statusUpdateTime"`
	ConnectionState   string                       `json:"connectionState"`
	LastActivityTime  string                       `json:"lastActivityTime"`
	C2DMessageCount   int                          `json:"cloudToDeviceMessageCount"`
	AuthenticationTyp string                       `json:"authenticationType"`
	X509Thumbprint    X509Thumbprint               `json:"x509Thumbprint"`
	ModelID           string                       `json:"modelId"`
	Version           int64                        `json:"version"`
	Tags              map[string]any               `json:"tags"`
	Properties        TwinProperties               `json:"properties"`
	Configurations    map[string]TwinConfiguration `json:"configurations,omitempty"`
	Capabilities      *Capabilities                `json:"capabilities,omitempty"`
	DeviceScope       string                       `json:"deviceScope,omitempty"`
	ParentScopes      []string                     `json:"parentScopes,omitempty"`
}

// TwinProperties holds desired and reported properties, each with its
// $version.
type TwinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// FromTwin renders a device or module twin with its device's projection
// and its connection (a twin has no connectionStateUpdatedTime,
// hub-protocol.md §3.2).
func FromTwin(t hub.Twin, d hub.Device, c hub.Connection) Twin {
	out := Twin{
		DeviceID: t.DeviceID, ModuleID: t.ModuleID, ETag: t.ETag, DeviceETag: d.ETag, Status: string(d.Status),
		StatusUpdateTime: hubTime(d.StatusUpdated), ConnectionState: ConnectionState(c.Connected), LastActivityTime: hubTime(c.LastActivity),
		AuthenticationTyp: "sas", Version: t.Version, Tags: orEmpty(t.Tags),
		Properties: TwinProperties{Desired: withVersion(t.Desired, t.DesiredVersion), Reported: withVersion(t.Reported, t.ReportedVersion)},
	}
	if t.ModuleID == "" {
		out.Capabilities = &Capabilities{IoTEdge: d.IoTEdge}
		out.DeviceScope = d.DeviceScope
	}
	if len(t.Configurations) > 0 {
		out.Configurations = make(map[string]TwinConfiguration, len(t.Configurations))
		for id, status := range t.Configurations {
			out.Configurations[id] = TwinConfiguration{Status: status}
		}
	}
	return out
}

// TwinConfiguration is a configuration's status on a twin: "Targeted" or
// "Applied".
type TwinConfiguration struct {
	Status string `json:"status"`
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

// TwinUpdate is the body of a service twin write (PATCH or PUT
// /twins/{id}[/modules/{mid}]). Only tags and properties.desired are read:
// SDKs send whole twins back (deviceId, etag, version, $metadata…), and
// those echoes are ignored.
type TwinUpdate struct {
	Tags       map[string]any        `json:"tags"`
	Properties *TwinUpdateProperties `json:"properties"`
}

// TwinUpdateProperties are the property collections of a twin write.
type TwinUpdateProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

// ToTwinPatch returns the tags and desired properties to write. Reported
// properties belong to the device: a body that sets any (beyond echoed
// $version/$metadata, which .NET sends as "reported": {…}) is
// fault.Invalid (hub-protocol.md §3.3).
func (u TwinUpdate) ToTwinPatch() (hub.TwinPatch, error) {
	p := hub.TwinPatch{Tags: u.Tags}
	if u.Properties != nil {
		for k := range u.Properties.Reported {
			if !strings.HasPrefix(k, "$") {
				return hub.TwinPatch{}, fault.New(fault.Invalid, "properties.reported.%s: reported properties can only be written by the device", k)
			}
		}
		p.Desired = u.Properties.Desired
	}
	return p, nil
}

// ExportImportDevice is one item of a bulk registry operation (POST
// /devices, hub-protocol.md §2.4). Node sends its Device objects with
// deviceId renamed to id, so any echoed Device field may appear; JSON
// names match case-insensitively, so a Device's "etag" fills ETag.
type ExportImportDevice struct {
	ID             string                `json:"id"`
	ModuleID       string                `json:"moduleId,omitempty"`
	ETag           string                `json:"eTag,omitempty"`
	ImportMode     string                `json:"importMode"`
	Status         string                `json:"status,omitempty"`
	StatusReason   *string               `json:"statusReason,omitempty"`
	Authentication *DeviceAuthentication `json:"authentication,omitempty"`
	Capabilities   *Capabilities         `json:"capabilities,omitempty"`
	TwinETag       string                `json:"twinETag,omitempty"`
	Tags           map[string]any        `json:"tags,omitempty"`
	Properties     *TwinUpdateProperties `json:"properties,omitempty"`
}

// ToBulkItem reads one bulk item. Module items are fault.Unsupported.
func (e ExportImportDevice) ToBulkItem() (hub.BulkItem, error) {
	if e.ModuleID != "" {
		return hub.BulkItem{}, fault.New(fault.Unsupported, "bulk operations on modules are not supported yet (module %q of device %q); use PUT /devices/{id}/modules/{mid}", e.ModuleID, e.ID)
	}
	mode, err := hub.ParseBulkMode(e.ImportMode)
	if err != nil {
		return hub.BulkItem{}, err
	}
	d := Device{DeviceID: e.ID, Status: e.Status, StatusReason: e.StatusReason, Capabilities: e.Capabilities}
	if e.Authentication != nil {
		d.Authentication = *e.Authentication
	}
	it := hub.BulkItem{Mode: mode, Device: d.ToDeviceSpec(), ETag: e.ETag, Twin: hub.TwinPatch{Tags: e.Tags}}
	if e.Properties != nil {
		it.Twin.Desired = e.Properties.Desired
	}
	return it, nil
}

// BulkRegistryOperationResult answers POST /devices.
type BulkRegistryOperationResult struct {
	IsSuccessful bool                             `json:"isSuccessful"`
	Errors       []DeviceRegistryOperationError   `json:"errors"`
	Warnings     []DeviceRegistryOperationWarning `json:"warnings"`
}

// DeviceRegistryOperationError is one failed bulk item; errorCode is IoT
// Hub's error code name (PYSDK DeviceRegistryOperationError, .NET parses
// it into its ErrorCode enum).
type DeviceRegistryOperationError struct {
	DeviceID    string `json:"deviceId"`
	ErrorCode   string `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
}

// DeviceRegistryOperationWarning is a bulk item that succeeded with a
// caveat; the hub reports none so far.
type DeviceRegistryOperationWarning struct {
	DeviceID      string `json:"deviceId"`
	WarningCode   string `json:"warningCode"`
	WarningStatus string `json:"warningStatus"`
}

// FromBulkDeviceErrors renders the outcome of a bulk registry operation.
func FromBulkDeviceErrors(errs []hub.BulkError) BulkRegistryOperationResult {
	out := BulkRegistryOperationResult{IsSuccessful: len(errs) == 0, Errors: []DeviceRegistryOperationError{}, Warnings: []DeviceRegistryOperationWarning{}}
	for _, e := range errs {
		out.Errors = append(out.Errors, DeviceRegistryOperationError{DeviceID: e.DeviceID, ErrorCode: HubErrorCode(e.Err), ErrorStatus: fault.MessageOf(e.Err)})
	}
	return out
}

// FromQueryItems renders a page of query results: twins in the same shape
// as GET /twins answers, projections and aggregates as selected. Never
// null, so an empty page is [].
func FromQueryItems(res hub.QueryResult) []map[string]any {
	if res.Items == nil {
		return []map[string]any{}
	}
	return res.Items
}
