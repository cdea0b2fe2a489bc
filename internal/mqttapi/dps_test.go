package mqttapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/sas"
)

func TestRegisterAndPoll(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name        string
		group       bool
		register    string // payload; %s is the registration ID
		qos         byte
		wantPayload any // registrationState.payload; nil when absent
	}{
		{"ok/individual enrollment, Node body with payload", false, `{"registrationId":"%s","payload":{"modelId":"dtmi:example;1","extra":42}}`, 1,
			map[string]any{"modelId": "dtmi:example;1", "extra": float64(42)}},
		{"ok/group device with derived key", true, `{"registrationId":"%s"}`, 1, nil},
		{"ok/empty payload, registration ID from CONNECT", false, ``, 1, nil},
		{"ok/payload null without registrationId", false, `{"payload":null}`, 1, nil},
		{"ok/QoS 0 requests", false, `{"registrationId":"%s"}`, 0, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			regID := fmt.Sprintf("mqtt-dev-%d", i)
			var key string
			if tt.group {
				groupKey := e.enrollGroup(t, fmt.Sprintf("group-%d", i))
				var err error
				if key, err = sas.DeriveDeviceKey(groupKey, regID); err != nil {
					t.Fatal(err)
				}
			} else {
				key = e.enrollDevice(t, regID, dps.Enabled)
			}
			d := e.mustConnect(t, regID, key)
			payload := tt.register
			if strings.Contains(payload, "%s") {
				payload = fmt.Sprintf(payload, regID)
			}
			rid := fmt.Sprintf("bc18573f-2455-4b34-9397-%012d", i)
			d.publish(t, registerTopic(rid), tt.qos, payload)
			a := d.nextAnswer(t)
			if a.status != 202 || a.rid != rid {
				t.Fatalf("register answer: status %d rid %q, want 202 %q (%v)", a.status, a.rid, rid, a.body)
			}
			if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 {
				t.Errorf("retry-after = %q, want a positive integer", a.retryAfter)
			}
			opID := str(a.body, "operationId")
			if got := str(a.body, "status"); got != "assigning" || opID == "" {
				t.Fatalf("register answer = %v, want status assigning with an operationId", a.body)
			}
			if got := str(a.body, "registrationState", "registrationId"); got != regID {
				t.Errorf("registrationState.registrationId = %q, want %q", got, regID)
			}

			poll := rid + "-poll"
			d.publish(t, pollTopic(poll, opID), tt.qos, " ")
			p := d.nextAnswer(t)
			if p.status != 200 || p.rid != poll || p.retryAfter != "" {
				t.Fatalf("poll answer: status %d rid %q retry-after %q, want 200 %q none (%v)", p.status, p.rid, p.retryAfter, poll, p.body)
			}
			state, _ := p.body["registrationState"].(map[string]any)
			if str(p.body, "status") != "assigned" || state["assignedHub"] != hubHost || state["deviceId"] != regID {
				t.Errorf("poll answer = %v, want assigned to %s as %s", p.body, hubHost, regID)
			}
			if diff := cmp.Diff(tt.wantPayload, state["payload"]); diff != "" {
				t.Errorf("registrationState.payload (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConnectRefused(t *testing.T) {
	e := newEnv(t)
	const regID = "refused-dev"
	key := e.enrollDevice(t, regID, dps.Enabled)
	hour := time.Now().Add(time.Hour)
	good := e.token(t, e.idScope, regID, key, hour)
	tests := []struct {
		name               string
		clientID, username string
		password           string
		want               byte
		wantLog            string
	}{
		{"0/C SDK username", regID, e.username(regID), good, 0, ""},
		{"0/Node username with encoded ClientVersion", regID, e.idScope + "/registrations/" + regID + "/api-version=2019-03-31&ClientVersion=azure-iot-provisioning-device%2F1.9.1", good, 0, ""},
		{"0/embedded username without ClientVersion", regID, e.idScope + "/registrations/" + regID + "/api-version=2019-03-31", good, 0, ""},
		{"0/client ID differs only in case", strings.ToUpper(regID), e.username(regID), good, 0, ""},
		{"5/username of no known shape", regID, "just-a-name", good, 5, ""},
		{"5/username without api-version", regID, e.idScope + "/registrations/" + regID + "/ClientVersion=1.15.0", good, 5, ""},
		{"5/hub username with a DPS token", regID, hubHost + "/" + regID + "/?api-version=2021-04-12", good, 5, ""},
		{"2/client ID is not the registration ID", "other-dev", e.username(regID), good, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, rc := e.connect(t, tt.clientID, tt.username, tt.password); rc != tt.want {
				t.Errorf("CONNACK = %d, want %d", rc, tt.want)
			}
			if tt.wantLog != "" && !strings.Contains(e.logs.String(), tt.wantLog) {
				t.Errorf("the log does not say %q", tt.wantLog)
			}
		})
	}
}

// TestBadCredentialsAnswered401 checks Azure's behaviour (dps-protocol.md
// §4.1): the CONNECT is accepted and the register request is answered with
// a 401 on the response topic; no hub device appears.
func TestBadCredentialsAnswered401(t *testing.T) {
	e := newEnv(t)
	const regID = "refused-dev"
	key := e.enrollDevice(t, regID, dps.Enabled)
	otherKey := e.enrollDevice(t, "other-dev", dps.Enabled)
	wrongKey := e.enrollDevice(t, "spare-dev", dps.Enabled)
	hour := time.Now().Add(time.Hour)
	tests := []struct {
		name     string
		username string
		password string
	}{
		{"401/wrong key", e.username(regID), e.token(t, e.idScope, regID, wrongKey, hour)},
		{"401/expired token", e.username(regID), e.token(t, e.idScope, regID, key, time.Now().Add(-time.Hour))},
		{"401/token for another registration ID", e.username(regID), e.token(t, e.idScope, "other-dev", otherKey, hour)},
		{"401/unknown ID scope", "0ne00FFFFFF/registrations/" + regID + "/api-version=2021-06-01", e.token(t, "0ne00FFFFFF", regID, key, hour)},
		{"401/no password", e.username(regID), ""},
		{"401/password is not a SAS token", e.username(regID), "hunter2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, rc := e.connect(t, regID, tt.username, tt.password)
			if rc != 0 {
				t.Fatalf("CONNACK = %d, want 0 (Azure reports bad credentials on the response topic)", rc)
			}
			d.subscribe(t, dpsResponseFilter, 1)
			d.publish(t, registerTopic("7"), 1, `{"registrationId":"`+regID+`"}`)
			a := d.nextAnswer(t)
			if a.status != 401 || a.rid != "7" || a.body["errorCode"] != float64(401002) {
				t.Fatalf("register answer %d rid %q %v, want 401 with errorCode 401002", a.status, a.rid, a.body)
			}
			if _, err := e.db.Device(context.Background(), regID); err == nil {
				t.Errorf("a refused registration created a hub device")
			}
		})
	}
}

func TestDisabledEnrollmentPollsDisabled(t *testing.T) {
	e := newEnv(t)
	const regID = "disabled-dev"
	d := e.mustConnect(t, regID, e.enrollDevice(t, regID, dps.Disabled))
	d.publish(t, registerTopic("1"), 1, `{"registrationId":"`+regID+`"}`)
	a := d.nextAnswer(t)
	if a.status != 202 || str(a.body, "status") != "assigning" {
		t.Fatalf("register answer %d %v, want 202 assigning", a.status, a.body)
	}
	d.publish(t, pollTopic("2", str(a.body, "operationId")), 1, " ")
	p := d.nextAnswer(t)
	if p.status != 200 || str(p.body, "status") != "disabled" || str(p.body, "registrationState", "status") != "disabled" {
		t.Errorf("poll answer %d %v, want 200 disabled", p.status, p.body)
	}
}

func TestRequestErrors(t *testing.T) {
	e := newEnv(t)
	const regID = "errors-dev"
	d := e.mustConnect(t, regID, e.enrollDevice(t, regID, dps.Enabled))
	tests := []struct {
		name     string
		topic    string
		payload  string
		wantRID  string
		status   int
		wantCode float64
	}{
		{"400/register payload is not JSON", registerTopic("1"), `{not json`, "1", 400, 400001},
		{"400/registrationId in the payload is another device's", registerTopic("2"), `{"registrationId":"someone-else"}`, "2", 400, 400004},
		{"400/TPM attestation", registerTopic("3"), `{"registrationId":"` + regID + `","tpm":{"endorsementKey":"AA"}}`, "3", 400, 400008},
		{"413/payload over 96 KiB", registerTopic("4"), `{"payload":{"x":"` + strings.Repeat("a", MaxPayloadBytes) + `"}}`, "4", 413, 413001},
		{"404/unknown operation", pollTopic("5", "4.0000000000000000.00000000-0000-0000-0000-000000000000"), " ", "5", 404, 404201},
		{"400/poll without operationId", dpsPollTopic + "$rid=6", " ", "6", 400, 400004},
		{"400/register without $rid", dpsRegisterTopic + "rid=7", "", "", 400, 400004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.publish(t, tt.topic, 1, tt.payload)
			a := d.nextAnswer(t)
			if a.status != tt.status || a.rid != tt.wantRID || a.retryAfter != "" {
				t.Fatalf("answer: status %d rid %q retry-after %q, want %d %q none", a.status, a.rid, a.retryAfter, tt.status, tt.wantRID)
			}
			if a.body["errorCode"] != tt.wantCode || str(a.body, "trackingId") == "" || str(a.body, "timestampUtc") == "" || str(a.body, "message") == "" {
				t.Errorf("error body = %v, want errorCode %v with trackingId, timestampUtc and message", a.body, tt.wantCode)
			}
		})
	}
}

func TestTokenThatNoLongerVerifiesAnswers401(t *testing.T) {
	e := newEnv(t)
	const regID = "expiring-dev"
	d := e.mustConnect(t, regID, e.enrollDevice(t, regID, dps.Enabled))
	e.clock.advance(2 * time.Hour) // the CONNECT token expired since
	d.publish(t, registerTopic("1"), 1, "")
	if a := d.nextAnswer(t); a.status != 401 || a.body["errorCode"] != float64(401002) {
		t.Errorf("register answer %d %v, want 401 with errorCode 401002", a.status, a.body)
	}
}

// roundTrips registers n times and polls each, returning the rids of every
// answer received.
func (d *device) roundTrips(prefix string, n int) ([]string, error) {
	var rids []string
	next := func() (answer, error) {
		select {
		case m := <-d.msgs:
			var a answer
			_, query, _ := strings.Cut(m.Topic(), "/?$rid=")
			a.rid, _, _ = strings.Cut(query, "&")
			status, _, _ := strings.Cut(strings.TrimPrefix(m.Topic(), dpsResponseTopic), "/")
			a.status, _ = strconv.Atoi(status)
			rids = append(rids, a.rid)
			return a, json.Unmarshal(m.Payload(), &a.body)
		case <-time.After(15 * time.Second):
			return answer{}, errors.New("no answer within 15s")
		}
	}
	for i := range n {
		rid := fmt.Sprintf("%s-%d", prefix, i)
		if tok := d.c.Publish(registerTopic(rid), 1, false, ""); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return rids, fmt.Errorf("publish: %v", tok.Error())
		}
		a, err := next()
		if err != nil {
			return rids, err
		}
		if a.status != 202 {
			return rids, fmt.Errorf("register %s answered %d", rid, a.status)
		}
		op, _ := a.body["operationId"].(string)
		if tok := d.c.Publish(pollTopic(rid+"-poll", op), 1, false, " "); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return rids, fmt.Errorf("publish: %v", tok.Error())
		}
		if _, err := next(); err != nil {
			return rids, err
		}
	}
	return rids, nil
}

func TestAnswersReachOnlyTheAskingConnection(t *testing.T) {
	e := newEnv(t)
	devs := map[string]*device{}
	for _, id := range []string{"talker-a", "talker-b"} {
		devs[id] = e.mustConnect(t, id, e.enrollDevice(t, id, dps.Enabled))
	}
	const rounds = 5
	type result struct {
		id   string
		rids []string
		err  error
	}
	results := make(chan result, len(devs))
	for id, d := range devs {
		go func() {
			rids, err := d.roundTrips(id, rounds)
			results <- result{id, rids, err}
		}()
	}
	for range devs {
		r := <-results
		if r.err != nil {
			t.Errorf("%s: %v", r.id, r.err)
		}
		if len(r.rids) != 2*rounds {
			t.Errorf("%s received %d answers, want %d", r.id, len(r.rids), 2*rounds)
		}
		for _, rid := range r.rids {
			if !strings.HasPrefix(rid, r.id+"-") {
				t.Errorf("%s received an answer for $rid %q", r.id, rid)
			}
		}
	}
	for id, d := range devs {
		select {
		case m := <-d.msgs:
			t.Errorf("%s received a stray message on %s", id, m.Topic())
		default:
		}
	}
}

func TestACL(t *testing.T) {
	e := newEnv(t)
	a := e.mustConnect(t, "acl-a", e.enrollDevice(t, "acl-a", dps.Enabled))
	b := e.mustConnect(t, "acl-b", e.enrollDevice(t, "acl-b", dps.Enabled))

	t.Run("subscribe", func(t *testing.T) {
		tests := []struct {
			name   string
			filter string
			qos    byte
			want   byte
		}{
			{"0x80/everything", "#", 0, 0x80},
			{"0x80/all DPS topics", "$dps/#", 1, 0x80},
			{"0x80/request topics", "$dps/registrations/PUT/#", 1, 0x80},
			{"0x80/one status only", "$dps/registrations/res/202/#", 1, 0x80},
			{"0x80/hub twin answers", "$iothub/twin/res/#", 1, 0x80},
			{"1/answers at QoS 1", dpsResponseFilter, 1, 1},
			{"1/answers asked at QoS 2", dpsResponseFilter, 2, 1},
			{"0/answers at QoS 0", dpsResponseFilter, 0, 0},
		}
		const id = "acl-s"
		c := e.dialRaw(t)
		if rc := c.connect(id, e.username(id), e.token(t, e.idScope, id, e.enrollDevice(t, id, dps.Enabled), time.Now().Add(time.Hour)), 30); rc != 0 {
			t.Fatalf("CONNACK = %d", rc)
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := c.subscribe(uint16(i+1), tt.filter, tt.qos); len(got) != 1 || got[0] != tt.want {
					t.Errorf("SUBACK = %x, want [%x]", got, tt.want)
				}
			})
		}
	})

	t.Run("QoS 0 publishes to other topics are delivered to no one", func(t *testing.T) {
		for _, topic := range []string{dpsResponseTopic + "202/?$rid=forged", "$iothub/twin/GET/?$rid=forged", "devices/acl-a/messages/events/", "$dps/registrations/PUT/other/?$rid=forged"} {
			a.publish(t, topic, 0, `{"forged":true}`)
		}
		for name, d := range map[string]*device{"acl-a": a, "acl-b": b} {
			d.publish(t, registerTopic(name), 1, "")
			if got := d.nextAnswer(t); got.rid != name || got.status != 202 {
				t.Errorf("%s: answer %d for $rid %q, want 202 for %q", name, got.status, got.rid, name)
			}
			select {
			case m := <-d.msgs:
				t.Errorf("%s received %s", name, m.Topic())
			default:
			}
		}
	})

	t.Run("a QoS 1 publish to another topic closes the connection", func(t *testing.T) {
		const id = "acl-c"
		c := e.dialRaw(t)
		if rc := c.connect(id, e.username(id), e.token(t, e.idScope, id, e.enrollDevice(t, id, dps.Enabled), time.Now().Add(time.Hour)), 30); rc != 0 {
			t.Fatalf("CONNACK = %d", rc)
		}
		c.publish("devices/"+id+"/messages/events/", 1, 9, "{}")
		for {
			pk, err := c.read(10*time.Second, 4)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("the connection stayed open")
				}
				break
			}
			if pk.FixedHeader.Type == packets.Puback {
				t.Fatal("the refused publish was acknowledged")
			}
		}
	})
}

// TestCSDKStyle replays the C SDK's registration (wire/c-sdk-dps-mqtt-register.md):
// keepalive 0 and no PINGREQ, QoS 0 requests, integer $rid, the
// registration JSON as the poll payload, QoS 1 answers acknowledged.
func TestCSDKStyle(t *testing.T) {
	e := newEnv(t)
	const regID = "cap-c-mqtt-01"
	key := e.enrollDevice(t, regID, dps.Enabled)
	c := e.dialRaw(t)
	if rc := c.connect(regID, e.username(regID), e.token(t, e.idScope, regID, key, time.Now().Add(40*time.Minute)), 0); rc != 0 {
		t.Fatalf("CONNACK = %d, want 0", rc)
	}
	if got := c.subscribe(1, dpsResponseFilter, 1); !cmp.Equal(got, []byte{1}) {
		t.Fatalf("SUBACK = %v, want [1]", got)
	}
	body := `{"registrationId":"` + regID + `"}`
	c.publish(registerTopic("1"), 0, 0, body)
	pk := c.mustRead(packets.Publish)
	if want := dpsResponseTopic + "202/?$rid=1&retry-after=1"; pk.TopicName != want || pk.FixedHeader.Qos != 1 || pk.PacketID == 0 {
		t.Fatalf("answer %q QoS %d id %d, want %q QoS 1 with a packet ID", pk.TopicName, pk.FixedHeader.Qos, pk.PacketID, want)
	}
	c.puback(pk.PacketID)
	a := parseAnswer(t, pk.TopicName, pk.Payload)

	t.Run("idle with keepalive 0 is never dropped", func(t *testing.T) {
		_, err := c.read(2*time.Second, 4)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("idle read = %v, want a timeout with the connection open", err)
		}
	})

	c.publish(pollTopic("2", str(a.body, "operationId")), 0, 0, body)
	pk = c.mustRead(packets.Publish)
	if want := dpsResponseTopic + "200/?$rid=2"; pk.TopicName != want || pk.FixedHeader.Qos != 1 {
		t.Fatalf("answer %q QoS %d, want %q QoS 1", pk.TopicName, pk.FixedHeader.Qos, want)
	}
	c.puback(pk.PacketID)
	p := parseAnswer(t, pk.TopicName, pk.Payload)
	if str(p.body, "status") != "assigned" || str(p.body, "registrationState", "deviceId") != regID {
		t.Errorf("poll answer = %v, want assigned", p.body)
	}

	t.Run("keepalive 1 without pings is dropped", func(t *testing.T) {
		const id = "keepalive-dev"
		k := e.dialRaw(t)
		if rc := k.connect(id, e.username(id), e.token(t, e.idScope, id, e.enrollDevice(t, id, dps.Enabled), time.Now().Add(time.Hour)), 1); rc != 0 {
			t.Fatalf("CONNACK = %d", rc)
		}
		_, err := k.read(5*time.Second, 4)
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("idle read = %v, want the connection closed", err)
		}
	})
}

func TestQoS1RequestIsAcknowledgedBeforeTheAnswer(t *testing.T) {
	e := newEnv(t)
	const regID = "order-dev"
	c := e.dialRaw(t)
	if rc := c.connect(regID, e.username(regID), e.token(t, e.idScope, regID, e.enrollDevice(t, regID, dps.Enabled), time.Now().Add(time.Hour)), 60); rc != 0 {
		t.Fatalf("CONNACK = %d", rc)
	}
	c.subscribe(1, dpsResponseFilter, 0)
	c.publish(registerTopic("7"), 1, 7, "")
	if ack := c.mustRead(packets.Puback); ack.PacketID != 7 {
		t.Errorf("PUBACK for %d, want 7", ack.PacketID)
	}
	pk := c.mustRead(packets.Publish)
	if pk.FixedHeader.Qos != 0 || !strings.HasPrefix(pk.TopicName, dpsResponseTopic+"202/?$rid=7&") {
		t.Errorf("answer %q at QoS %d, want res/202 for $rid 7 at the subscription's QoS 0", pk.TopicName, pk.FixedHeader.Qos)
	}
}

func TestConnectionsClosed(t *testing.T) {
	e := newEnv(t)
	const regID = "closed-dev"
	token := e.token(t, e.idScope, regID, e.enrollDevice(t, regID, dps.Enabled), time.Now().Add(time.Hour))

	t.Run("QoS 2 publish", func(t *testing.T) {
		c := e.dialRaw(t)
		if rc := c.connect(regID, e.username(regID), token, 60); rc != 0 {
			t.Fatalf("CONNACK = %d", rc)
		}
		c.publish(registerTopic("1"), 2, 1, "")
		if pk, err := c.read(10*time.Second, 4); err == nil {
			t.Errorf("read %+v, want the connection closed", pk.FixedHeader)
		}
	})

	t.Run("MQTT 5 CONNECT refused with 0x84", func(t *testing.T) {
		c := e.dialRaw(t)
		c.write(packets.Packet{ProtocolVersion: 5, FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: regID,
			UsernameFlag: true, Username: []byte(e.username(regID)), PasswordFlag: true, Password: []byte(token),
		}})
		pk, err := c.read(10*time.Second, 5)
		if err != nil || pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != packets.ErrUnsupportedProtocolVersion.Code {
			t.Errorf("got %+v (%v), want CONNACK 0x84", pk, err)
		}
	})

	t.Run("MQTT 3.1 CONNECT refused with 1", func(t *testing.T) {
		c := e.dialRaw(t)
		c.write(packets.Packet{ProtocolVersion: 3, FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
			ProtocolName: []byte("MQIsdp"), Clean: true, Keepalive: 60, ClientIdentifier: regID,
			UsernameFlag: true, Username: []byte(e.username(regID)), PasswordFlag: true, Password: []byte(token),
		}})
		pk, err := c.read(10*time.Second, 3)
		if err != nil || pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 1 {
			t.Errorf("got %+v (%v), want CONNACK 1", pk, err)
		}
	})
}

// TestCleanSessionFalseResumesNothing: Python connects with clean session
// false; DPS keeps no sessions, so a reconnect finds none.
func TestCleanSessionFalseResumesNothing(t *testing.T) {
	e := newEnv(t)
	const regID = "python-dev"
	key := e.enrollDevice(t, regID, dps.Enabled)
	persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false) }
	token := e.token(t, e.idScope, regID, key, time.Now().Add(time.Hour))
	d, rc := e.connect(t, regID, e.username(regID), token, persistent)
	if rc != 0 {
		t.Fatalf("CONNACK = %d", rc)
	}
	d.subscribe(t, dpsResponseFilter, 1)
	d.c.Disconnect(100)
	c := e.dialRaw(t)
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: false, Keepalive: 60, ClientIdentifier: regID,
		UsernameFlag: true, Username: []byte(e.username(regID)), PasswordFlag: true, Password: []byte(token),
	}})
	if ack := c.mustRead(packets.Connack); ack.ReasonCode != 0 || ack.SessionPresent {
		t.Errorf("CONNACK code %d session present %v, want 0 and no session", ack.ReasonCode, ack.SessionPresent)
	}
}

func TestLogsCarryNoCredentials(t *testing.T) {
	e := newEnv(t)
	const regID = "secret-dev"
	key := e.enrollDevice(t, regID, dps.Enabled)
	token := e.token(t, e.idScope, regID, key, time.Now().Add(time.Hour))
	e.connect(t, regID, e.username(regID), e.token(t, e.idScope, regID, e.enrollDevice(t, "secret-other", dps.Enabled), time.Now().Add(time.Hour)))
	d := e.mustConnect(t, regID, key)
	d.publish(t, registerTopic("1"), 1, "{bad json")
	d.nextAnswer(t)
	d.publish(t, registerTopic("2"), 1, "")
	d.nextAnswer(t)
	d.c.Disconnect(100)
	_, sig, _ := strings.Cut(token, "sig=")
	sig, _, _ = strings.Cut(sig, "&")
	logs := e.logs.String()
	for _, secret := range []string{sig, key, "SharedAccessSignature"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	if !strings.Contains(logs, "MQTT session started") {
		t.Error("the log has no session lines; is the logger wired?")
	}
}
