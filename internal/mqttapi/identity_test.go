package mqttapi

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/dps"
)

func TestParseUsername(t *testing.T) {
	tests := []struct {
		name     string
		username string
		want     identity
		wantErr  bool
	}{
		{"dps/C SDK, nothing encoded", "0ne00STUB01/registrations/cap-c-mqtt-01/api-version=2021-06-01&ClientVersion=1.15.0",
			identity{kind: dpsKind, scope: "0ne00STUB01", id: "cap-c-mqtt-01", params: map[string]string{"api-version": "2021-06-01", "ClientVersion": "1.15.0"}}, false},
		{"dps/Node, ClientVersion encoded", "0ne00STUB01/registrations/cap-mqtt-dev-01/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1",
			identity{kind: dpsKind, scope: "0ne00STUB01", id: "cap-mqtt-dev-01", params: map[string]string{"api-version": "2019-03-31", "ClientVersion": "azure-iot-provisioning-device/1.9.1"}}, false},
		{"dps/embedded, no ClientVersion", "0ne00STUB01/registrations/dev/api-version=2019-03-31",
			identity{kind: dpsKind, scope: "0ne00STUB01", id: "dev", params: map[string]string{"api-version": "2019-03-31"}}, false},
		{"dps/bad escape in a value kept as sent", "0ne00STUB01/registrations/dev/api-version=2021-06-01&ClientVersion=50%",
			identity{kind: dpsKind, scope: "0ne00STUB01", id: "dev", params: map[string]string{"api-version": "2021-06-01", "ClientVersion": "50%"}}, false},
		{"dps/user agent with ';' and spaces", "0ne00STUB01/registrations/dev/api-version=2021-06-01&ClientVersion=sdk%2f1 (native; Linux)",
			identity{kind: dpsKind, scope: "0ne00STUB01", id: "dev", params: map[string]string{"api-version": "2021-06-01", "ClientVersion": "sdk/1 (native; Linux)"}}, false},
		{"hub/device, C SDK", "127.0.0.1/cap-c-hub-dev-01/?api-version=2020-09-30&DeviceClientType=iothubclient%2f1.15.0%20(native%3b%20Linux%3b%20x86_64)",
			identity{kind: hubKind, scope: "127.0.0.1", id: "cap-c-hub-dev-01", params: map[string]string{"api-version": "2020-09-30", "DeviceClientType": "iothubclient/1.15.0 (native; Linux; x86_64)"}}, false},
		{"hub/module", "hub.example/dev/mod/?api-version=2021-04-12",
			identity{kind: hubKind, scope: "hub.example", id: "dev", module: "mod", params: map[string]string{"api-version": "2021-04-12"}}, false},
		{"err/no api-version", "0ne00STUB01/registrations/dev/ClientVersion=1.15.0", identity{}, true},
		{"err/empty api-version", "0ne00STUB01/registrations/dev/api-version=", identity{}, true},
		{"err/not registrations", "0ne00STUB01/devices/dev/api-version=2021-06-01", identity{}, true},
		{"err/empty registration ID", "0ne00STUB01/registrations//api-version=2021-06-01", identity{}, true},
		{"err/no shape", "just-a-name", identity{}, true},
		{"err/empty", "", identity{}, true},
		{"err/hub with empty module", "hub.example/dev//?api-version=2021-04-12", identity{}, true},
		{"err/hub with too many segments", "hub.example/a/b/c/?api-version=2021-04-12", identity{}, true},
		{"err/bad escape in the path", "0ne00STUB01/registrations/dev%zz/api-version=2021-06-01", identity{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUsername(tt.username)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseUsername(%q) error = %v, want error %v", tt.username, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(identity{})); diff != "" {
				t.Errorf("parseUsername(%q) (-want +got):\n%s", tt.username, diff)
			}
		})
	}
}

func TestSessionIDsAreNamespacedByKind(t *testing.T) {
	dpsID, err := parseUsername("0ne00STUB01/registrations/Dev-1/api-version=2021-06-01")
	if err != nil {
		t.Fatal(err)
	}
	hubID, err := parseUsername("hub.example/Dev-1/?api-version=2021-04-12")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dpsID.sessionID(), "dps:dev-1"; got != want {
		t.Errorf("DPS session ID = %q, want %q (registration IDs are case-insensitive)", got, want)
	}
	if got, want := hubID.sessionID(), "hub:Dev-1"; got != want {
		t.Errorf("hub session ID = %q, want %q (device IDs are case-sensitive)", got, want)
	}
	if !dpsID.matchesClientID("dev-1") || hubID.matchesClientID("dev-1") {
		t.Error("client ID matching: DPS should ignore case, the hub should not")
	}
}

func TestParseDPSRequest(t *testing.T) {
	tests := []struct {
		name   string
		topic  string
		want   dpsRequest
		wantOK bool
	}{
		{"register/uuid rid", "$dps/registrations/PUT/iotdps-register/?$rid=bc18573f-2455-4b34-9397-0357bca60247",
			dpsRequest{register: true, rid: "bc18573f-2455-4b34-9397-0357bca60247"}, true},
		{"register/integer rid", "$dps/registrations/PUT/iotdps-register/?$rid=1", dpsRequest{register: true, rid: "1"}, true},
		{"register/quoted rid echoed as sent", "$dps/registrations/PUT/iotdps-register/?$rid=a%20b", dpsRequest{register: true, rid: "a%20b"}, true},
		{"register/no rid", "$dps/registrations/PUT/iotdps-register/?", dpsRequest{register: true}, true},
		{"poll/C SDK", "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.9a6e54900a6de576.b004961a-478c-4637-b562-4777569baec2",
			dpsRequest{rid: "2", operationID: "4.9a6e54900a6de576.b004961a-478c-4637-b562-4777569baec2"}, true},
		{"poll/operationId first, encoded", "$dps/registrations/GET/iotdps-get-operationstatus/?operationId=4.a%2Eb&$rid=x",
			dpsRequest{rid: "x", operationID: "4.a.b"}, true},
		{"poll/first rid wins", "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&$rid=2&operationId=o",
			dpsRequest{rid: "1", operationID: "o"}, true},
		{"refused/answer topic", "$dps/registrations/res/202/?$rid=1", dpsRequest{}, false},
		{"refused/lower-case method", "$dps/registrations/put/iotdps-register/?$rid=1", dpsRequest{}, false},
		{"refused/without query mark", "$dps/registrations/PUT/iotdps-register/$rid=1", dpsRequest{}, false},
		{"refused/hub topic", "$iothub/twin/GET/?$rid=1", dpsRequest{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseDPSRequest(tt.topic)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("parseDPSRequest(%q) = %+v, %v; want %+v, %v", tt.topic, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestResponseTopic(t *testing.T) {
	h := &dpsHandler{retryAfter: 3}
	tests := []struct {
		status int
		rid    string
		want   string
	}{
		{202, "1", "$dps/registrations/res/202/?$rid=1&retry-after=3"},
		{200, "bc18573f", "$dps/registrations/res/200/?$rid=bc18573f"},
		{401, "2", "$dps/registrations/res/401/?$rid=2"},
		{429, "3", "$dps/registrations/res/429/?$rid=3&retry-after=3"},
		{503, "4", "$dps/registrations/res/503/?$rid=4&retry-after=3"},
	}
	for _, tt := range tests {
		if got := h.responseTopic(tt.status, tt.rid); got != tt.want {
			t.Errorf("responseTopic(%d, %q) = %q, want %q", tt.status, tt.rid, got, tt.want)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{dpsResponseFilter, "$dps/registrations/res/202/?$rid=1&retry-after=1", true},
		{dpsResponseFilter, "$dps/registrations/res", true},
		{dpsResponseFilter, "$dps/registrations/PUT/iotdps-register/?$rid=1", false},
		{"#", "$dps/registrations/res/200/?$rid=1", false},
		{"+/registrations/res/#", "$dps/registrations/res/200/?$rid=1", false},
		{"$dps/+/res/+/#", "$dps/registrations/res/200/?$rid=1", true},
		{"a/+", "a/b/c", false},
		{"a/b", "a/b", true},
	}
	for _, tt := range tests {
		if got := matchFilter(tt.filter, tt.topic); got != tt.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{
		"0ne00STUB01/registrations/cap-c-mqtt-01/api-version=2021-06-01&ClientVersion=1.15.0",
		"0ne00STUB01/registrations/cap-mqtt-dev-01/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1",
		"localhost/cap-mqtt-hub-dev/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4%20(node%20v20.20.2%3B%20Debian%2012%3B%20x64)",
		"127.0.0.1/cap-c-hub-dev-01/?api-version=2020-09-30&DeviceClientType=iothubclient%2f1.15.0%20(native%3b%20Linux%3b%20x86_64)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		id, err := parseUsername(u)
		if err != nil {
			return
		}
		if id.id == "" || id.scope == "" || id.params["api-version"] == "" {
			t.Errorf("parseUsername(%q) = %+v without an ID, a scope or an api-version", u, id)
		}
		if prefix := id.kind.String() + ":"; !strings.HasPrefix(id.sessionID(), prefix) {
			t.Errorf("session ID %q lacks the kind prefix %q", id.sessionID(), prefix)
		}
	})
}

func FuzzParseDPSRequest(f *testing.F) {
	for _, s := range []string{
		"$dps/registrations/PUT/iotdps-register/?$rid=bc18573f-2455-4b34-9397-0357bca60247",
		"$dps/registrations/PUT/iotdps-register/?$rid=1",
		"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=4.9a6e54900a6de576.b004961a-478c-4637-b562-4777569baec2",
	} {
		f.Add(s)
	}
	h := &dpsHandler{retryAfter: 1}
	f.Fuzz(func(t *testing.T, topic string) {
		r, ok := parseDPSRequest(topic)
		if !ok {
			return
		}
		if strings.Contains(r.rid, "&") {
			t.Errorf("rid %q contains '&'", r.rid)
		}
		if rt := h.responseTopic(202, r.rid); !strings.HasPrefix(rt, dpsResponseTopic+"202/?$rid="+r.rid) {
			t.Errorf("response topic %q does not start with the rid", rt)
		}
	})
}

// TestDPSSessionDoesNotTakeOverOtherKinds puts a (simulated) hub session
// with the same client ID into the broker, then connects DPS devices.
func TestDPSSessionDoesNotTakeOverOtherKinds(t *testing.T) {
	e, ln := newUnstartedEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := newBroker(ctx, e.srv)
	hubSession := b.mqtt.NewClient(nil, listenerID, "hub:dev-1", false)
	b.mqtt.Clients.Add(hubSession)
	e.start(t, func(context.Context) error { return b.run(ln) })

	d1 := e.mustConnect(t, "dev-1", e.enrollDevice(t, "dev-1", dps.Enabled))
	d2 := e.mustConnect(t, "dev-2", e.enrollDevice(t, "dev-2", dps.Enabled))
	for id, d := range map[string]*device{"dev-1": d1, "dev-2": d2} {
		d.publish(t, registerTopic(id), 1, "")
		if a := d.nextAnswer(t); a.status != 202 || a.rid != id {
			t.Errorf("%s: answer %d for %q, want 202 for its own request", id, a.status, a.rid)
		}
	}
	if hubSession.IsTakenOver() {
		t.Error("the DPS connection took over the hub session with the same client ID")
	}
	for _, id := range []string{"hub:dev-1", "dps:dev-1", "dps:dev-2"} {
		if _, ok := b.mqtt.Clients.Get(id); !ok {
			t.Errorf("the broker has no session %q", id)
		}
	}

	// The same registration ID again takes over its own DPS session, as
	// MQTT requires.
	lost := make(chan struct{})
	var once sync.Once
	key := e.enrollDevice(t, "dev-3", dps.Enabled)
	token := e.token(t, e.idScope, "dev-3", key, time.Now().Add(time.Hour))
	if _, rc := e.connect(t, "dev-3", e.username("dev-3"), token, func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { once.Do(func() { close(lost) }) })
	}); rc != 0 {
		t.Fatalf("CONNACK = %d", rc)
	}
	if _, rc := e.connect(t, "dev-3", e.username("dev-3"), token); rc != 0 {
		t.Fatalf("CONNACK = %d", rc)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Error("the second connection of dev-3 did not take over the first")
	}
}
