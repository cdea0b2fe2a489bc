package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/wire"
)

var hubAt = time.Date(2026, 11, 25, 21, 23, 37, 570_000_000, time.UTC)

func sampleDevice() hub.Device {
	return hub.Device{
		ID: "cap-hub-edge-01", GenerationID: "638512345678901234", ETag: "MTc5NTY0MTgxNzU3MA==", Status: hub.Enabled,
		PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2Nzg=", SecondaryKey: "c2Vjb25kYXJ5LWtleS0xMjM0NTY=", IoTEdge: true,
		DeviceScope: "ms-azure-iot-edge://cap-hub-edge-01-638512345678901234", Created: hubAt, Updated: hubAt,
	}
}

func sampleTwin(module string) hub.Twin {
	return hub.Twin{
		DeviceID: "cap-hub-edge-01", ModuleID: module, ETag: "AAAAAAAAAAM=", Version: 3,
		Tags:           map[string]any{"site": "lab-9"},
		Desired:        map[string]any{"telemetryInterval": json.Number("10"), "fw": "1.2.3"},
		DesiredVersion: 3,
		Reported:       map[string]any{"lastDesiredVersion": json.Number("3")},
		// A twin a deployment applies to (hub-protocol.md §3.2).
		Configurations:  map[string]string{"base-deploy": "Applied"},
		ReportedVersion: 5,
		Updated:         hubAt,
	}
}

func marshalGolden(t *testing.T, name string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, name, append(b, '\n'))
}

// TestHubGolden pins the JSON IoT Hub clients get for devices, modules and
// twins (shapes of the capture in shared/spec/wire/hub-service-registry.md
// and hub-protocol.md §2.1, §2.2, §3.2).
func TestHubGolden(t *testing.T) {
	leaf := sampleDevice()
	leaf.ID, leaf.IoTEdge, leaf.DeviceScope, leaf.Status, leaf.StatusReason = "cap-hub-dev-01", false, "", hub.Disabled, "maintenance"
	connection := hub.Connection{Connected: true, Updated: time.Date(2025, 5, 1, 10, 0, 0, 123456700, time.UTC),
		LastActivity: time.Date(2025, 5, 1, 10, 3, 7, 0, time.FixedZone("CEST", 2*3600))}
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"hub-device-edge.json", wire.FromDevice(sampleDevice(), hub.Connection{})},
		{"hub-device-disabled.json", wire.FromDevice(leaf, hub.Connection{})},
		{"hub-device-connected.json", wire.FromDevice(leaf, connection)},
		{"hub-twin-connected.json", wire.FromTwin(sampleTwin(""), leaf, connection)},
		{"hub-module.json", wire.FromModule(hub.Module{DeviceID: "cap-hub-edge-01", ID: "$edgeAgent", GenerationID: "638512345678909999",
			ETag: "MQ==", ManagedBy: "IotEdge", PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2Nzg=", SecondaryKey: "c2Vjb25kYXJ5LWtleS0xMjM0NTY="}, hub.Connection{})},
		{"hub-module-aziot.json", wire.FromModule(hub.Module{DeviceID: "cap-hub-edge-01", ID: "m1", GenerationID: "638512345678900000",
			ETag: "Mg==", PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2Nzg=", SecondaryKey: "c2Vjb25kYXJ5LWtleS0xMjM0NTY="}, hub.Connection{})},
		{"hub-twin.json", wire.FromTwin(sampleTwin(""), sampleDevice(), hub.Connection{})},
		{"hub-module-twin.json", wire.FromTwin(sampleTwin(hub.EdgeAgent), sampleDevice(), hub.Connection{})},
		{"hub-bulk-result.json", wire.FromBulkDeviceErrors([]hub.BulkError{
			{DeviceID: "dev-1", Err: fault.New(fault.Conflict, "A device with ID 'dev-1' is already registered.")},
			{DeviceID: "dev-2", Err: fault.New(fault.PreconditionFailed, "If-Match \"x\" does not match the device's etag")},
		})},
		{"hub-bulk-success.json", wire.FromBulkDeviceErrors(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) { marshalGolden(t, tc.name, tc.v) })
	}
}

// TestHubCaptureDecodes decodes what the SDKs and aziot-identityd send and
// checks what reaches the domain: echoed read-only fields are ignored,
// empty keys mean "generate".
func TestHubCaptureDecodes(t *testing.T) {
	yes, no := true, false
	devices := []struct {
		name string
		body string
		want hub.DeviceSpec
	}{
		{"node create without keys", `{"deviceId":"cap-hub-dev-01","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
			hub.DeviceSpec{ID: "cap-hub-dev-01", AuthType: "sas"}},
		{"node create with keys and edge", `{"deviceId":"e","status":"enabled","authentication":{"symmetricKey":{"primaryKey":"cA==","secondaryKey":"cw=="},"type":"sas"},"capabilities":{"iotEdge":true}}`,
			hub.DeviceSpec{ID: "e", AuthType: "sas", Status: hub.Enabled, PrimaryKey: "cA==", SecondaryKey: "cw==", IoTEdge: &yes}},
		{".NET echo of a fetched device", `{"deviceId":"d","generationId":"6385","etag":"MA==","connectionState":"Disconnected","status":"disabled","statusReason":"why",
			"connectionStateUpdatedTime":"0001-01-01T00:00:00","statusUpdatedTime":"0001-01-01T00:00:00","lastActivityTime":"0001-01-01T00:00:00",
			"cloudToDeviceMessageCount":0,"authentication":{"symmetricKey":{"primaryKey":null,"secondaryKey":null},"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"},
			"capabilities":{"iotEdge":false},"deviceScope":null,"parentScopes":[]}`,
			hub.DeviceSpec{ID: "d", AuthType: "sas", Status: hub.Disabled, StatusReason: "why", IoTEdge: &no}},
		{"no type with a thumbprint", `{"deviceId":"x","authentication":{"x509Thumbprint":{"primaryThumbprint":"AB"}}}`,
			hub.DeviceSpec{ID: "x", AuthType: "selfSigned"}},
	}
	for _, tc := range devices {
		t.Run("device/"+tc.name, func(t *testing.T) {
			var d wire.Device
			if err := wire.Decode([]byte(tc.body), &d); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, d.ToDeviceSpec()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	modules := []struct {
		name string
		body string
		want hub.ModuleSpec
	}{
		{"aziot create", `{"moduleId":"m","deviceId":"d"}`, hub.ModuleSpec{DeviceID: "d", ID: "m"}},
		{"aziot update with derived keys", `{"moduleId":"m","deviceId":"d","authentication":{"symmetricKey":{"primaryKey":"cA==","secondaryKey":"cw=="},"type":"sas"}}`,
			hub.ModuleSpec{DeviceID: "d", ID: "m", AuthType: "sas", PrimaryKey: "cA==", SecondaryKey: "cw=="}},
		{"managed by the edge runtime", `{"moduleId":"$edgeAgent","deviceId":"d","managedBy":"IotEdge","generationId":"1","etag":"MQ=="}`,
			hub.ModuleSpec{DeviceID: "d", ID: "$edgeAgent", ManagedBy: "IotEdge"}},
	}
	for _, tc := range modules {
		t.Run("module/"+tc.name, func(t *testing.T) {
			var m wire.Module
			if err := wire.Decode([]byte(tc.body), &m); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, m.ToModuleSpec()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	twins := []struct {
		name string
		body string
		want hub.TwinPatch
		kind fault.Kind // Internal = accepted
	}{
		{"node twin.update", `{"tags":{"site":"lab-9"},"properties":{"desired":{"telemetryInterval":10}}}`,
			hub.TwinPatch{Tags: map[string]any{"site": "lab-9"}, Desired: map[string]any{"telemetryInterval": json.Number("10")}}, fault.Internal},
		{".NET echo with empty reported", `{"deviceId":"d","etag":"AAAAAAAAAAE=","version":1,"properties":{"desired":{"a":1,"$version":1,"$metadata":{}},"reported":{"$version":1,"$metadata":{}}}}`,
			hub.TwinPatch{Desired: map[string]any{"a": json.Number("1"), "$version": json.Number("1"), "$metadata": map[string]any{}}}, fault.Internal},
		{"reported written by the service", `{"properties":{"reported":{"fw":"2"}}}`, hub.TwinPatch{}, fault.Invalid},
	}
	for _, tc := range twins {
		t.Run("twin/"+tc.name, func(t *testing.T) {
			var u wire.TwinUpdate
			if err := wire.Decode([]byte(tc.body), &u); err != nil {
				t.Fatal(err)
			}
			got, err := u.ToTwinPatch()
			if tc.kind != fault.Internal {
				if !fault.Is(err, tc.kind) {
					t.Fatalf("got %v, want a %v fault", err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	// Node's Registry.updateDevices(devices, false): Device objects with
	// deviceId renamed id and a capitalised importMode.
	var bulk []wire.ExportImportDevice
	if err := wire.Decode([]byte(`[{"id":"d","etag":"MA==","importMode":"UpdateIfMatchETag","status":"disabled","generationId":"1","connectionState":"Disconnected",
		"authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}},"tags":{"a":"b"}}]`), &bulk); err != nil {
		t.Fatal(err)
	}
	it, err := bulk[0].ToBulkItem()
	if err != nil {
		t.Fatal(err)
	}
	want := hub.BulkItem{Mode: hub.BulkUpdateIfMatchETag, Device: hub.DeviceSpec{ID: "d", AuthType: "sas", Status: hub.Disabled}, ETag: "MA==",
		Twin: hub.TwinPatch{Tags: map[string]any{"a": "b"}}}
	if diff := cmp.Diff(want, it); diff != "" {
		t.Errorf("bulk item (-want +got):\n%s", diff)
	}

	var m wire.CloudToDeviceMethod
	if err := wire.Decode([]byte(`{"methodName":"reboot","payload":{"delay":5},"responseTimeoutInSeconds":60,"connectTimeoutInSeconds":0}`), &m); err != nil {
		t.Fatal(err)
	}
	call := m.ToMethodCall("d", "")
	if call.Name != "reboot" || string(call.Payload) != `{"delay":5}` || call.ResponseTimeout != time.Minute || call.ConnectTimeout != 0 {
		t.Errorf("method call: %+v", call)
	}
}

// TestHubErrorTable checks that every fault kind and every hub reason has
// a row, and the rows that IoT Hub clients branch on.
func TestHubErrorTable(t *testing.T) {
	for k := fault.Kind(0); k.String() != fmt.Sprintf("Kind(%d)", int(k)); k++ {
		err := fault.New(k, "x")
		if status, name, _ := wire.HubError(err, "t", hubAt); k != fault.Internal && (status == 500 || name == "ServerError") {
			t.Errorf("kind %v has no hub row", k)
		}
		if status, _ := wire.DPSError(err, "t", hubAt); k != fault.Internal && status == 500 {
			t.Errorf("kind %v has no DPS row", k)
		}
	}
	for _, r := range append(hub.Reasons(), hub.ConfigurationReasons()...) {
		if name := wire.HubErrorCode(fault.NewReason(fault.Internal, r, "x")); name == "ServerError" {
			t.Errorf("reason %q has no hub row", r)
		}
	}
	for _, tc := range []struct {
		err    error
		status int
		name   string
	}{
		{fault.New(fault.NotFound, "x"), http.StatusNotFound, "DeviceNotFound"},
		{fault.NewReason(fault.NotFound, hub.ReasonModuleNotFound, "x"), http.StatusNotFound, "ModuleNotFound"},
		{fault.NewReason(fault.NotFound, hub.ReasonDeviceNotOnline, "x"), http.StatusNotFound, "DeviceNotOnline"},
		{fault.New(fault.Conflict, "x"), http.StatusConflict, "DeviceAlreadyExists"},
		{fault.NewReason(fault.Conflict, hub.ReasonModuleExists, "x"), http.StatusConflict, "ModuleAlreadyExistsOnDevice"},
		{fault.New(fault.Timeout, "x"), http.StatusGatewayTimeout, "GatewayTimeout"},
		{fault.NewReason(fault.TooLarge, hub.ReasonTwinTooLarge, "x"), http.StatusBadRequest, "ArgumentInvalid"},
		{fmt.Errorf("wrapped: %w", fault.NewReason(fault.NotFound, hub.ReasonModuleNotFound, "x")), http.StatusNotFound, "ModuleNotFound"},
		{errors.New("not a fault"), http.StatusInternalServerError, "ServerError"},
	} {
		status, name, body := wire.HubError(tc.err, "t", hubAt)
		if status != tc.status || name != tc.name || body.Message[:len("ErrorCode:"+tc.name+";")] != "ErrorCode:"+tc.name+";" {
			t.Errorf("%v: %d %s %q, want %d %s", tc.err, status, name, body.Message, tc.status, tc.name)
		}
	}
}
