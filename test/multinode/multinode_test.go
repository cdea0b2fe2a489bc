//go:build linux

// Package multinode starts two `usher serve --store postgres` nodes on one
// PostgreSQL schema, with one secrets key, and checks what issue 6 asks of several nodes: a device
// registers on one node and polls on the other; one device registering on
// both at once ends as one device; desired updates, direct methods and
// disconnects made through one node reach a device connected to the other;
// a device connected to one node is Connected on the other (GET and query)
// until it leaves or its node dies;
// and a node killed mid-burst loses no acknowledged registration while its
// devices retry on the other node.
package multinode

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
	"github.com/usher-iot/usher/internal/syncbuf"
)

// hostName is the one name clients use for every node.
const hostName = "hub.usher.test"

// node is one running `usher serve`.
type node struct {
	cmd       *exec.Cmd
	httpsAddr string
	mqttAddr  string
	caFile    string
	stderr    *lockedBuffer
}

// lockedBuffer collects output one goroutine writes while another reads it.
type lockedBuffer = syncbuf.Buffer

// cluster is what the tests share: the binary, the database and the
// installation's identity.
type cluster struct {
	bin, pgURL string
	env        []string // USHER_SECRETS_KEY for every node and CLI call
	idScope    string
	serviceCS  string
	hubCS      string
	groupKey   string
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "usher")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/usher")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

var listening = regexp.MustCompile(`^\s*(HTTPS|MQTT):.*\(listening on ([^)]+)\)`)

// start runs a node and waits for its banner.
func start(t *testing.T, bin, pgURL string, env []string) (*node, error) {
	n := &node{stderr: &lockedBuffer{}}
	n.cmd = exec.Command(bin, "serve", "--store", "postgres", "--postgres-url", pgURL, "--data-dir", t.TempDir(),
		"--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--hostname", hostName, "--hub-hostname", hostName)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	n.cmd.Env = env
	n.cmd.Stderr = n.stderr
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		_ = n.cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if m := listening.FindStringSubmatch(line); m != nil {
			if m[1] == "HTTPS" {
				n.httpsAddr = m[2]
			} else {
				n.mqttAddr = m[2]
			}
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "CA file:"); ok {
			n.caFile = strings.TrimSpace(v)
		}
		if strings.Contains(line, "SharedAccessKeyName=") {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return n, nil
		}
	}
	return nil, fmt.Errorf("usher serve did not start:\n%s", n.stderr.String())
}

// startTwo starts nodes A and B at once on one fresh schema.
func startTwo(t *testing.T) (*cluster, *node, *node) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	c := &cluster{bin: build(t), pgURL: pgtest.SchemaURL(t)}
	c.env = append(os.Environ(), "USHER_SECRETS_KEY="+base64.StdEncoding.EncodeToString(key))
	var a, b *node
	var errA, errB error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a, errA = start(t, c.bin, c.pgURL, c.env) }()
	go func() { defer wg.Done(); b, errB = start(t, c.bin, c.pgURL, c.env) }()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("starting two nodes at once: A: %v; B: %v", errA, errB)
	}
	var in struct {
		IDScope                 string `json:"idScope"`
		ServiceConnectionString string `json:"serviceConnectionString"`
		HubConnectionString     string `json:"hubConnectionString"`
	}
	if err := json.Unmarshal(c.usher(t, "info", "--json"), &in); err != nil {
		t.Fatal(err)
	}
	c.idScope, c.serviceCS, c.hubCS = in.IDScope, in.ServiceConnectionString, in.HubConnectionString
	var group struct {
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	if err := json.Unmarshal(c.usher(t, "enrollment-group", "create", "--group-id", "fleet", "--show-keys"), &group); err != nil {
		t.Fatal(err)
	}
	c.groupKey = group.Attestation.SymmetricKey.PrimaryKey
	return c, a, b
}

func (c *cluster) usher(t *testing.T, args ...string) []byte {
	t.Helper()
	args = append(args, "--store", "postgres", "--postgres-url", c.pgURL)
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("usher %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func (c *cluster) deviceKey(t *testing.T, id string) string {
	t.Helper()
	key, err := sas.DeriveDeviceKey(c.groupKey, id)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// client trusts n's CA and checks the one host name every node answers to.
func (n *node) client(t *testing.T) *http.Client {
	t.Helper()
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: n.tlsConfig(t)}}
}

func (n *node) tlsConfig(t *testing.T) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(n.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, ServerName: hostName}
}

type operation struct {
	OperationID       string `json:"operationId"`
	Status            string `json:"status"`
	RegistrationState struct {
		DeviceID    string `json:"deviceId"`
		AssignedHub string `json:"assignedHub"`
	} `json:"registrationState"`
}

// registerPut sends the registration request to n.
func (c *cluster) registerPut(ctx context.Context, cl *http.Client, n *node, id, key string) (operation, error) {
	var op operation
	err := c.dps(ctx, cl, n, "PUT", id, "/register", key, `{"registrationId":"`+id+`"}`, &op)
	return op, err
}

// poll asks n for an operation until it is no longer "assigning".
func (c *cluster) poll(ctx context.Context, cl *http.Client, n *node, id, key, opID string) (operation, error) {
	for {
		var op operation
		if err := c.dps(ctx, cl, n, "GET", id, "/operations/"+opID, key, "", &op); err != nil {
			return op, err
		}
		if op.Status != "assigning" {
			return op, nil
		}
		select {
		case <-ctx.Done():
			return op, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *cluster) register(ctx context.Context, cl *http.Client, n *node, id, key string) (operation, error) {
	op, err := c.registerPut(ctx, cl, n, id, key)
	if err != nil || op.Status == "assigned" {
		return op, err
	}
	return c.poll(ctx, cl, n, id, key, op.OperationID)
}

func (c *cluster) dps(ctx context.Context, cl *http.Client, n *node, method, id, path, key, body string, v any) error {
	tok, err := sas.SignKey(c.idScope+"/registrations/"+id, "registration", key, time.Now().Add(time.Hour))
	if err != nil {
		return err
	}
	return do(ctx, cl, method, "https://"+n.httpsAddr+"/"+c.idScope+"/registrations/"+id+path+"?api-version=2019-03-31", tok, body, nil, v)
}

// hub calls the hub service API of n with the iothubowner policy.
func (c *cluster) hub(t *testing.T, cl *http.Client, n *node, method, path, body string, header http.Header, v any) {
	t.Helper()
	cs, err := sas.ParseConnectionString(c.hubCS)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.SignKey(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := do(context.Background(), cl, method, "https://"+n.httpsAddr+path+"?api-version=2021-04-12", tok, body, header, v); err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, n.httpsAddr, err)
	}
}

func do(ctx context.Context, cl *http.Client, method, u, tok, body string, header http.Header, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	if v == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// connectDevice connects a device to n's MQTT listener as the hub.
func connectDevice(t *testing.T, n *node, id, key string, lost chan<- error) paho.Client {
	t.Helper()
	tok, err := sas.SignKey(url.QueryEscape(hostName+"/devices/"+id), "", key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	opts := paho.NewClientOptions().AddBroker("tls://" + n.mqttAddr).SetClientID(id).
		SetUsername(hostName + "/" + id + "/?api-version=2021-04-12").SetPassword(tok).
		SetTLSConfig(n.tlsConfig(t)).SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			if lost != nil {
				lost <- err
			}
		})
	cl := paho.NewClient(opts)
	if tk := cl.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("device connect: %v", tk.Error())
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	return cl
}

func subscribe(t *testing.T, cl paho.Client, topic string, h paho.MessageHandler) {
	t.Helper()
	if tk := cl.Subscribe(topic, 0, h); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tk.Error())
	}
}

func TestTwoNodesShareOneInstallation(t *testing.T) {
	c, a, b := startTwo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	clA, clB := a.client(t), b.client(t)

	t.Run("ok/one certificate serves both nodes", func(t *testing.T) {
		var leaves [][]byte
		for _, n := range []*node{a, b} {
			conn, err := tls.Dial("tcp", n.httpsAddr, a.tlsConfig(t))
			if err != nil {
				t.Fatalf("TLS to %s with A's CA and name %s: %v", n.httpsAddr, hostName, err)
			}
			leaves = append(leaves, conn.ConnectionState().PeerCertificates[0].Raw)
			conn.Close()
		}
		if !bytes.Equal(leaves[0], leaves[1]) {
			t.Errorf("the nodes serve different certificates")
		}
	})

	t.Run("ok/a dump holds no keys", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, c.pgURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var groups, meta string
		if err := conn.QueryRow(ctx, `SELECT string_agg(body, ' ') FROM enrollment_groups`).Scan(&groups); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT string_agg(value, ' ') FROM meta WHERE key IN ('tls_ca', 'tls_server')`).Scan(&meta); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(groups, c.groupKey) {
			t.Errorf("the database holds the group key in clear")
		}
		if f := strings.Fields(meta); len(f) != 2 || !strings.HasPrefix(f[0], "usher-sealed:") || !strings.HasPrefix(f[1], "usher-sealed:") {
			t.Errorf("the TLS material is not sealed: %.80q", meta)
		}
	})

	t.Run("ok/register on A, poll on B", func(t *testing.T) {
		id := "split-poll"
		key := c.deviceKey(t, id)
		op, err := c.registerPut(ctx, clA, a, id, key)
		if err != nil {
			t.Fatalf("register on A: %v", err)
		}
		got, err := c.poll(ctx, clB, b, id, key, op.OperationID)
		if err != nil || got.Status != "assigned" || got.RegistrationState.DeviceID != id {
			t.Fatalf("poll on B = %+v, %v; want assigned %s", got, err, id)
		}
	})

	t.Run("ok/same device on both nodes at once is one device", func(t *testing.T) {
		for i := range 5 {
			id := fmt.Sprintf("twice-%d", i)
			key := c.deviceKey(t, id)
			var wg sync.WaitGroup
			ops := make([]operation, 2)
			errs := make([]error, 2)
			for j, n := range []*node{a, b} {
				cl := []*http.Client{clA, clB}[j]
				wg.Add(1)
				go func() {
					defer wg.Done()
					ops[j], errs[j] = c.register(ctx, cl, n, id, key)
				}()
			}
			wg.Wait()
			for j := range ops {
				if errs[j] != nil || ops[j].Status != "assigned" || ops[j].RegistrationState.DeviceID != id {
					t.Errorf("%s on node %d = %+v, %v; want assigned", id, j, ops[j], errs[j])
				}
			}
			var devices []map[string]any
			c.hub(t, clB, b, "POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE deviceId = '`+id+`'"}`, nil, &devices)
			if len(devices) != 1 {
				t.Errorf("%s: %d hub devices, want 1", id, len(devices))
			}
			var rec map[string]any
			cs, _ := sas.ParseConnectionString(c.serviceCS)
			tok, _ := sas.SignKey(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
			if err := do(ctx, clA, "GET", "https://"+a.httpsAddr+"/registrations/"+id+"?api-version=2021-10-01", tok, "", nil, &rec); err != nil || rec["deviceId"] != id {
				t.Errorf("%s: registration record %v, %v", id, rec, err)
			}
		}
	})

	// One device registered and connected to A; the service talks to B.
	id := "on-a"
	key := c.deviceKey(t, id)
	if op, err := c.register(ctx, clA, a, id, key); err != nil || op.Status != "assigned" {
		t.Fatalf("register %s: %+v, %v", id, op, err)
	}
	lost := make(chan error, 1)
	dev := connectDevice(t, a, id, key, lost)

	t.Run("ok/desired update through B reaches the device on A", func(t *testing.T) {
		got := make(chan []byte, 4)
		subscribe(t, dev, "$iothub/twin/PATCH/properties/desired/#", func(_ paho.Client, m paho.Message) { got <- m.Payload() })
		c.hub(t, clB, b, "PATCH", "/twins/"+id, `{"properties":{"desired":{"color":"blue"}}}`, nil, nil)
		select {
		case p := <-got:
			var patch map[string]any
			if err := json.Unmarshal(p, &patch); err != nil || patch["color"] != "blue" {
				t.Errorf("desired push = %s, want color blue", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the desired update made through B did not reach the device on A")
		}
	})

	t.Run("ok/direct method through B reaches the device on A", func(t *testing.T) {
		subscribe(t, dev, "$iothub/methods/POST/#", func(cl paho.Client, m paho.Message) {
			rid := m.Topic()[strings.Index(m.Topic(), "$rid=")+len("$rid="):]
			cl.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, `{"echo":`+string(m.Payload())+`}`)
		})
		var res struct {
			Status  int             `json:"status"`
			Payload json.RawMessage `json:"payload"`
		}
		c.hub(t, clB, b, "POST", "/twins/"+id+"/methods", `{"methodName":"ping","payload":{"n":1},"responseTimeoutInSeconds":10}`, nil, &res)
		if res.Status != 200 || string(res.Payload) != `{"echo":{"n":1}}` {
			t.Errorf("method through B = %d %s, want 200 {\"echo\":{\"n\":1}}", res.Status, res.Payload)
		}
	})

	t.Run("ok/the device on A is Connected on B", func(t *testing.T) {
		dev := c.waitConnectionState(t, clB, b, id, "Connected", 10*time.Second)
		if dev.ConnectionStateUpdatedTime == neverTime || dev.LastActivityTime == neverTime {
			t.Errorf("GET /devices/%s on B = %+v; want connection and activity times", id, dev)
		}
		var twin connectionView
		c.hub(t, clB, b, "GET", "/twins/"+id, "", nil, &twin)
		if twin.ConnectionState != "Connected" {
			t.Errorf("GET /twins/%s on B: connectionState %q", id, twin.ConnectionState)
		}
		if got := c.connectedOn(t, clB, b); !slices.Contains(got, id) {
			t.Errorf("query on B for connected devices = %v; want %s among them", got, id)
		}
	})

	t.Run("ok/a device that disconnects from A is Disconnected on B", func(t *testing.T) {
		other := "brief-on-a"
		key := c.deviceKey(t, other)
		if op, err := c.register(ctx, clA, a, other, key); err != nil || op.Status != "assigned" {
			t.Fatalf("register %s: %+v, %v", other, op, err)
		}
		cl := connectDevice(t, a, other, key, nil)
		c.waitConnectionState(t, clB, b, other, "Connected", 10*time.Second)
		cl.Disconnect(0)
		c.waitConnectionState(t, clB, b, other, "Disconnected", 10*time.Second)
		if got := c.connectedOn(t, clB, b); slices.Contains(got, other) {
			t.Errorf("query on B for connected devices = %v; %s has left", got, other)
		}
	})

	t.Run("ok/deleting the device through B disconnects it from A", func(t *testing.T) {
		c.hub(t, clB, b, "DELETE", "/devices/"+id, "", http.Header{"If-Match": {"*"}}, nil)
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatal("the device on A stayed connected after its deletion through B")
		}
	})
}

func TestSIGKILLOfOneNodeLosesNothingAcknowledged(t *testing.T) {
	c, a, b := startTwo(t)
	clA, clB := a.client(t), b.client(t)
	// A device connected to A, seen from B until A dies.
	present := "present-on-a"
	if op, err := c.register(context.Background(), clA, a, present, c.deviceKey(t, present)); err != nil || op.Status != "assigned" {
		t.Fatalf("register %s: %+v, %v", present, op, err)
	}
	connectDevice(t, a, present, c.deviceKey(t, present), nil)
	c.waitConnectionState(t, clB, b, present, "Connected", 10*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var acked, failed []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 500; i++ {
				id := fmt.Sprintf("burst-%d-%d", w, i)
				op, err := c.register(ctx, clA, a, id, c.deviceKey(t, id))
				mu.Lock()
				ok := err == nil && op.Status == "assigned"
				if ok {
					acked = append(acked, id)
				} else {
					failed = append(failed, id)
				}
				mu.Unlock()
				if !ok {
					return // the device would retry elsewhere; checked below
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Each worker stops at its first failure: the request the kill cut.
	wg.Wait()
	cancel()
	if len(acked) < 20 {
		t.Fatalf("only %d registrations acknowledged before the kill", len(acked))
	}

	cs, err := sas.ParseConnectionString(c.serviceCS)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := sas.SignKey(cs.HostName, cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	bg := context.Background()
	for _, id := range acked {
		var rec map[string]any
		if err := do(bg, clB, "GET", "https://"+b.httpsAddr+"/registrations/"+id+"?api-version=2021-10-01", tok, "", nil, &rec); err != nil || rec["status"] != "assigned" {
			t.Errorf("acknowledged registration %s lost with node A: %v, %v", id, rec, err)
		}
	}
	for _, id := range append(failed, acked[:5]...) {
		if op, err := c.register(bg, clB, b, id, c.deviceKey(t, id)); err != nil || op.Status != "assigned" {
			t.Errorf("%s retrying on B: %+v, %v", id, op, err)
		}
	}
	t.Logf("%d acknowledged registrations survived SIGKILL of A; %d interrupted devices retried on B", len(acked), len(failed))

	// The presence TTL is 10 s after A's last heartbeat (every 3 s).
	c.waitConnectionState(t, clB, b, present, "Disconnected", 15*time.Second-time.Since(killed))
	if got := c.connectedOn(t, clB, b); slices.Contains(got, present) {
		t.Errorf("query on B for connected devices = %v; %s died with A", got, present)
	}
	t.Logf("%s shown Disconnected on B %s after SIGKILL of A", present, time.Since(killed).Round(100*time.Millisecond))
}

// neverTime is how IoT Hub renders "never".
const neverTime = "0001-01-01T00:00:00Z"

// connectionView is the connection part of device and twin JSON.
type connectionView struct {
	DeviceID                   string `json:"deviceId"`
	ConnectionState            string `json:"connectionState"`
	ConnectionStateUpdatedTime string `json:"connectionStateUpdatedTime"`
	LastActivityTime           string `json:"lastActivityTime"`
}

// waitConnectionState asks n for the device until its connectionState is
// want, for at most within.
func (c *cluster) waitConnectionState(t *testing.T, cl *http.Client, n *node, id, want string, within time.Duration) connectionView {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var dev connectionView
		c.hub(t, cl, n, "GET", "/devices/"+id, "", nil, &dev)
		if dev.ConnectionState == want {
			return dev
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /devices/%s on %s: connectionState %q, want %q within %s", id, n.httpsAddr, dev.ConnectionState, want, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// connectedOn asks n for the devices a query finds connected.
func (c *cluster) connectedOn(t *testing.T, cl *http.Client, n *node) []string {
	t.Helper()
	var devices []connectionView
	c.hub(t, cl, n, "POST", "/devices/query", `{"query":"SELECT * FROM devices WHERE connectionState = 'Connected'"}`, nil, &devices)
	ids := make([]string, len(devices))
	for i, d := range devices {
		if d.ConnectionState != "Connected" {
			t.Errorf("query for connected devices answered %+v", d)
		}
		ids[i] = d.DeviceID
	}
	return ids
}
