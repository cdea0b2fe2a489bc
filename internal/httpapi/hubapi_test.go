package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

const hubAPI = "?api-version=2021-04-12"

// policyToken signs a hub token with a named policy, as the service SDKs
// do (sr = host name).
func (a *testAPI) policyToken(t *testing.T, name string) string {
	t.Helper()
	p, err := a.db.Policy(context.Background(), access.Hub, name)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.SignKey(hubHost, p.Name, p.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// deviceToken signs a token with a device key the way aziot-identityd
// does: sr = {host}/devices/{id} lower-cased and percent-encoded, no skn.
func deviceToken(t *testing.T, deviceID, key string) string {
	t.Helper()
	sr := url.QueryEscape(strings.ToLower(hubHost + "/devices/" + deviceID))
	tok, err := sas.SignKey(sr, "", key, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// hubDo sends a hub request with the given Authorization (the owner's when
// auth is "") and extra headers.
func (a *testAPI) hubDo(t *testing.T, method, path string, body any, auth string, headers ...string) response {
	t.Helper()
	if auth == "" {
		auth = a.hubToken(t)
	}
	h := map[string]string{"Authorization": auth}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	if !strings.Contains(path, "api-version") {
		if strings.Contains(path, "?") {
			path += "&api-version=2021-04-12"
		} else {
			path += hubAPI
		}
	}
	return a.do(t, method, path, body, h)
}

func wantStatus(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.header.Get("iothub-errorcode") != code {
		t.Fatalf("got %d %q %s, want %d %q", r.status, r.header.Get("iothub-errorcode"), r.body, status, code)
	}
	if code != "" {
		body := decodeInto[wire.HubErrorBody](t, r)
		if !strings.HasPrefix(body.Message, "ErrorCode:"+code+";") {
			t.Errorf("Message %q does not start with ErrorCode:%s;", body.Message, code)
		}
	}
}

// TestHubRegistryAsNodeSDK replays the calls azure-iothub 1.16.6 makes
// (shared/spec/wire/hub-service-registry.md) and checks what it reads.
func TestHubRegistryAsNodeSDK(t *testing.T) {
	a := newTestAPI(t)
	// 1. Registry.create without keys: the hub generates them.
	r := a.hubDo(t, "PUT", "/devices/cap-hub-dev-01", `{"deviceId":"cap-hub-dev-01","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`, "")
	wantStatus(t, r, 200, "")
	d := decodeInto[wire.Device](t, r)
	if d.DeviceID != "cap-hub-dev-01" || d.Status != "enabled" || d.GenerationID == "" || len(d.Authentication.SymmetricKey.PrimaryKey) != 44 ||
		r.header.Get("ETag") != `"`+d.ETag+`"` || d.Capabilities == nil || d.Capabilities.IoTEdge {
		t.Errorf("created device: %s (ETag %s)", r.body, r.header.Get("ETag"))
	}
	// 2. With keys and the edge capability.
	key, _ := sas.NewKey(32)
	r = a.hubDo(t, "PUT", "/devices/cap-hub-edge-01", map[string]any{"deviceId": "cap-hub-edge-01", "status": "enabled",
		"authentication": map[string]any{"symmetricKey": map[string]any{"primaryKey": key, "secondaryKey": key}, "type": "sas"},
		"capabilities":   map[string]any{"iotEdge": true}}, "")
	wantStatus(t, r, 200, "")
	if e := decodeInto[wire.Device](t, r); e.Authentication.SymmetricKey.PrimaryKey != key || !e.Capabilities.IoTEdge || e.DeviceScope == "" {
		t.Errorf("edge device: %s", r.body)
	}
	// 3. Create of an existing ID.
	r = a.hubDo(t, "PUT", "/devices/cap-hub-dev-01", `{"deviceId":"cap-hub-dev-01"}`, "")
	wantStatus(t, r, 409, "DeviceAlreadyExists")
	// 5. Registry.update with a quoted star.
	r = a.hubDo(t, "PUT", "/devices/cap-hub-dev-01", `{"deviceId":"cap-hub-dev-01","status":"disabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`, "", "If-Match", `"*"`)
	wantStatus(t, r, 200, "")
	if u := decodeInto[wire.Device](t, r); u.Status != "disabled" || u.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey || u.GenerationID != d.GenerationID || u.ETag == d.ETag {
		t.Errorf("updated device: %s", r.body)
	}
	// 6, 7. getTwin, then twin.update with the etag it read.
	r = a.hubDo(t, "GET", "/twins/cap-hub-edge-01", nil, "")
	wantStatus(t, r, 200, "")
	tw := decodeInto[wire.Twin](t, r)
	if tw.DeviceID != "cap-hub-edge-01" || tw.Version != 1 || r.header.Get("ETag") != `"`+tw.ETag+`"` || tw.Capabilities == nil || !tw.Capabilities.IoTEdge {
		t.Errorf("twin: %s", r.body)
	}
	r = a.hubDo(t, "PATCH", "/twins/cap-hub-edge-01", `{"tags":{"site":"lab-9"},"properties":{"desired":{"telemetryInterval":10}}}`, "", "If-Match", `"`+tw.ETag+`"`)
	wantStatus(t, r, 200, "")
	tw2 := decodeInto[wire.Twin](t, r)
	if tw2.Version != 2 || tw2.ETag == tw.ETag || tw2.Tags["site"] != "lab-9" || tw2.Properties.Desired["telemetryInterval"] != float64(10) || tw2.Properties.Desired["$version"] != float64(2) {
		t.Errorf("patched twin: %s", r.body)
	}
	// 8. updateTwin with "*".
	r = a.hubDo(t, "PATCH", "/twins/cap-hub-edge-01", `{"properties":{"desired":{"fw":"1.2.3"}}}`, "", "If-Match", `"*"`)
	wantStatus(t, r, 200, "")
	// 9. createQuery(...).nextAsTwin().
	r = a.hubDo(t, "POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE tags.site = 'lab-9'"}`, "", "x-ms-max-item-count", "100")
	wantStatus(t, r, 200, "")
	items := decodeInto[[]wire.Twin](t, r)
	if r.header.Get("x-ms-item-type") != "Twin" || len(items) != 1 || items[0].DeviceID != "cap-hub-edge-01" || items[0].Properties.Desired["fw"] != "1.2.3" {
		t.Errorf("query: %s %v", r.body, r.header)
	}
	if _, more := r.header["X-Ms-Continuation"]; more {
		t.Errorf("x-ms-continuation on the only page: %q", r.header.Get("x-ms-continuation"))
	}
	// Paging: one twin per page, the header only while more follow.
	var ids []string
	cont := ""
	for page := 0; page < 5; page++ {
		h := []string{"x-ms-max-item-count", "1"}
		if cont != "" {
			h = append(h, "x-ms-continuation", cont)
		}
		r = a.hubDo(t, "POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, "", h...)
		wantStatus(t, r, 200, "")
		for _, it := range decodeInto[[]wire.Twin](t, r) {
			ids = append(ids, it.DeviceID)
		}
		if cont = r.header.Get("x-ms-continuation"); cont == "" {
			break
		}
	}
	if strings.Join(ids, ",") != "cap-hub-dev-01,cap-hub-edge-01" {
		t.Errorf("paged query: %v", ids)
	}
	r = a.hubDo(t, "POST", "/devices/query", `{"query":"SELECT COUNT() AS n FROM devices.modules WHERE moduleId = '$edgeAgent'"}`, "")
	if r.header.Get("x-ms-item-type") != "Raw" || strings.TrimSpace(string(r.body)) != `[{"n":1}]` {
		t.Errorf("count query: %s %v", r.body, r.header.Get("x-ms-item-type"))
	}
	// GET /devices?top=N.
	r = a.hubDo(t, "GET", "/devices?top=1", nil, "")
	if list := decodeInto[[]wire.Device](t, r); len(list) != 1 || list[0].DeviceID != "cap-hub-dev-01" {
		t.Errorf("list: %s", r.body)
	}
	// 12. delete, then get.
	r = a.hubDo(t, "DELETE", "/devices/cap-hub-dev-01", nil, "", "If-Match", `"*"`)
	wantStatus(t, r, 204, "")
	r = a.hubDo(t, "GET", "/devices/cap-hub-dev-01", nil, "")
	wantStatus(t, r, 404, "DeviceNotFound")
}

// TestHubModulesAsIdentityd manages an edge device's modules with its own
// device-scoped token, as aziot-identityd does on every start
// (hub-protocol.md §2.1–§2.3).
func TestHubModulesAsIdentityd(t *testing.T) {
	a := newTestAPI(t)
	const id = "Edge-GW1" // identityd lower-cases it in the token
	r := a.hubDo(t, "PUT", "/devices/"+id, `{"deviceId":"Edge-GW1","capabilities":{"iotEdge":true}}`, "")
	wantStatus(t, r, 200, "")
	key := decodeInto[wire.Device](t, r).Authentication.SymmetricKey.PrimaryKey
	r = a.hubDo(t, "PUT", "/devices/other", `{}`, "")
	wantStatus(t, r, 200, "")
	otherKey := decodeInto[wire.Device](t, r).Authentication.SymmetricKey.PrimaryKey
	tok := deviceToken(t, id, key)

	r = a.hubDo(t, "GET", "/devices/"+id+"/modules", nil, tok)
	wantStatus(t, r, 200, "")
	mods := decodeInto[[]wire.Module](t, r)
	if len(mods) != 2 || mods[0].ModuleID != "$edgeAgent" || mods[1].ModuleID != "$edgeHub" || mods[0].GenerationID == "" || *mods[0].ManagedBy != "IotEdge" {
		t.Fatalf("modules: %s", r.body)
	}
	// GET $edgeAgent (literal '$'), then the forced PUT with derived keys.
	r = a.hubDo(t, "GET", "/devices/"+id+"/modules/$edgeAgent", nil, tok)
	wantStatus(t, r, 200, "")
	agent := decodeInto[wire.Module](t, r)
	derived, _ := sas.NewKey(32)
	r = a.hubDo(t, "PUT", "/devices/"+id+"/modules/%24edgeAgent", map[string]any{"moduleId": "$edgeAgent", "deviceId": id,
		"authentication": map[string]any{"symmetricKey": map[string]any{"primaryKey": derived, "secondaryKey": derived}, "type": "sas"}}, tok, "If-Match", "*")
	wantStatus(t, r, 200, "")
	if up := decodeInto[wire.Module](t, r); up.GenerationID != agent.GenerationID || up.Authentication.SymmetricKey.PrimaryKey != derived || *up.ManagedBy != "IotEdge" {
		t.Errorf("forced update: %s", r.body)
	}
	// Create a module without managedBy or keys: 200, never 201.
	r = a.hubDo(t, "PUT", "/devices/"+id+"/modules/SimulatedTemperatureSensor", `{"moduleId":"SimulatedTemperatureSensor","deviceId":"Edge-GW1"}`, tok)
	wantStatus(t, r, 200, "")
	m := decodeInto[wire.Module](t, r)
	if m.GenerationID == "" || m.Authentication == nil || len(m.Authentication.SymmetricKey.PrimaryKey) != 44 || m.ManagedBy != nil {
		t.Errorf("created module: %s", r.body)
	}
	r = a.hubDo(t, "PUT", "/devices/"+id+"/modules/SimulatedTemperatureSensor", `{"moduleId":"SimulatedTemperatureSensor","deviceId":"Edge-GW1"}`, tok)
	wantStatus(t, r, 409, "ModuleAlreadyExistsOnDevice")
	r = a.hubDo(t, "GET", "/devices/"+id, nil, tok)
	wantStatus(t, r, 200, "")
	r = a.hubDo(t, "GET", "/twins/"+id+"/modules/SimulatedTemperatureSensor", nil, "")
	wantStatus(t, r, 200, "")
	if mt := decodeInto[wire.Twin](t, r); mt.ModuleID != "SimulatedTemperatureSensor" || mt.Capabilities != nil {
		t.Errorf("module twin: %s", r.body)
	}

	for _, tc := range []struct {
		name, method, path, token string
	}{
		{"401/token of another device", "GET", "/devices/" + id + "/modules", deviceToken(t, "other", otherKey)},
		{"401/other device's key for this device", "GET", "/devices/" + id + "/modules", deviceToken(t, id, otherKey)},
		{"401/own token on another device", "GET", "/devices/other/modules", tok},
		{"401/own token on a registry write", "PUT", "/devices/" + id, tok},
		{"401/own token on twins", "GET", "/twins/" + id, tok},
		{"401/module token", "GET", "/devices/" + id + "/modules", func() string {
			s, _ := sas.SignKey(hubHost+"/devices/"+id+"/modules/$edgeAgent", "", derived, time.Now().Add(time.Minute))
			return s
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.hubDo(t, tc.method, tc.path, `{}`, tc.token)
			wantStatus(t, r, 401, "IotHubUnauthorizedAccess")
		})
	}

	r = a.hubDo(t, "DELETE", "/devices/"+id+"/modules/SimulatedTemperatureSensor", nil, tok, "If-Match", "*")
	wantStatus(t, r, 204, "")
	r = a.hubDo(t, "GET", "/devices/"+id+"/modules/SimulatedTemperatureSensor", nil, tok)
	wantStatus(t, r, 404, "ModuleNotFound")
	// A disabled device's token no longer works.
	r = a.hubDo(t, "PUT", "/devices/"+id, `{"status":"disabled"}`, "", "If-Match", "*")
	wantStatus(t, r, 200, "")
	r = a.hubDo(t, "GET", "/devices/"+id+"/modules", nil, tok)
	wantStatus(t, r, 401, "IotHubUnauthorizedAccess")
}

// TestHubPolicyRights calls one endpoint of each kind with each of IoT
// Hub's default policies (hub-protocol.md §7.2).
func TestHubPolicyRights(t *testing.T) {
	a := newTestAPI(t)
	for _, id := range []string{"d", "victim"} {
		wantStatus(t, a.hubDo(t, "PUT", "/devices/"+id, `{}`, ""), 200, "")
	}
	type call struct {
		method, path, body string
		ok                 int // status when authorised
	}
	calls := map[string]call{
		"get device":    {"GET", "/devices/d", "", 200},
		"list devices":  {"GET", "/devices", "", 200},
		"put device":    {"PUT", "/devices/d", `{}`, 200},
		"bulk":          {"POST", "/devices", `[{"id":"victim","importMode":"update"}]`, 200},
		"delete device": {"DELETE", "/devices/nobody", "", 404},
		"list modules":  {"GET", "/devices/d/modules", "", 200},
		"put module":    {"PUT", "/devices/nobody/modules/m", `{}`, 404},
		"get twin":      {"GET", "/twins/d", "", 200},
		"patch twin":    {"PATCH", "/twins/d", `{"tags":{"a":1}}`, 200},
		"replace twin":  {"PUT", "/twins/d", `{"tags":{"a":1}}`, 200},
		"query":         {"POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, 200},
		"method":        {"POST", "/twins/d/methods", `{"methodName":"x"}`, 404}, // authorised, not online
	}
	rights := map[string][]string{
		"registryRead":      {"get device", "list devices", "list modules", "get twin", "query"},
		"registryReadWrite": {"get device", "list devices", "list modules", "get twin", "query", "put device", "bulk", "delete device", "put module"},
		"service":           {"get twin", "query", "patch twin", "replace twin", "method"},
		"device":            {},
		access.HubOwner:     {"get device", "list devices", "list modules", "get twin", "query", "put device", "bulk", "delete device", "put module", "patch twin", "replace twin", "method"},
	}
	for policy, allowed := range rights {
		tok := a.policyToken(t, policy)
		for name, c := range calls {
			want := 401
			for _, n := range allowed {
				if n == name {
					want = c.ok
				}
			}
			outcome := "401/"
			if want != 401 {
				outcome = "allowed/"
			}
			t.Run(outcome+policy+"/"+name, func(t *testing.T) {
				var body any
				if c.body != "" {
					body = c.body
				}
				var h []string
				if c.method == "PUT" && strings.HasPrefix(c.path, "/devices/") {
					h = []string{"If-Match", "*"} // an update: the device exists
				}
				r := a.hubDo(t, c.method, c.path, body, tok, h...)
				if r.status != want {
					t.Fatalf("%s %s with %s: %d %s, want %d", c.method, c.path, policy, r.status, r.body, want)
				}
			})
		}
	}
}

// TestHubBadInput sends one bad request per case, checks IoT Hub's status
// and error code, and that nothing changed.
func TestHubBadInput(t *testing.T) {
	a := newTestAPI(t)
	r := a.hubDo(t, "PUT", "/devices/d1", `{"capabilities":{"iotEdge":true}}`, "")
	wantStatus(t, r, 200, "")
	key := decodeInto[wire.Device](t, r).Authentication.SymmetricKey.PrimaryKey
	r = a.hubDo(t, "PUT", "/devices/d2", `{}`, "")
	wantStatus(t, r, 200, "")
	otherKey := decodeInto[wire.Device](t, r).Authentication.SymmetricKey.PrimaryKey
	snapshot := func() string {
		var b strings.Builder
		for _, p := range []string{"/devices", "/twins/d1", "/devices/d1/modules", "/twins/d1/modules/$edgeAgent", "/twins/d2"} {
			b.Write(a.hubDo(t, "GET", p, nil, "").body)
		}
		return b.String()
	}
	before := snapshot()

	bigTags := map[string]any{"tags": map[string]any{"a": strings.Repeat("x", 4000), "b": strings.Repeat("x", 4000), "c": strings.Repeat("x", 1000)}}
	hugeBody := `{"tags":{"a":"` + strings.Repeat("x", 70<<10) + `"}}`
	var many []map[string]any
	for i := range hub.MaxBulkDevices + 1 {
		many = append(many, map[string]any{"id": fmt.Sprintf("n%d", i), "importMode": "create"})
	}
	tests := []struct {
		name    string
		method  string
		path    string
		body    any
		auth    string
		headers []string
		status  int
		code    string
		message string
	}{
		{"400/malformed twin patch", "PATCH", "/twins/d1", `{"tags": {`, "", nil, 400, "IotHubFormatError", "not valid JSON"},
		{"400/tags not an object", "PATCH", "/twins/d1", `{"tags": 5}`, "", nil, 400, "ArgumentInvalid", "tags"},
		{"400/twin key with a dot", "PATCH", "/twins/d1", `{"tags": {"a.b": 1}}`, "", nil, 400, "ArgumentInvalid", "a.b"},
		{"400/tags over 8 KB", "PATCH", "/twins/d1", bigTags, "", nil, 400, "ArgumentInvalid", "limit is 8192"},
		{"413/twin body over 64 KiB", "PATCH", "/twins/d1", hugeBody, "", nil, 413, "MessageTooLarge", "larger than 65536"},
		{"400/service writes reported", "PATCH", "/twins/d1", `{"properties":{"reported":{"fw":"1"}}}`, "", nil, 400, "ArgumentInvalid", "reported"},
		{"412/stale twin etag", "PATCH", "/twins/d1", `{"tags":{"a":1}}`, "", []string{"If-Match", `"AAAAAAAAAAE="`}, 412, "PreconditionFailed", "etag"},
		{"412/stale device etag", "PUT", "/devices/d1", `{"status":"disabled"}`, "", []string{"If-Match", `"stale"`}, 412, "PreconditionFailed", "etag"},
		{"412/stale delete etag", "DELETE", "/devices/d1", nil, "", []string{"If-Match", `"stale"`}, 412, "PreconditionFailed", "etag"},
		{"412/stale module etag", "PUT", "/devices/d1/modules/$edgeHub", `{}`, "", []string{"If-Match", "stale"}, 412, "PreconditionFailed", "etag"},
		{"401/token for another device", "GET", "/devices/d1/modules", nil, deviceToken(t, "d2", otherKey), nil, 401, "IotHubUnauthorizedAccess", "another device"},
		{"401/expired device token", "GET", "/devices/d1/modules", nil, func() string {
			s, _ := sas.SignKey(hubHost+"/devices/d1", "", key, time.Now().Add(-time.Hour))
			return s
		}(), nil, 401, "IotHubUnauthorizedAccess", "expired"},
		{"404/unknown device", "GET", "/devices/nobody", nil, "", nil, 404, "DeviceNotFound", "nobody"},
		{"404/unknown device twin patch", "PATCH", "/twins/nobody", `{"tags":{"a":1}}`, "", nil, 404, "DeviceNotFound", "nobody"},
		{"404/modules of an unknown device", "GET", "/devices/nobody/modules", nil, "", nil, 404, "DeviceNotFound", "nobody"},
		{"404/unknown module", "GET", "/devices/d1/modules/nope", nil, "", nil, 404, "ModuleNotFound", "nope"},
		{"404/unknown module twin", "PATCH", "/twins/d1/modules/nope", `{"tags":{"a":1}}`, "", nil, 404, "ModuleNotFound", "nope"},
		{"404/update of an unknown device", "PUT", "/devices/nobody", `{}`, "", []string{"If-Match", "*"}, 404, "DeviceNotFound", "nobody"},
		{"409/create existing device", "PUT", "/devices/d1", `{"deviceId":"d1"}`, "", nil, 409, "DeviceAlreadyExists", "already registered"},
		{"409/create existing module", "PUT", "/devices/d1/modules/$edgeAgent", `{}`, "", nil, 409, "ModuleAlreadyExistsOnDevice", "already registered"},
		{"400/body id differs from path", "PUT", "/devices/d3", `{"deviceId":"D3"}`, "", nil, 400, "ArgumentInvalid", "does not match"},
		{"400/bad device id", "PUT", "/devices/bad%20id", `{}`, "", nil, 400, "ArgumentInvalid", "device ID"},
		{"400/short key", "PUT", "/devices/d3", `{"authentication":{"symmetricKey":{"primaryKey":"MTIzNDU2Nzg="}}}`, "", nil, 400, "ArgumentInvalid", "primaryKey"},
		{"400/x509 device", "PUT", "/devices/d3", `{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"AB"}}}`, "", nil, 400, "ArgumentInvalid", "not supported"},
		{"400/invalid query", "POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE"}`, "", nil, 400, "ArgumentInvalid", "query"},
		{"400/query over an unknown collection", "POST", "/devices/query", `{"query":"SELECT * FROM things"}`, "", nil, 400, "ArgumentInvalid", "things"},
		{"400/bad continuation", "POST", "/devices/query", `{"query":"SELECT * FROM devices"}`, "", []string{"x-ms-continuation", "???"}, 400, "ArgumentInvalid", "x-ms-continuation"},
		{"400/method timeout under 5 s", "POST", "/twins/d1/methods", `{"methodName":"x","responseTimeoutInSeconds":1}`, "", nil, 400, "ArgumentInvalid", "responseTimeoutInSeconds"},
		{"400/method without a name", "POST", "/twins/d1/methods", `{"payload":{}}`, "", nil, 400, "ArgumentInvalid", "methodName"},
		{"413/bulk over 100 devices", "POST", "/devices", many, "", nil, 413, "TooManyDevices", "at most 100"},
		{"400/bulk names a device twice", "POST", "/devices", `[{"id":"n1","importMode":"create"},{"id":"n1","importMode":"delete"}]`, "", nil, 400, "DeviceDefinedMultipleTimes", "n1"},
		{"400/bulk unknown mode", "POST", "/devices", `[{"id":"n1","importMode":"upsert"}]`, "", nil, 400, "ArgumentInvalid", "upsert"},
		{"400/bulk module items", "POST", "/devices", `[{"id":"d1","moduleId":"m","importMode":"create"}]`, "", nil, 400, "ArgumentInvalid", "modules"},
		{"415/not json", "PATCH", "/twins/d1", `tags=1`, "", []string{"Content-Type", "text/plain"}, 415, "UnsupportedMediaType", "Content-Type"},
		{"405/method not allowed", "DELETE", "/twins/d1", nil, "", nil, 405, "MethodNotAllowed", "DELETE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.hubDo(t, tc.method, tc.path, tc.body, tc.auth, tc.headers...)
			wantStatus(t, r, tc.status, tc.code)
			if msg := decodeInto[wire.HubErrorBody](t, r).Message; !strings.Contains(msg, tc.message) {
				t.Errorf("Message %q does not mention %q", msg, tc.message)
			}
			if after := snapshot(); after != before {
				t.Fatalf("the request changed the registry:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// methodConn is a device connected to the bus that answers direct methods.
type methodConn struct {
	mu      sync.Mutex
	got     []string
	block   bool
	status  int
	payload string
}

func (c *methodConn) DesiredChanged(map[string]any, int64) {}
func (c *methodConn) Close(string)                         {}
func (c *methodConn) InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	c.mu.Lock()
	c.got = append(c.got, name+" "+string(payload))
	c.mu.Unlock()
	if c.block {
		<-ctx.Done()
		return 0, nil, ctx.Err()
	}
	return c.status, json.RawMessage(c.payload), nil
}

func TestHubDirectMethods(t *testing.T) {
	a := newTestAPI(t)
	for _, id := range []string{"d1", "edge", "offline"} {
		wantStatus(t, a.hubDo(t, "PUT", "/devices/"+id, `{"capabilities":{"iotEdge":true}}`, ""), 200, "")
	}
	dev := &methodConn{status: 200, payload: `{"result":"rebooting"}`}
	t.Cleanup(a.bus.Attach("d1", "", dev))
	agent := &methodConn{status: 404, payload: `"no such method"`}
	t.Cleanup(a.bus.Attach("edge", "$edgeAgent", agent))
	t.Cleanup(a.bus.Attach("edge", "$edgeHub", &methodConn{block: true}))

	t.Run("504/no answer in time", func(t *testing.T) {
		t.Parallel()
		r := a.hubDo(t, "POST", "/twins/edge/modules/$edgeHub/methods", `{"methodName":"ping","responseTimeoutInSeconds":5}`, a.policyToken(t, "service"))
		wantStatus(t, r, 504, "GatewayTimeout")
	})
	for _, tc := range []struct {
		name, path, body string
		status           int
		code, answer     string
	}{
		{"200/device answers", "/twins/d1/methods", `{"methodName":"reboot","payload":{"delay":5},"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`, 200, "", `{"status":200,"payload":{"result":"rebooting"}}`},
		{"200/module answers with its own status", "/twins/edge/modules/%24edgeAgent/methods", `{"methodName":"nope","payload":null}`, 200, "", `{"status":404,"payload":"no such method"}`},
		{"404/device not online", "/twins/offline/methods", `{"methodName":"reboot"}`, 404, "DeviceNotOnline", ""},
		{"404/module not online", "/twins/offline/modules/$edgeAgent/methods", `{"methodName":"reboot"}`, 404, "DeviceNotOnline", ""},
		{"404/unknown device", "/twins/nobody/methods", `{"methodName":"reboot"}`, 404, "DeviceNotFound", ""},
		{"404/unknown module", "/twins/d1/modules/nope/methods", `{"methodName":"reboot"}`, 404, "ModuleNotFound", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.hubDo(t, "POST", tc.path, tc.body, "")
			wantStatus(t, r, tc.status, tc.code)
			if tc.answer != "" && strings.TrimSpace(string(r.body)) != tc.answer {
				t.Errorf("answer %s, want %s", r.body, tc.answer)
			}
		})
	}
	if len(dev.got) != 1 || dev.got[0] != `reboot {"delay":5}` {
		t.Errorf("the device got %q", dev.got)
	}
}

// TestHubBulk creates, updates and deletes devices in one request, as
// Node's addDevices/updateDevices/removeDevices and .NET's bulk calls do.
func TestHubBulk(t *testing.T) {
	a := newTestAPI(t)
	wantStatus(t, a.hubDo(t, "PUT", "/devices/old", `{}`, ""), 200, "")
	r := a.hubDo(t, "POST", "/devices", []map[string]any{
		{"id": "dev-002", "importMode": "create", "status": "enabled", "capabilities": map[string]any{"iotEdge": true},
			"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": nil, "secondaryKey": nil}},
			"tags":           map[string]any{"environment": "test"}, "properties": map[string]any{"desired": map[string]any{"telemetryInterval": 30}}},
		{"id": "old", "importMode": "create"},
		{"id": "old2", "importMode": "Delete"},
	}, "")
	wantStatus(t, r, 200, "")
	res := decodeInto[wire.BulkRegistryOperationResult](t, r)
	if res.IsSuccessful || len(res.Errors) != 2 || res.Errors[0].DeviceID != "old" || res.Errors[0].ErrorCode != "DeviceAlreadyExists" ||
		res.Errors[1].ErrorCode != "DeviceNotFound" || res.Warnings == nil {
		t.Errorf("bulk result: %s", r.body)
	}
	r = a.hubDo(t, "GET", "/twins/dev-002", nil, "")
	if tw := decodeInto[wire.Twin](t, r); tw.Tags["environment"] != "test" || tw.Properties.Desired["telemetryInterval"] != float64(30) || !tw.Capabilities.IoTEdge {
		t.Errorf("twin of a bulk-created device: %s", r.body)
	}
	wantStatus(t, a.hubDo(t, "GET", "/devices/dev-002/modules/$edgeHub", nil, ""), 200, "")
	r = a.hubDo(t, "POST", "/devices", `[{"id":"dev-002","importMode":"delete"},{"id":"old","importMode":"update","status":"disabled"}]`, "")
	if res := decodeInto[wire.BulkRegistryOperationResult](t, r); !res.IsSuccessful || len(res.Errors) != 0 {
		t.Errorf("bulk result: %s", r.body)
	}
	wantStatus(t, a.hubDo(t, "GET", "/devices/dev-002", nil, ""), 404, "DeviceNotFound")
}
