package deviceclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/pki"
)

// reply is a PUBLISH the fake broker sends back.
type reply struct {
	topic, payload string
}

// fakeBroker is a scripted MQTT 3.1.1 server over TLS on 127.0.0.1:0 that
// plays DPS: it answers CONNECT with returnCode, grants subscriptions at
// QoS 1, PUBACKs QoS 1 publishes and answers each publish with what answer
// returns. It records the CONNECT and the publishes.
type fakeBroker struct {
	ln         net.Listener
	ca         *x509.CertPool
	returnCode byte
	answer     func(topic string, payload []byte) []reply
	wg         sync.WaitGroup

	mu        sync.Mutex
	connect   *packets.ConnectPacket
	subs      []string
	subQoS    []byte
	published []reply
	qos       []byte
}

func newFakeBroker(t *testing.T, returnCode byte, answer func(topic string, payload []byte) []reply) *fakeBroker {
	t.Helper()
	m, err := pki.Ensure(filepath.Join(t.TempDir(), "tls"), []string{"localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(m.CertFile, m.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(m.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{ln: ln, ca: pool, returnCode: returnCode, answer: answer}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(func() {
		ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *fakeBroker) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer c.Close()
			b.serve(c)
		}()
	}
}

// serve runs one client connection until it disconnects.
func (b *fakeBroker) serve(c net.Conn) {
	r := bufio.NewReader(c)
	var next uint16
	for {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		p, err := packets.ReadPacket(r)
		if err != nil {
			return
		}
		switch p := p.(type) {
		case *packets.ConnectPacket:
			b.mu.Lock()
			b.connect = p
			b.mu.Unlock()
			ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
			ack.ReturnCode = b.returnCode
			if ack.Write(c) != nil || b.returnCode != packets.Accepted {
				return
			}
		case *packets.SubscribePacket:
			b.mu.Lock()
			b.subs = append(b.subs, p.Topics...)
			b.subQoS = append(b.subQoS, p.Qoss...)
			b.mu.Unlock()
			ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			ack.MessageID = p.MessageID
			for range p.Topics {
				ack.ReturnCodes = append(ack.ReturnCodes, 1)
			}
			if ack.Write(c) != nil {
				return
			}
		case *packets.PublishPacket:
			b.mu.Lock()
			b.published = append(b.published, reply{p.TopicName, string(p.Payload)})
			b.qos = append(b.qos, p.Qos)
			b.mu.Unlock()
			if p.Qos == 1 {
				ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
				ack.MessageID = p.MessageID
				if ack.Write(c) != nil {
					return
				}
			}
			for _, rp := range b.answer(p.TopicName, p.Payload) {
				next++
				pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
				pub.TopicName, pub.Payload, pub.Qos, pub.MessageID = rp.topic, []byte(rp.payload), 1, next
				if pub.Write(c) != nil {
					return
				}
			}
		case *packets.PingreqPacket:
			if packets.NewControlPacket(packets.Pingresp).Write(c) != nil {
				return
			}
		case *packets.DisconnectPacket:
			return
		}
	}
}

func (b *fakeBroker) options(regID string) Options {
	return Options{
		Endpoint: b.ln.Addr().String(), ServerName: "localhost", IDScope: testScope, RegistrationID: regID, Key: testKey,
		Transport: MQTT, RootCAs: b.ca, MaxPollInterval: fast,
	}
}

// rid returns the $rid of a request topic.
func rid(topic string) string {
	_, q, _ := strings.Cut(topic, "?")
	for kv := range strings.SplitSeq(q, "&") {
		if v, ok := strings.CutPrefix(kv, "$rid="); ok {
			return v
		}
	}
	return ""
}

// dpsScript answers register with steps[0], and each later publish with
// the next step, echoing the request's $rid.
func dpsScript(steps ...step) func(string, []byte) []reply {
	var mu sync.Mutex
	return func(topic string, _ []byte) []reply {
		mu.Lock()
		defer mu.Unlock()
		if len(steps) == 0 {
			return nil
		}
		s := steps[0]
		steps = steps[1:]
		t := "$dps/registrations/res/" + strconv.Itoa(s.status) + "/?$rid=" + rid(topic)
		if s.retryAfter != "" {
			t += "&retry-after=" + s.retryAfter
		}
		return []reply{{t, s.body}}
	}
}

func TestRegisterMQTT(t *testing.T) {
	tests := []struct {
		name       string
		answer     func(string, []byte) []reply
		wantStatus string
		wantErr    string
	}{
		{"ok/202 then assigned", dpsScript(step{202, "1", assigning(testOp)}, step{200, "", assignedBody("dev1")}), "assigned", ""},
		{"ok/429 then 202 then assigned", dpsScript(step{429, "1", `{"errorCode":429001}`}, step{202, "1", assigning(testOp)}, step{200, "", assignedBody("dev1")}), "assigned", ""},
		{"ok/answers to other requests are skipped", func(topic string, payload []byte) []reply {
			r := dpsScript(step{202, "1", assigning(testOp)})
			if strings.Contains(topic, "iotdps-get-operationstatus") {
				return []reply{
					{"$dps/registrations/res/200/?$rid=999", `{"operationId":"x","status":"failed"}`},
					{"$dps/registrations/res/200/?$rid=" + rid(topic), assignedBody("dev1")},
				}
			}
			return r(topic, payload)
		}, "assigned", ""},
		{"401/error on the response topic", dpsScript(step{401, "", `{"errorCode":401002,"message":"the device could not be authenticated"}`}), "", "status 401: the device could not be authenticated"},
		{"disabled/poll answers disabled", dpsScript(step{202, "1", assigning(testOp)}, step{200, "", `{"operationId":"o","status":"disabled","registrationState":{"registrationId":"dev1","status":"disabled"}}`}), "disabled", "is disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newFakeBroker(t, packets.Accepted, tt.answer)
			res, err := Register(context.Background(), b.options("dev1"))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Register: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Register error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if res.Status != tt.wantStatus {
				t.Errorf("status %q, want %q", res.Status, tt.wantStatus)
			}
		})
	}
}

// TestRegisterMQTTWire checks the CONNECT, the subscription and the two
// publishes.
func TestRegisterMQTTWire(t *testing.T) {
	b := newFakeBroker(t, packets.Accepted, dpsScript(step{202, "1", assigning(testOp)}, step{200, "", assignedBody("dev1")}))
	opts := b.options("dev1")
	opts.Payload = []byte(`{"a":1}`)
	if _, err := Register(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.connect
	if c == nil {
		t.Fatal("no CONNECT seen")
	}
	got := []any{c.ProtocolVersion, c.CleanSession, c.ClientIdentifier, c.Username}
	want := []any{byte(4), true, "dev1", testScope + "/registrations/dev1/api-version=2019-03-31&ClientVersion=usher-deviceclient"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CONNECT (-want +got):\n%s", diff)
	}
	checkToken(t, string(c.Password), testScope+"/registrations/dev1", testKey)
	if diff := cmp.Diff([]string{"$dps/registrations/res/#"}, b.subs); diff != "" {
		t.Errorf("subscriptions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]byte{1}, b.subQoS); diff != "" {
		t.Errorf("subscription QoS (-want +got):\n%s", diff)
	}
	wantPubs := []reply{
		{"$dps/registrations/PUT/iotdps-register/?$rid=1", `{"registrationId":"dev1","payload":{"a":1}}`},
		{"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=" + testOp, ""},
	}
	if diff := cmp.Diff(wantPubs, b.published, cmp.AllowUnexported(reply{})); diff != "" {
		t.Errorf("publishes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]byte{1, 1}, b.qos); diff != "" {
		t.Errorf("publish QoS (-want +got):\n%s", diff)
	}
}

func TestRegisterMQTTRefused(t *testing.T) {
	b := newFakeBroker(t, packets.ErrRefusedNotAuthorised, nil)
	_, err := Register(context.Background(), b.options("dev1"))
	var refused *ConnectionRefusedError
	if !errors.As(err, &refused) || refused.ReturnCode != 5 {
		t.Fatalf("Register error = %v (%T), want a ConnectionRefusedError with return code 5", err, err)
	}
	if !strings.Contains(err.Error(), "not authorized") {
		t.Errorf("error %q does not say \"not authorized\"", err)
	}
}

func TestParseResponseTopic(t *testing.T) {
	tests := []struct {
		topic  string
		status int
		params map[string]string
		ok     bool
	}{
		{"$dps/registrations/res/202/?$rid=1&retry-after=3", 202, map[string]string{"$rid": "1", "retry-after": "3"}, true},
		{"$dps/registrations/res/200/?$rid=bc18573f-2455", 200, map[string]string{"$rid": "bc18573f-2455"}, true},
		{"$dps/registrations/res/429/?$rid=7&retry-after=1&$rid=8", 429, map[string]string{"$rid": "7", "retry-after": "1"}, true},
		{"$dps/registrations/res/abc/?$rid=1", 0, nil, false},
		{"$dps/registrations/res/200", 0, nil, false},
		{"$iothub/twin/res/200/?$rid=1", 0, nil, false},
	}
	for _, tt := range tests {
		status, params, ok := parseResponseTopic(tt.topic)
		if status != tt.status || ok != tt.ok || !cmp.Equal(params, tt.params) {
			t.Errorf("parseResponseTopic(%q) = %d, %v, %v; want %d, %v, %v", tt.topic, status, params, ok, tt.status, tt.params, tt.ok)
		}
	}
}
