package mqttapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
)

// Client strings of the captured SDKs (wire/hub-device-mqtt.md,
// wire/c-sdk-hub-device-mqtt.md).
const (
	nodeClientType = "&DeviceClientType=azure-iot-device%2F1.18.4%20(node%20v20.20.2%3B%20Debian%2012%3B%20x64)"
	cClientType    = "&DeviceClientType=iothubclient%2f1.15.0%20(native%3b%20Linux%3b%20x86_64)"
)

// hubDevice provisions a hub device with an initial desired property and
// returns its primary key.
func (e *testEnv) hubDevice(t *testing.T, id string, edge bool) string {
	t.Helper()
	p, _ := sas.NewKey(32)
	s, _ := sas.NewKey(32)
	if _, err := e.hub.Provision(context.Background(), hub.ProvisionSpec{DeviceID: id, PrimaryKey: p, SecondaryKey: s, IoTEdge: edge,
		Desired: map[string]any{"telemetryInterval": 30}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// disable disables a hub device in the store.
func (e *testEnv) disable(t *testing.T, id string) {
	t.Helper()
	d, err := e.db.Device(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	etag := d.ETag
	d.Status, d.ETag = hub.Disabled, etag+"-disabled"
	if err := e.db.UpdateIdentity(context.Background(), d, etag, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// nodeToken signs as the Node SDK does: sr URL-encoded, HMAC over the
// encoded form, no skn.
func nodeToken(t *testing.T, resource, key string, expiry time.Time) string {
	t.Helper()
	tok, err := sas.SignKey(url.QueryEscape(resource), "", key, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// cToken signs as the C SDK does: sr raw.
func cToken(t *testing.T, resource, key string, expiry time.Time) string {
	t.Helper()
	tok, err := sas.SignKey(resource, "", key, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func deviceResource(id string) string { return hubHost + "/devices/" + id }

func hubUsername(id, clientType string) string {
	return hubHost + "/" + id + "/?api-version=2021-04-12" + clientType
}

// hubConnect connects a device as the Node SDK does (clean session false,
// keepalive 180, encoded sr) and subscribes to twin answers.
func (e *testEnv) hubConnect(t *testing.T, id, key string) *device {
	t.Helper()
	d, rc := e.connect(t, id, hubUsername(id, nodeClientType), nodeToken(t, deviceResource(id), key, time.Now().Add(time.Hour)),
		func(o *paho.ClientOptions) { o.SetCleanSession(false).SetKeepAlive(180 * time.Second) })
	if rc != 0 {
		t.Fatalf("CONNACK = %d, want 0", rc)
	}
	d.subscribe(t, twinResponseFilter, 0)
	return d
}

// hubConnectRaw connects a raw client as the C SDK does (clean session
// false, keepalive 240, raw sr) and returns the CONNACK.
func (e *testEnv) hubConnectRaw(t *testing.T, clientID, username, password string) (*rawClient, packets.Packet) {
	t.Helper()
	c := e.dialRaw(t)
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: false, Keepalive: 240, ClientIdentifier: clientID,
		UsernameFlag: true, Username: []byte(username), PasswordFlag: true, Password: []byte(password),
	}})
	return c, c.mustRead(packets.Connack)
}

// mustHubConnectRaw connects as the C SDK and subscribes to twin answers.
func (e *testEnv) mustHubConnectRaw(t *testing.T, id, key string) *rawClient {
	t.Helper()
	c, ack := e.hubConnectRaw(t, id, hubUsername(id, cClientType), cToken(t, deviceResource(id), key, time.Now().Add(time.Hour)))
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK = %d, want 0", ack.ReasonCode)
	}
	if got := c.subscribe(2, twinResponseFilter, 0); !cmp.Equal(got, []byte{0}) {
		t.Fatalf("SUBACK = %v, want [0]", got)
	}
	return c
}

// twinAnswer is a twin answer with its topic parsed.
type twinAnswer struct {
	status  int
	rid     string
	version string // "" when absent
	body    map[string]any
}

// parseTwinAnswer checks the answer topic's shape ($rid first) and decodes
// a non-empty body.
func parseTwinAnswer(t *testing.T, topic string, payload []byte) twinAnswer {
	t.Helper()
	rest, ok := strings.CutPrefix(topic, twinResponseTopic)
	if !ok {
		t.Fatalf("answer topic %q does not start with %q", topic, twinResponseTopic)
	}
	statusText, query, ok := strings.Cut(rest, "/?")
	if !ok || !strings.HasPrefix(query, "$rid=") {
		t.Fatalf("answer topic %q does not have $rid first after /?", topic)
	}
	var a twinAnswer
	var err error
	if a.status, err = strconv.Atoi(statusText); err != nil {
		t.Fatalf("answer topic %q: status %q", topic, statusText)
	}
	for pair := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		switch k {
		case "$rid":
			a.rid = v
		case "$version":
			a.version = v
		default:
			t.Errorf("answer topic %q has an unexpected parameter %q", topic, k)
		}
	}
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &a.body); err != nil {
			t.Fatalf("answer payload is not a JSON object: %v\n%s", err, payload)
		}
	}
	return a
}

func (d *device) nextTwinAnswer(t *testing.T) twinAnswer {
	t.Helper()
	m := d.next(t)
	return parseTwinAnswer(t, m.Topic(), m.Payload())
}

func (c *rawClient) nextTwinAnswer() twinAnswer {
	c.t.Helper()
	pk := c.mustRead(packets.Publish)
	return parseTwinAnswer(c.t, pk.TopicName, pk.Payload)
}

// expectClosed waits for the server to close the connection.
func (c *rawClient) expectClosed(what string) {
	c.t.Helper()
	for {
		pk, err := c.read(10*time.Second, 4)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("%s: the connection stayed open", what)
			}
			return
		}
		if pk.FixedHeader.Type == packets.Puback {
			c.t.Fatalf("%s: the publish was acknowledged", what)
		}
	}
}

// expectSilence checks that nothing arrives for a moment.
func (c *rawClient) expectSilence(what string) {
	c.t.Helper()
	pk, err := c.read(300*time.Millisecond, 4)
	var ne net.Error
	if err == nil {
		c.t.Errorf("%s: received %q", what, pk.TopicName)
	} else if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Errorf("%s: the connection closed: %v", what, err)
	}
}

func TestHubConnect(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const id = "conn-dev"
	key := e.hubDevice(t, id, false)
	otherKey := e.hubDevice(t, "conn-other", false)
	e.hubDevice(t, "conn-off", false)
	offKey := func() string { d, _ := e.db.Device(ctx, "conn-off"); return d.PrimaryKey }()
	e.disable(t, "conn-off")
	e.hubDevice(t, "conn-edge", true)
	agent, err := e.db.Module(ctx, "conn-edge", hub.EdgeAgent)
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)
	moduleUser := hubHost + "/conn-edge/" + hub.EdgeAgent + "/?api-version=2020-09-30"
	moduleRes := deviceResource("conn-edge") + "/modules/" + hub.EdgeAgent
	tests := []struct {
		name               string
		clientID, username string
		password           string
		want               byte
	}{
		{"0/Node token with encoded sr", id, hubUsername(id, nodeClientType), nodeToken(t, deviceResource(id), key, hour), 0},
		{"0/C SDK token with raw sr", id, hubUsername(id, cClientType), cToken(t, deviceResource(id), key, hour), 0},
		{"0/secondary key", id, hubUsername(id, ""), cToken(t, deviceResource(id), func() string { d, _ := e.db.Device(ctx, id); return d.SecondaryKey }(), hour), 0},
		{"0/host name in another case", id, strings.ToUpper(hubHost) + "/" + id + "/?api-version=2021-04-12", nodeToken(t, deviceResource(id), key, hour), 0},
		{"0/model-id in the username", id, hubUsername(id, "&model-id=dtmi%3Acom%3Aexample%3BThermostat%3B1"+nodeClientType), nodeToken(t, deviceResource(id), key, hour), 0},
		{"0/module with its own key", "conn-edge/" + hub.EdgeAgent, moduleUser, cToken(t, moduleRes, agent.PrimaryKey, hour), 0},
		{"5/wrong key", id, hubUsername(id, cClientType), cToken(t, deviceResource(id), otherKey, hour), 5},
		{"5/token for another device", id, hubUsername(id, cClientType), cToken(t, deviceResource("conn-other"), otherKey, hour), 5},
		{"5/expired token", id, hubUsername(id, cClientType), cToken(t, deviceResource(id), key, time.Now().Add(-time.Hour)), 5},
		{"5/disabled device", "conn-off", hubUsername("conn-off", cClientType), cToken(t, deviceResource("conn-off"), offKey, hour), 5},
		{"5/unknown device", "nobody", hubUsername("nobody", cClientType), cToken(t, deviceResource("nobody"), key, hour), 5},
		{"5/username names another hub", id, "other.hub.test/" + id + "/?api-version=2021-04-12", cToken(t, deviceResource(id), key, hour), 5},
		{"5/module token for the device", "conn-edge", hubUsername("conn-edge", ""), cToken(t, moduleRes, agent.PrimaryKey, hour), 5},
		{"5/password is not a SAS token", id, hubUsername(id, ""), "hunter2", 5},
		{"2/client ID is another device", "conn-other", hubUsername(id, cClientType), cToken(t, deviceResource(id), key, hour), 2},
		{"2/module client ID without the module", "conn-edge", moduleUser, cToken(t, moduleRes, agent.PrimaryKey, hour), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ack := e.hubConnectRaw(t, tt.clientID, tt.username, tt.password)
			if ack.ReasonCode != tt.want {
				t.Fatalf("CONNACK = %d, want %d", ack.ReasonCode, tt.want)
			}
			if tt.want != 0 {
				return
			}
			c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
		})
	}
}

func TestHubTwinCSDKStyle(t *testing.T) {
	e := newEnv(t)
	const id = "cap-c-hub-dev-01"
	c := e.mustHubConnectRaw(t, id, e.hubDevice(t, id, false))

	c.publish(twinGetTopic+"?$rid=3", 0, 0, "")
	a := c.nextTwinAnswer()
	want := map[string]any{"desired": map[string]any{"$version": 1.0, "telemetryInterval": 30.0}, "reported": map[string]any{"$version": 1.0}}
	if a.status != 200 || a.rid != "3" || a.version != "" {
		t.Fatalf("GET answer: status %d rid %q version %q, want 200 \"3\" none", a.status, a.rid, a.version)
	}
	if diff := cmp.Diff(want, a.body); diff != "" {
		t.Errorf("GET body (-want +got):\n%s", diff)
	}
	if got := c.subscribe(5, desiredFilter, 0); !cmp.Equal(got, []byte{0}) {
		t.Fatalf("desired SUBACK = %v", got)
	}

	c.publish(reportedTopic+"?$rid=6", 0, 0, `{"cInterop":{"sdk":"azure-iot-sdk-c","n":1},"firmware":"1.0.0"}`)
	pk := c.mustRead(packets.Publish)
	if want := twinResponseTopic + "204/?$rid=6&$version=2"; pk.TopicName != want || len(pk.Payload) != 0 {
		t.Fatalf("reported answer %q %q, want %q with no body", pk.TopicName, pk.Payload, want)
	}
	tw, err := e.db.Twin(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if tw.ReportedVersion != 2 || tw.Reported["firmware"] != "1.0.0" {
		t.Errorf("stored twin: reported %v version %d, want firmware 1.0.0 at version 2", tw.Reported, tw.ReportedVersion)
	}

	c.publish(twinGetTopic+"?$rid=7", 1, 7, "")
	if ack := c.mustRead(packets.Puback); ack.PacketID != 7 {
		t.Fatalf("PUBACK for %d, want 7", ack.PacketID)
	}
	if a := c.nextTwinAnswer(); a.rid != "7" || a.body["reported"].(map[string]any)["firmware"] != "1.0.0" {
		t.Errorf("second GET = %+v, want the reported patch", a)
	}
}

func TestHubTwinNodeStyle(t *testing.T) {
	e := newEnv(t)
	const id = "cap-mqtt-hub-dev"
	d := e.hubConnect(t, id, e.hubDevice(t, id, false))
	rid := "fd045e44-b5e9-49d4-b1f4-c67d76468561"
	d.publish(t, twinGetTopic+"?$rid="+rid, 0, " ")
	a := d.nextTwinAnswer(t)
	if desired, _ := a.body["desired"].(map[string]any); a.status != 200 || a.rid != rid || desired["$version"] != 1.0 || desired["telemetryInterval"] != 30.0 {
		t.Fatalf("GET answer = %+v", a)
	}
	rid = "20d62d7a-bdbc-4efd-b0d4-cd9062d23373"
	d.publish(t, reportedTopic+"?$rid="+rid, 0, `{"firmware":{"version":"1.0.1"},"battery":97}`)
	if a := d.nextTwinAnswer(t); a.status != 204 || a.rid != rid || a.version != "2" || a.body != nil {
		t.Fatalf("reported answer = %+v, want 204 with $version 2 and no body", a)
	}

	tests := []struct {
		name     string
		topic    string
		payload  string
		status   int     // 0: any 4xx (the twin limits' status is wire's call)
		wantCode float64 // 0: status followed by three digits
	}{
		{"400/reported patch is not JSON", reportedTopic + "?$rid=e1", `{not json`, 400, 400006},
		{"400/reported patch is not an object", reportedTopic + "?$rid=e2", `[1,2]`, 400, 400006},
		{"400/reported patch is empty", reportedTopic + "?$rid=e3", ` `, 400, 400006},
		{"400/reported key with a dot", reportedTopic + "?$rid=e4", `{"a.b":1}`, 400, 400004},
		{"4xx/reported over 32 KB", reportedTopic + "?$rid=e5", `{"a":"` + strings.Repeat("x", 4000) + `","b":"` + strings.Repeat("x", 4000) + `","c":{` + bigObject(8) + `}}`, 0, 0},
		{"400/GET without $rid", twinGetTopic, ``, 400, 400004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.publish(t, tt.topic, 0, tt.payload)
			a := d.nextTwinAnswer(t)
			wantRID, _ := strings.CutPrefix(tt.topic[strings.Index(tt.topic, "/?")+1:], "?$rid=")
			if tt.topic == twinGetTopic {
				wantRID = ""
			}
			if tt.status != 0 && a.status != tt.status || a.status < 400 || a.status > 499 || a.rid != wantRID {
				t.Errorf("answer status %d rid %q, want %d %q", a.status, a.rid, tt.status, wantRID)
			}
			code, _ := a.body["errorCode"].(float64)
			if tt.wantCode != 0 && code != tt.wantCode || int(code)/1000 != a.status || str(a.body, "message") == "" || str(a.body, "trackingId") == "" {
				t.Errorf("error body = %v, want errorCode %v with message and trackingId (Node turns errorCode into an error)", a.body, tt.wantCode)
			}
		})
	}
}

// bigObject returns n members of 4000-byte strings, JSON-encoded.
func bigObject(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"k` + strconv.Itoa(i) + `":"` + strings.Repeat("y", 4000) + `"`
	}
	return strings.Join(parts, ",")
}

func TestHubModuleTwin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.hubDevice(t, "edge-1", true)
	agent, err := e.db.Module(ctx, "edge-1", hub.EdgeAgent)
	if err != nil {
		t.Fatal(err)
	}
	clientID := "edge-1/" + hub.EdgeAgent
	c, ack := e.hubConnectRaw(t, clientID, hubHost+"/edge-1/"+hub.EdgeAgent+"/?api-version=2020-09-30",
		cToken(t, deviceResource("edge-1")+"/modules/"+hub.EdgeAgent, agent.PrimaryKey, time.Now().Add(time.Hour)))
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK = %d", ack.ReasonCode)
	}
	c.subscribe(1, twinResponseFilter, 1)
	if got := c.subscribe(2, "devices/edge-1"+deviceboundSuffix, 1); !cmp.Equal(got, []byte{0x80}) {
		t.Errorf("module C2D SUBACK = %x, want [80] (modules get no cloud-to-device messages)", got)
	}
	c.publish(reportedTopic+"?$rid=1", 0, 0, `{"schemaVersion":"1.1"}`)
	pk := c.mustRead(packets.Publish)
	if pk.FixedHeader.Qos != 1 {
		t.Errorf("answer QoS %d, want the subscription's 1", pk.FixedHeader.Qos)
	}
	c.puback(pk.PacketID)
	if a := parseTwinAnswer(t, pk.TopicName, pk.Payload); a.status != 204 || a.version != "2" {
		t.Fatalf("reported answer = %+v", a)
	}
	if tw, _ := e.db.Twin(ctx, "edge-1", hub.EdgeAgent); tw.Reported["schemaVersion"] != "1.1" {
		t.Errorf("module twin reported = %v", tw.Reported)
	}
	if tw, _ := e.db.Twin(ctx, "edge-1", ""); tw.Reported["schemaVersion"] != nil {
		t.Errorf("the module's patch reached the device twin: %v", tw.Reported)
	}

	c.publish("devices/edge-1/modules/"+hub.EdgeAgent+"/messages/events/%24.on=output1", 1, 3, `{"m":1}`)
	if ack := c.mustRead(packets.Puback); ack.PacketID != 3 {
		t.Fatalf("PUBACK %d, want 3", ack.PacketID)
	}
	msgs, err := e.hub.Messages(ctx, 0, 10)
	if err != nil || len(msgs) != 1 || msgs[0].ModuleID != hub.EdgeAgent || msgs[0].System.OutputName != "output1" {
		t.Errorf("messages = %+v %v, want one from the module on output1", msgs, err)
	}
}

func TestHubDesiredPush(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := e.hubConnect(t, "push-a", e.hubDevice(t, "push-a", false))
	d.subscribe(t, desiredFilter, 0)
	other := e.hubConnect(t, "push-b", e.hubDevice(t, "push-b", false))
	other.subscribe(t, desiredFilter, 0)
	// The C SDK subscribes to desired pushes only after its first GET.
	quiet := e.mustHubConnectRaw(t, "push-c", e.hubDevice(t, "push-c", false))

	if _, err := e.hub.PatchTwin(ctx, "push-a", "", hub.TwinPatch{Desired: map[string]any{"telemetryInterval": 5, "mode": "eco"}}, ""); err != nil {
		t.Fatal(err)
	}
	m := d.next(t)
	if want := desiredPushTopic + "2"; m.Topic() != want {
		t.Fatalf("push topic %q, want %q", m.Topic(), want)
	}
	var body map[string]any
	if err := json.Unmarshal(m.Payload(), &body); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"telemetryInterval": 5.0, "mode": "eco", "$version": 2.0}, body); diff != "" {
		t.Errorf("push body (-want +got):\n%s", diff)
	}
	// A removal travels as null (the device merges it as a deletion).
	e.bus.DesiredChanged("push-a", "", map[string]any{"mode": nil}, 3)
	if m := d.next(t); m.Topic() != desiredPushTopic+"3" || string(m.Payload()) != `{"$version":3,"mode":null}` {
		t.Errorf("removal push %q %s, want mode null at $version 3", m.Topic(), m.Payload())
	}
	if _, err := e.hub.PatchTwin(ctx, "push-c", "", hub.TwinPatch{Desired: map[string]any{"x": 1}}, ""); err != nil {
		t.Fatal(err)
	}
	quiet.expectSilence("a connection not subscribed to desired pushes")
	quiet.publish(twinGetTopic+"?$rid=3", 0, 0, "")
	if a := quiet.nextTwinAnswer(); a.body["desired"].(map[string]any)["x"] != 1.0 {
		t.Errorf("GET after the change = %v, want it to show x", a.body)
	}
	select {
	case m := <-other.msgs:
		t.Errorf("another device received %s", m.Topic())
	case <-time.After(200 * time.Millisecond):
	}
}

// TestHubPersistentSession: the SDKs connect with clean session false; a
// reconnect within the session's lifetime keeps its subscriptions.
func TestHubPersistentSession(t *testing.T) {
	e := newEnv(t)
	const id = "persistent-dev"
	key := e.hubDevice(t, id, false)
	c := e.mustHubConnectRaw(t, id, key)
	c.subscribe(3, desiredFilter, 0)
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	c.expectClosed("DISCONNECT")
	for e.bus.Connected(id, "") {
		time.Sleep(10 * time.Millisecond) // the session ends on the server's side after the socket
	}
	c, ack := e.hubConnectRaw(t, id, hubUsername(id, cClientType), cToken(t, deviceResource(id), key, time.Now().Add(time.Hour)))
	if ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("CONNACK code %d session present %v, want 0 and a session", ack.ReasonCode, ack.SessionPresent)
	}
	for !e.bus.Connected(id, "") {
		time.Sleep(10 * time.Millisecond) // the broker establishes the session after sending CONNACK
	}
	if _, err := e.hub.PatchTwin(context.Background(), id, "", hub.TwinPatch{Desired: map[string]any{"after": "reconnect"}}, ""); err != nil {
		t.Fatal(err)
	}
	if pk := c.mustRead(packets.Publish); pk.TopicName != desiredPushTopic+"2" {
		t.Errorf("after reconnect got %q, want the desired push", pk.TopicName)
	}
}

func TestHubDirectMethod(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const id = "method-dev"
	d := e.hubConnect(t, id, e.hubDevice(t, id, false))

	if _, _, err := e.bus.InvokeMethod(ctx, id, "", "reboot", nil); !fault.Is(err, fault.NotFound) {
		t.Errorf("method before subscribing: %v, want fault.NotFound (not online)", err)
	}
	d.subscribe(t, methodsFilter, 0)

	type result struct {
		status int
		answer json.RawMessage
		err    error
	}
	call := func(ctx context.Context, payload string) chan result {
		done := make(chan result, 1)
		go func() {
			s, a, err := e.bus.InvokeMethod(ctx, id, "", "reboot", json.RawMessage(payload))
			done <- result{s, a, err}
		}()
		return done
	}
	done := call(ctx, `{"delay":5}`)
	m := d.next(t)
	name, query, ok := strings.Cut(strings.TrimPrefix(m.Topic(), methodRequestTopic), "/?$rid=")
	if !ok || name != "reboot" || query == "" || string(m.Payload()) != `{"delay":5}` {
		t.Fatalf("method request %q %s, want reboot with a $rid and the payload", m.Topic(), m.Payload())
	}
	d.publish(t, methodResponseTopic+"201/?$rid="+query, 0, `{"rebooting":true}`)
	r := <-done
	if r.err != nil || r.status != 201 || string(r.answer) != `{"rebooting":true}` {
		t.Fatalf("InvokeMethod = %d %s %v, want 201 {\"rebooting\":true}", r.status, r.answer, r.err)
	}

	t.Run("empty payload and answer", func(t *testing.T) {
		done := call(ctx, "")
		m := d.next(t)
		if string(m.Payload()) != "null" {
			t.Errorf("request payload %q, want null", m.Payload())
		}
		_, rid, _ := strings.Cut(m.Topic(), "/?$rid=")
		if rid == query {
			t.Errorf("$rid %q reused", rid)
		}
		d.publish(t, methodResponseTopic+"200/?$rid="+rid, 0, "")
		if r := <-done; r.err != nil || r.status != 200 || r.answer != nil {
			t.Errorf("InvokeMethod = %d %s %v, want 200 without a payload", r.status, r.answer, r.err)
		}
	})

	t.Run("no answer before ctx ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		done := call(ctx, "{}")
		m := d.next(t)
		if r := <-done; !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("InvokeMethod = %v, want the deadline", r.err)
		}
		_, rid, _ := strings.Cut(m.Topic(), "/?$rid=")
		d.publish(t, methodResponseTopic+"200/?$rid="+rid, 0, "{}") // late: dropped
	})

	t.Run("device disconnects while the call waits", func(t *testing.T) {
		done := call(ctx, "{}")
		d.next(t)
		d.c.Disconnect(0)
		if r := <-done; !fault.Is(r.err, fault.NotFound) {
			t.Errorf("InvokeMethod = %v, want fault.NotFound (not online)", r.err)
		}
	})
}

func TestHubTelemetry(t *testing.T) {
	posted := make(chan webhookMessage, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m webhookMessage
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("webhook request %s %s: %v", r.Method, r.Header.Get("Content-Type"), err)
		}
		posted <- m
	}))
	t.Cleanup(hook.Close)
	e := newEnv(t, func(o *Options) { o.MessageWebhook = hook.URL + "/ingest?code=secret"; o.MessageLogSize = 3 })
	ctx := context.Background()
	const id = "cap-c-hub-dev-01"
	c := e.mustHubConnectRaw(t, id, e.hubDevice(t, id, false))

	c.publish("devices/"+id+"/messages/events/alert=no&%24.mid=msg-1&%24.ct=application%2Fjson&%24.ce=utf-8", 1, 7, `{"temperature":21.5}`)
	if ack := c.mustRead(packets.Puback); ack.PacketID != 7 {
		t.Fatalf("PUBACK for %d, want 7", ack.PacketID)
	}
	msgs, err := e.hub.Messages(ctx, 0, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("messages = %+v %v, want 1", msgs, err)
	}
	got := msgs[0]
	want := hub.Message{Seq: got.Seq, DeviceID: id, Enqueued: got.Enqueued,
		System:     hub.SystemProperties{MessageID: "msg-1", ContentType: "application/json", ContentEncoding: "utf-8"},
		Properties: map[string]string{"alert": "no"}, Body: []byte(`{"temperature":21.5}`)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored message (-want +got):\n%s", diff)
	}
	if time.Since(got.Enqueued) > time.Minute {
		t.Errorf("enqueued %v, want now", got.Enqueued)
	}
	select {
	case m := <-posted:
		want := webhookMessage{DeviceID: id, EnqueuedTime: m.EnqueuedTime, Properties: map[string]string{"alert": "no"},
			SystemProperties: map[string]string{"message-id": "msg-1", "content-type": "application/json", "content-encoding": "utf-8"},
			Body:             `{"temperature":21.5}`, BodyEncoding: "utf-8"}
		if diff := cmp.Diff(want, m); diff != "" || m.EnqueuedTime == "" {
			t.Errorf("webhook body (-want +got):\n%s", diff)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook received nothing")
	}

	t.Run("Node order, QoS 0, binary body", func(t *testing.T) {
		c.publish("devices/"+id+"/messages/events/%24.mid=msg-0001&%24.cid=corr-0001&%24.ct=application%2Fjson&%24.ce=utf-8&alert=false", 0, 0, "\xff\x00")
		c.publish(twinGetTopic+"?$rid=9", 0, 0, "") // answered after the telemetry is stored
		c.nextTwinAnswer()
		msgs, _ := e.hub.Messages(ctx, got.Seq, 10)
		if len(msgs) != 1 || msgs[0].System.CorrelationID != "corr-0001" || msgs[0].Properties["alert"] != "false" || string(msgs[0].Body) != "\xff\x00" {
			t.Errorf("messages = %+v", msgs)
		}
		if m := <-posted; m.BodyEncoding != "base64" || m.Body != "/wA=" {
			t.Errorf("webhook body %q (%s), want base64", m.Body, m.BodyEncoding)
		}
	})

	t.Run("the log keeps MessageLogSize", func(t *testing.T) {
		for i := range 4 {
			c.publish("devices/"+id+"/messages/events/", 1, uint16(20+i), strconv.Itoa(i))
			c.mustRead(packets.Puback)
			<-posted
		}
		msgs, _ := e.hub.Messages(ctx, 0, 10)
		if len(msgs) != 3 || string(msgs[2].Body) != "3" {
			t.Errorf("log holds %d messages, want the newest 3", len(msgs))
		}
	})

	t.Run("a message over 256 KB closes the connection", func(t *testing.T) {
		before, _ := e.hub.Messages(ctx, 0, 10)
		c.publish("devices/"+id+"/messages/events/", 1, 30, strings.Repeat("x", hub.MaxMessageBytes+1))
		c.expectClosed("message over 256 KB")
		if after, _ := e.hub.Messages(ctx, 0, 10); len(after) != len(before) || after[len(after)-1].Seq != before[len(before)-1].Seq {
			t.Error("the refused message was stored")
		}
	})
}

func TestHubACL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const id, other = "acl-hub-a", "acl-hub-b"
	key := e.hubDevice(t, id, false)
	b := e.mustHubConnectRaw(t, other, e.hubDevice(t, other, false))
	b.subscribe(3, "devices/"+other+deviceboundSuffix, 1)
	b.subscribe(4, desiredFilter, 0)

	t.Run("subscribe", func(t *testing.T) {
		c := e.mustHubConnectRaw(t, id, key)
		tests := []struct {
			name   string
			filter string
			qos    byte
			want   byte
		}{
			{"0x80/everything", "#", 0, 0x80},
			{"0x80/all hub topics", "$iothub/#", 0, 0x80},
			{"0x80/all twin topics", "$iothub/twin/#", 0, 0x80},
			{"0x80/DPS answers", dpsResponseFilter, 1, 0x80},
			{"0x80/another device's C2D", "devices/" + other + deviceboundSuffix, 1, 0x80},
			{"0x80/another device's telemetry", "devices/" + other + "/messages/events/#", 0, 0x80},
			{"0x80/every device's C2D", "devices/+" + deviceboundSuffix, 1, 0x80},
			{"0x80/own telemetry", "devices/" + id + "/messages/events/#", 0, 0x80},
			{"0/twin answers", twinResponseFilter, 0, 0},
			{"1/desired pushes at QoS 1", desiredFilter, 1, 1},
			{"1/methods asked at QoS 2", methodsFilter, 2, 1},
			{"1/own C2D", "devices/" + id + deviceboundSuffix, 1, 1},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := c.subscribe(uint16(10+i), tt.filter, tt.qos); !cmp.Equal(got, []byte{tt.want}) {
					t.Errorf("SUBACK = %x, want [%x]", got, tt.want)
				}
			})
		}
	})

	t.Run("QoS 0 publishes to other topics reach no one", func(t *testing.T) {
		c := e.mustHubConnectRaw(t, id, key)
		for _, topic := range []string{
			"devices/" + other + "/messages/events/forged=1",
			"devices/" + other + "/messages/devicebound/forged=1",
			desiredPushTopic + "99",
			twinResponseTopic + "200/?$rid=forged",
			"devices/" + id + "/modules/m1/messages/events/",
			"$dps/registrations/PUT/iotdps-register/?$rid=1",
		} {
			c.publish(topic, 0, 0, `{"forged":true}`)
		}
		c.publish(twinGetTopic+"?$rid=after", 0, 0, "")
		if a := c.nextTwinAnswer(); a.rid != "after" {
			t.Fatalf("answer for %q, want %q", a.rid, "after")
		}
		b.expectSilence("the other device")
		if msgs, _ := e.hub.Messages(ctx, 0, 10); len(msgs) != 0 {
			t.Errorf("forged publishes were stored: %+v", msgs)
		}
	})

	t.Run("a QoS 1 publish to another device's topic closes the connection", func(t *testing.T) {
		c := e.mustHubConnectRaw(t, id, key)
		c.publish("devices/"+other+"/messages/events/", 1, 9, "{}")
		c.expectClosed("QoS 1 publish to another device's events")
		if msgs, _ := e.hub.Messages(ctx, 0, 10); len(msgs) != 0 {
			t.Errorf("the refused publish was stored: %+v", msgs)
		}
	})
}

// TestHubAndDPSSessionsCoexist: a provisioning connection and a hub
// connection with the same client ID are different sessions.
func TestHubAndDPSSessionsCoexist(t *testing.T) {
	e := newEnv(t)
	const id = "same-id"
	regDev := e.mustConnect(t, id, e.enrollDevice(t, id, dps.Enabled))
	hubDev := e.mustHubConnectRaw(t, id, e.hubDevice(t, id, false))
	for i := range 2 {
		regDev.publish(t, registerTopic(strconv.Itoa(i)), 1, "")
		if a := regDev.nextAnswer(t); a.status != 202 {
			t.Fatalf("register answered %d", a.status)
		}
		hubDev.publish(twinGetTopic+"?$rid="+strconv.Itoa(i), 0, 0, "")
		if a := hubDev.nextTwinAnswer(); a.status != 200 {
			t.Fatalf("twin GET answered %d", a.status)
		}
	}
	if !regDev.c.IsConnectionOpen() {
		t.Error("the hub connection took over the DPS session")
	}
}

// TestHubNewConnectionTakesOver: one connection per identity, as IoT Hub.
func TestHubNewConnectionTakesOver(t *testing.T) {
	e := newEnv(t)
	const id = "twice-dev"
	key := e.hubDevice(t, id, false)
	first := e.mustHubConnectRaw(t, id, key)
	second := e.mustHubConnectRaw(t, id, key)
	first.expectClosed("the first connection")
	second.publish(twinGetTopic+"?$rid=1", 0, 0, "")
	if a := second.nextTwinAnswer(); a.status != 200 {
		t.Errorf("second connection GET answered %d", a.status)
	}
}

func TestBusDisconnectClosesTheConnection(t *testing.T) {
	e := newEnv(t)
	const id = "doomed-dev"
	c := e.mustHubConnectRaw(t, id, e.hubDevice(t, id, false))
	if !e.bus.Connected(id, "") {
		t.Fatal("the connection is not on the bus")
	}
	e.bus.Disconnect(id, "device disabled")
	c.expectClosed("Bus.Disconnect")
	for e.bus.Connected(id, "") {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(e.logs.String(), "device disabled") {
		t.Error("the log does not say why the connection was closed")
	}
}

func TestHubTokenExpiryClosesTheConnection(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.HubTokenSkew = time.Millisecond })
	const id = "expiring-hub-dev"
	key := e.hubDevice(t, id, false)
	c, ack := e.hubConnectRaw(t, id, hubUsername(id, cClientType), cToken(t, deviceResource(id), key, time.Now().Add(2*time.Second)))
	if ack.ReasonCode != 0 {
		t.Fatalf("CONNACK = %d", ack.ReasonCode)
	}
	c.expectClosed("token expiry")
	if !strings.Contains(e.logs.String(), "the SAS token expired") {
		t.Error("the log does not say the token expired")
	}
}

func TestHubLogsCarryNoCredentials(t *testing.T) {
	e := newEnv(t)
	const id = "secret-hub-dev"
	key := e.hubDevice(t, id, false)
	token := cToken(t, deviceResource(id), key, time.Now().Add(time.Hour))
	e.hubConnectRaw(t, id, hubUsername(id, cClientType), cToken(t, deviceResource(id), e.hubDevice(t, "secret-other", false), time.Now().Add(time.Hour)))
	c, _ := e.hubConnectRaw(t, id, hubUsername(id, cClientType), token)
	c.subscribe(1, twinResponseFilter, 0)
	c.publish(reportedTopic+"?$rid=1", 0, 0, "{bad")
	c.nextTwinAnswer()
	e.bus.Disconnect(id, "test")
	c.expectClosed("disconnect")
	_, sig, _ := strings.Cut(token, "sig=")
	sig, _, _ = strings.Cut(sig, "&")
	logs := e.logs.String()
	for _, secret := range []string{sig, key, "SharedAccessSignature"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
}

// TestHubClientThatStopsReadingIsDropped: a device that stops reading
// while fewer pushes than its outbox holds are pending (so the outbox never
// overflows) must not hold its connection and a blocked writer for ever:
// after the write timeout the server closes it.
func TestHubClientThatStopsReadingIsDropped(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.WriteTimeout = 300 * time.Millisecond })
	const id = "deaf-dev"
	c := e.mustHubConnectRaw(t, id, e.hubDevice(t, id, false))
	c.subscribe(3, desiredFilter, 0)
	if tcp, ok := c.conn.NetConn().(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4 << 10) // a small window, filled sooner
	}
	// 16 MiB in 16 pushes: more than the socket buffers hold, fewer
	// messages than the outbox.
	blob := strings.Repeat("x", 1<<20)
	for version := range int64(16) {
		e.bus.DesiredChanged(id, "", map[string]any{"blob": blob}, version+2)
	}
	deadline := time.Now().Add(15 * time.Second)
	for e.bus.Connected(id, "") {
		if time.Now().After(deadline) {
			t.Fatal("a client that stopped reading is still connected 15 s later")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
