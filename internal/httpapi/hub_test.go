package httpapi_test

import (
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

func (a *testAPI) hubToken(t *testing.T) string {
	t.Helper()
	tok, err := sas.SignKey(hubHost, a.hubOwner.Name, a.hubOwner.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestHubDeviceAndTwinAfterProvisioning(t *testing.T) {
	a := newTestAPI(t)
	e := symEnrollment("hub-dev")
	e["initialTwin"] = map[string]any{"tags": map[string]any{"environment": "test"}, "properties": map[string]any{"desired": map[string]any{"interval": 30}}}
	key := a.enroll(t, e)
	a.register(t, "hub-dev", a.deviceToken(t, "hub-dev", key), nil)
	auth := map[string]string{"Authorization": a.hubToken(t)}

	r := a.do(t, "GET", "/devices/hub-dev?api-version=2021-04-12", nil, auth)
	if r.status != 200 || r.header.Get("ETag") == "" {
		t.Fatalf("GET device: %d %s", r.status, r.body)
	}
	d := decodeInto[wire.Device](t, r)
	if d.DeviceID != "hub-dev" || d.Status != "enabled" || d.Authentication.Type != "sas" || d.Authentication.SymmetricKey.PrimaryKey != key || d.GenerationID == "" || d.ConnectionState != "Disconnected" {
		t.Errorf("device: %s", r.body)
	}

	r = a.do(t, "GET", "/twins/hub-dev?api-version=2021-04-12", nil, auth)
	tw := decodeInto[map[string]any](t, r)
	props := tw["properties"].(map[string]any)
	if tw["deviceId"] != "hub-dev" || tw["tags"].(map[string]any)["environment"] != "test" ||
		props["desired"].(map[string]any)["interval"] != float64(30) || props["desired"].(map[string]any)["$version"] != float64(1) ||
		props["reported"].(map[string]any)["$version"] != float64(1) {
		t.Errorf("twin: %s", r.body)
	}

	tests := []struct {
		name, path string
		headers    map[string]string
		status     int
		code       string
	}{
		{"404/unknown device", "/devices/nobody?api-version=2021-04-12", auth, 404, "DeviceNotFound"},
		{"404/unknown twin", "/twins/nobody?api-version=2021-04-12", auth, 404, "DeviceNotFound"},
		{"401/dps policy token on the hub", "/devices/hub-dev?api-version=2021-04-12", nil, 401, "IotHubUnauthorizedAccess"},
		{"401/no token", "/devices/hub-dev?api-version=2021-04-12", map[string]string{"Authorization": ""}, 401, "IotHubUnauthorizedAccess"},
		{"400/no api-version", "/devices/hub-dev", auth, 400, "ArgumentInvalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(t, "GET", tc.path, nil, tc.headers)
			if tc.path == "/devices/hub-dev" {
				r = a.do(t, "GET", tc.path+"?api-version=", nil, tc.headers)
			}
			if r.status != tc.status || r.header.Get("iothub-errorcode") != tc.code {
				t.Fatalf("%d %q %s, want %d %s", r.status, r.header.Get("iothub-errorcode"), r.body, tc.status, tc.code)
			}
			body := decodeInto[wire.HubErrorBody](t, r)
			if want := "ErrorCode:" + tc.code + ";"; len(body.Message) < len(want) || body.Message[:len(want)] != want {
				t.Errorf("Message %q does not start with %q", body.Message, want)
			}
		})
	}
}
