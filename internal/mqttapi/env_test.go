package mqttapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/hubassign"
	"github.com/usher-iot/usher/internal/instance"
	"github.com/usher-iot/usher/internal/pki"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

const hubHost = "hub.usher.test"

// testEnv is the MQTT server on a real TLS socket over a real SQLite store,
// registering devices into the real built-in hub.
type testEnv struct {
	addr    string
	pool    *x509.CertPool
	idScope string
	enroll  *dps.Service
	srv     *Server
	clock   *clock
	logs    *logSink
	db      *sqlite.DB
	hub     *hub.Service
	bus     *hub.Bus
}

// clock is the registrar's time; tests move it forward to expire tokens.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// newEnv starts a server with Serve; opts adjust its options.
func newEnv(t *testing.T, opts ...func(*Options)) *testEnv {
	t.Helper()
	e, ln := newUnstartedEnv(t, opts...)
	e.start(t, func(ctx context.Context) error { return e.srv.Serve(ctx, ln) })
	return e
}

// newUnstartedEnv returns an environment and the listener to serve it on.
func newUnstartedEnv(t *testing.T, opts ...func(*Options)) (*testEnv, net.Listener) {
	t.Helper()
	ctx := context.Background()
	logs := newLogSink(t)
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	idScope, err := instance.Bootstrap(ctx, db, db)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pki.Ensure(filepath.Join(dir, "tls"), nil, time.Now())
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
	clk := &clock{}
	bus := hub.NewBus()
	hubSvc := hub.NewService(db, hub.Options{HostName: hubHost, Bus: bus})
	reg := dps.NewRegistrar(db, dps.RegistrarOptions{IDScope: idScope, Hubs: dps.SingleHub{Hub: hubassign.Hub{Service: hubSvc}}, Now: clk.now})
	o := Options{
		TLS:       &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}},
		Registrar: reg,
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hub:       hubSvc,
		Bus:       bus,
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{addr: ln.Addr().String(), pool: pool, idScope: idScope, enroll: dps.NewService(db, dps.Options{}), srv: srv, clock: clk, logs: logs, db: db,
		hub: hubSvc, bus: bus}, ln
}

// start runs serve until the test ends, and checks that it returns nil once
// its context is cancelled.
func (e *testEnv) start(t *testing.T, serve func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve = %v, want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
}

// logSink keeps the server's log (at debug level) for assertions and
// echoes it to the test log until the test ends.
type logSink struct {
	t    *testing.T
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func newLogSink(t *testing.T) *logSink {
	s := &logSink{t: t}
	t.Cleanup(func() { // registered first, so it runs last
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
	})
	return s
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.buf.Write(p)
		s.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// enrollDevice creates an individual symmetric-key enrollment and returns
// its primary key.
func (e *testEnv) enrollDevice(t *testing.T, regID string, status dps.ProvisioningStatus) string {
	t.Helper()
	en, err := e.enroll.PutEnrollment(context.Background(), dps.Enrollment{RegistrationID: regID,
		Settings: dps.Settings{Attestation: dps.Attestation{Type: dps.SymmetricKey}, ProvisioningStatus: status}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return en.Attestation.PrimaryKey
}

// enrollGroup creates a symmetric-key enrollment group and returns its
// primary key.
func (e *testEnv) enrollGroup(t *testing.T, groupID string) string {
	t.Helper()
	g, err := e.enroll.PutGroup(context.Background(), dps.Group{ID: groupID,
		Settings: dps.Settings{Attestation: dps.Attestation{Type: dps.SymmetricKey}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	return g.Attestation.PrimaryKey
}

// token signs a device SAS token the way the C SDK does: sr percent-encoded
// with lowercase hex, skn=registration.
func (e *testEnv) token(t *testing.T, scope, regID, key string, expiry time.Time) string {
	t.Helper()
	sr := strings.ReplaceAll(scope+"/registrations/"+regID, "/", "%2f")
	tok, err := sas.SignKey(sr, "registration", key, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// username is the C SDK's CONNECT username (wire/c-sdk-dps-mqtt-register.md).
func (e *testEnv) username(regID string) string {
	return e.idScope + "/registrations/" + regID + "/api-version=2021-06-01&ClientVersion=1.15.0"
}

func (e *testEnv) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: e.pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// device is a paho client with its received messages.
type device struct {
	c    paho.Client
	msgs chan paho.Message
}

// connect connects a paho client (MQTT 3.1.1, no reconnects) and returns
// the CONNACK return code; the client is nil when it was refused.
func (e *testEnv) connect(t *testing.T, clientID, username, password string, opts ...func(*paho.ClientOptions)) (*device, byte) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tls://" + e.addr).SetClientID(clientID).SetUsername(username).SetPassword(password).
		SetTLSConfig(e.tlsConfig()).SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second)
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatal("CONNECT timed out")
	}
	rc := tok.(*paho.ConnectToken).ReturnCode()
	if tok.Error() != nil {
		if rc == 0 {
			t.Fatalf("CONNECT failed without a return code: %v", tok.Error())
		}
		return nil, rc
	}
	d := &device{c: c, msgs: make(chan paho.Message, 64)}
	t.Cleanup(func() { c.Disconnect(0) })
	return d, rc
}

// mustConnect connects and subscribes to the DPS answers at QoS 1.
func (e *testEnv) mustConnect(t *testing.T, regID, key string) *device {
	t.Helper()
	d, rc := e.connect(t, regID, e.username(regID), e.token(t, e.idScope, regID, key, time.Now().Add(time.Hour)))
	if rc != 0 {
		t.Fatalf("CONNACK = %d, want 0", rc)
	}
	d.subscribe(t, dpsResponseFilter, 1)
	return d
}

// subscribe subscribes and returns the granted code.
func (d *device) subscribe(t *testing.T, filter string, qos byte) byte {
	t.Helper()
	tok := d.c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { d.msgs <- m })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("SUBSCRIBE %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func (d *device) publish(t *testing.T, topic string, qos byte, payload string) {
	t.Helper()
	tok := d.c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("PUBLISH %s: %v", topic, tok.Error())
	}
}

// next waits for the next message.
func (d *device) next(t *testing.T) paho.Message {
	t.Helper()
	select {
	case m := <-d.msgs:
		return m
	case <-time.After(15 * time.Second):
		t.Fatal("no answer within 15s")
		return nil
	}
}

// answer is a DPS answer with its topic parsed.
type answer struct {
	status     int
	rid        string
	retryAfter string // "" when absent
	body       map[string]any
}

// parseAnswer checks the answer topic's shape ($rid first) and decodes it.
func parseAnswer(t *testing.T, topic string, payload []byte) answer {
	t.Helper()
	rest, ok := strings.CutPrefix(topic, dpsResponseTopic)
	if !ok {
		t.Fatalf("answer topic %q does not start with %q", topic, dpsResponseTopic)
	}
	statusText, query, ok := strings.Cut(rest, "/?")
	if !ok || !strings.HasPrefix(query, "$rid=") {
		t.Fatalf("answer topic %q does not have $rid first after /?", topic)
	}
	var a answer
	var err error
	if a.status, err = strconv.Atoi(statusText); err != nil {
		t.Fatalf("answer topic %q: status %q", topic, statusText)
	}
	for _, pair := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		switch k {
		case "$rid":
			a.rid = v
		case "retry-after":
			a.retryAfter = v
		default:
			t.Errorf("answer topic %q has an unexpected parameter %q", topic, k)
		}
	}
	if err := json.Unmarshal(payload, &a.body); err != nil {
		t.Fatalf("answer payload is not a JSON object: %v\n%s", err, payload)
	}
	return a
}

func (d *device) nextAnswer(t *testing.T) answer {
	t.Helper()
	m := d.next(t)
	return parseAnswer(t, m.Topic(), m.Payload())
}

func registerTopic(rid string) string { return dpsRegisterTopic + "$rid=" + rid }

func pollTopic(rid, opID string) string {
	return dpsPollTopic + "$rid=" + rid + "&operationId=" + opID
}

// str reads a string at a path of object keys.
func str(v any, path ...string) string {
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// rawClient speaks MQTT packet by packet, for what paho does not let a test
// do or see (keepalive 0 idling, QoS 0 requests with integer $rid as the C
// SDK sends them, packet order, refused protocol versions).
type rawClient struct {
	t    *testing.T
	conn *tls.Conn
	r    *bufio.Reader
}

func (e *testEnv) dialRaw(t *testing.T) *rawClient {
	t.Helper()
	conn, err := tls.Dial("tcp", e.addr, e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *rawClient) write(pk packets.Packet) {
	c.t.Helper()
	if pk.ProtocolVersion == 0 {
		pk.ProtocolVersion = 4
	}
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		c.t.Fatalf("rawClient cannot write packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// read reads the next packet, waiting at most d. It returns an error for a
// timeout or a closed connection.
func (c *rawClient) read(d time.Duration, version byte) (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	b, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: version}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// mustRead reads the next packet and checks its type.
func (c *rawClient) mustRead(typ byte) packets.Packet {
	c.t.Helper()
	pk, err := c.read(15*time.Second, 4)
	if err != nil {
		c.t.Fatalf("reading packet type %d: %v", typ, err)
	}
	if pk.FixedHeader.Type != typ {
		c.t.Fatalf("got packet type %d, want %d (%+v)", pk.FixedHeader.Type, typ, pk)
	}
	return pk
}

// connect sends CONNECT as the C SDK does (clean session, no will) with
// the given keepalive and returns the CONNACK code.
func (c *rawClient) connect(clientID, username, password string, keepalive uint16) byte {
	c.t.Helper()
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: keepalive, ClientIdentifier: clientID,
		UsernameFlag: true, Username: []byte(username), PasswordFlag: true, Password: []byte(password),
	}})
	return c.mustRead(packets.Connack).ReasonCode
}

func (c *rawClient) subscribe(id uint16, filter string, qos byte) []byte {
	c.t.Helper()
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}})
	ack := c.mustRead(packets.Suback)
	if ack.PacketID != id {
		c.t.Fatalf("SUBACK packet ID %d, want %d", ack.PacketID, id)
	}
	return ack.ReasonCodes
}

func (c *rawClient) publish(topic string, qos byte, id uint16, payload string) {
	c.t.Helper()
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, PacketID: id, Payload: []byte(payload)})
}

func (c *rawClient) puback(id uint16) {
	c.t.Helper()
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
}
