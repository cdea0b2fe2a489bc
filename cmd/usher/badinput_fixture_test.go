package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/sas"
)

// badHub is the built-in hub's host name in the bad-input test.
const badHub = "hub.usher.test"

// badTimeouts are the server's connection timeouts in the bad-input test:
// short, so the slow-loris cases take seconds.
var badTimeouts = timeouts{readHeader: 2 * time.Second, idle: 2 * time.Second, body: 2 * time.Second, mqttConnect: 2 * time.Second}

// badFixture is the server the bad-input table runs against and the
// records its cases aim at: two provisioned devices (good-dev, other-dev)
// with their hub identities and twins, an enrollment group, and a reader
// policy.
type badFixture struct {
	s      *testServer
	stderr *lockedBuffer
	db     *sql.DB // the server's database, opened read-only
	client *http.Client
	roots  *x509.CertPool
	base   string // https://host:port of the HTTPS listener

	scope       string
	dpsOwnerKey string
	hubOwnerKey string
	goodKey     string // good-dev's individual enrollment key
	otherKey    string // other-dev's
	groupKey    string // good-group's
	readerKey   string // the reader policy's (EnrollmentRead only)
}

// startServerWith is startServer with the given connection timeouts. It
// runs the serve command itself, since run builds its own env.
func startServerWith(t *testing.T, to timeouts, extra ...string) (*testServer, *lockedBuffer) {
	t.Helper()
	return startServerEnv(t, env{timeouts: to}, extra...)
}

// startServerEnv is startServer with the test hooks of e (timeouts,
// hangup); its streams and environment are filled in here.
func startServerEnv(t *testing.T, e env, extra ...string) (*testServer, *lockedBuffer) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &lockedBuffer{}
	e.getenv, e.stdin, e.stdout, e.stderr = noEnv, strings.NewReader(""), pw, stderr
	cmd := serveCommand(&e)
	cmd.SetArgs(append([]string{"--data-dir", dir, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, extra...))
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetOut(io.Discard)
	cmd.SetErr(stderr)
	done := make(chan error, 1)
	go func() {
		err := cmd.ExecuteContext(ctx)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("usher serve ended with %v; stderr:\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Errorf("usher serve did not stop within 15s of its context ending")
		}
	})
	banner, err := readBanner(pr)
	if err != nil {
		t.Fatalf("usher serve did not start: %v; stderr:\n%s", err, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	loc := storeLocation{Kind: storeSQLite, DataDir: dir}
	info, err := readStoreInfo(context.Background(), loc)
	if err != nil {
		t.Fatalf("usher info: %v", err)
	}
	return &testServer{DataDir: dir, Store: loc, Info: info, Banner: banner}, stderr
}

func newBadFixture(t *testing.T) *badFixture {
	t.Helper()
	s, stderr := startServerWith(t, badTimeouts, "--hub-hostname", badHub)
	f := &badFixture{s: s, stderr: stderr, scope: s.Info.IDScope, base: "https://" + s.Info.HTTPSAddr}
	pem, err := os.ReadFile(s.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	f.roots = x509.NewCertPool()
	f.roots.AppendCertsFromPEM(pem)
	// No keep-alive: every request's connection is closed when it is
	// answered, so the goroutine count settles between cases.
	f.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: f.tlsConfig(), DisableKeepAlives: true}}
	for _, cs := range []struct {
		conn string
		key  *string
	}{{s.Info.ServiceConnectionString, &f.dpsOwnerKey}, {s.Info.HubConnectionString, &f.hubOwnerKey}} {
		c, err := sas.ParseConnectionString(cs.conn)
		if err != nil {
			t.Fatal(err)
		}
		*cs.key = c.SharedAccessKey
	}
	f.goodKey = provisionDevice(t, s, "good-dev", "--initial-twin-tags", `{"site":"a"}`)
	f.otherKey = provisionDevice(t, s, "other-dev")
	f.groupKey = createdKey(t, s, "enrollment-group", "create", "--group-id", "good-group")
	f.readerKey = mustDecode[policyView](t, s.mustUsher(t, "policy", "create", "reader", "--rights", "EnrollmentRead")).PrimaryKey

	f.db, err = sql.Open("sqlite", "file:"+filepath.Join(s.DataDir, dbFile)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	return f
}

func (f *badFixture) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: f.roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// Tokens. Each signs with a key the server knows unless its name says
// otherwise.

func (f *badFixture) dpsOwnerToken(t *testing.T) string {
	return mustSign(t, "localhost", "provisioningserviceowner", f.dpsOwnerKey, time.Now().Add(time.Hour))
}

func (f *badFixture) hubOwnerToken(t *testing.T) string {
	return mustSign(t, badHub, "iothubowner", f.hubOwnerKey, time.Now().Add(time.Hour))
}

// deviceToken is a DPS registration token for id signed with key.
func (f *badFixture) deviceToken(t *testing.T, id, key string) string {
	return mustSign(t, url.QueryEscape(f.scope+"/registrations/"+id), "registration", key, time.Now().Add(time.Hour))
}

// hubDeviceToken is a hub device token for id signed with key.
func (f *badFixture) hubDeviceToken(t *testing.T, id, key string, expiry time.Time) string {
	return mustSign(t, url.QueryEscape(badHub+"/devices/"+id), "", key, expiry)
}

func mustSign(t *testing.T, resource, keyName, key string, expiry time.Time) string {
	t.Helper()
	tok, err := sas.SignKey(resource, keyName, key, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// without removes one field from a SAS token.
func without(tok, field string) string {
	rest := strings.TrimPrefix(tok, "SharedAccessSignature ")
	var keep []string
	for _, p := range strings.Split(rest, "&") {
		if !strings.HasPrefix(p, field+"=") {
			keep = append(keep, p)
		}
	}
	return "SharedAccessSignature " + strings.Join(keep, "&")
}

// replaced sets one field of a SAS token to value, unsigned.
func replaced(tok, field, value string) string {
	return without(tok, field) + "&" + field + "=" + value
}

// reply is an HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// outcome renders an answer as the table states it: the status and, for an
// error, the Azure error code (DPS's six-digit errorCode or IoT Hub's
// iothub-errorcode name), checked against the header that carries it.
func (r reply) outcome(t *testing.T) string {
	t.Helper()
	if r.status < 400 {
		return fmt.Sprint(r.status)
	}
	var e struct {
		ErrorCode int
		Message   string
	}
	if json.Unmarshal(r.body, &e) != nil {
		return fmt.Sprint(r.status) // not Azure's: net/http's own answers (431)
	}
	if e.ErrorCode != 0 {
		if h := r.header.Get("x-ms-error-code"); h != fmt.Sprint(e.ErrorCode) {
			t.Errorf("x-ms-error-code %q, body errorCode %d", h, e.ErrorCode)
		}
		return fmt.Sprintf("%d %d", r.status, e.ErrorCode)
	}
	name := r.header.Get("iothub-errorcode")
	if !strings.HasPrefix(e.Message, "ErrorCode:"+name+";") {
		t.Errorf("iothub-errorcode %q, body message %q", name, e.Message)
	}
	return fmt.Sprintf("%d %s", r.status, name)
}

// do sends one request with the client; path may contain {scope}.
func (f *badFixture) do(t *testing.T, method, path string, header map[string]string, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+strings.ReplaceAll(path, "{scope}", f.scope), rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return reply{status: res.StatusCode, header: res.Header, body: b}
}

// dialTLS opens a TLS connection to the HTTPS listener.
func (f *badFixture) dialTLS(t *testing.T) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", f.s.Info.HTTPSAddr, f.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawExchange writes a request by hand on a new TLS connection, then calls
// send to write the rest (nil: nothing), and reads the answer. The writes run
// beside the read, since the server may answer and close before it has
// read everything.
func (f *badFixture) rawExchange(t *testing.T, head string, send func(c *tls.Conn)) string {
	t.Helper()
	c := f.dialTLS(t)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := io.WriteString(c, head); err != nil {
			return // the server answered early and closed
		}
		if send != nil {
			send(c)
		}
	}()
	defer func() { c.Close(); <-wrote }()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "closed: " + err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, header: res.Header, body: b}.outcome(t)
}

// slowBody sends a request's headers at once (with auth as Authorization
// unless it is "") and then a 100-byte body one byte a second, and reports
// whether the server closed the connection before the body was complete.
func (f *badFixture) slowBody(t *testing.T, method, path, auth string) string {
	t.Helper()
	c := f.dialTLS(t)
	head := method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
	if auth != "" {
		head += "Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for range 100 {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			if _, err := c.Write([]byte{' '}); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-wrote }()
	return closedByTimeout(c, badTimeouts.body)
}

// closedByTimeout waits up to 30 s for the server to close c (a read that
// ends with EOF or a reset rather than our own deadline) and returns
// "closed" when it did so no sooner than half of timeout, the server's
// timeout that should close it; "open" when it did not close it.
func closedByTimeout(c net.Conn, timeout time.Duration) string {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(30 * time.Second))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return "open"
		}
		if took := time.Since(start); took < timeout/2 {
			return fmt.Sprintf("closed after %v, before the %v timeout", took, timeout)
		}
		return "closed"
	}
}

// snapshot is a digest of every table that holds records: its row count
// and a hash of its rows in key order.
type snapshot map[string]string

// snapshotTables are the tables the digest covers: everything but the
// schema version and the instance settings.
var snapshotTables = []string{"policies", "enrollments", "enrollment_groups", "registrations", "operations",
	"hub_devices", "hub_modules", "hub_twins", "hub_configurations", "hub_device_deployments", "hub_messages"}

func (f *badFixture) snapshot(t *testing.T) snapshot {
	t.Helper()
	out := snapshot{}
	for _, table := range snapshotTables {
		rows, err := f.db.Query(`SELECT * FROM ` + table + ` ORDER BY 1, 2`)
		if err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		h := sha256.New()
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%q\n", vals)
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		out[table] = fmt.Sprintf("%d rows %s", n, hex.EncodeToString(h.Sum(nil))[:12])
	}
	return out
}

// settledGoroutines waits until the goroutine count has not changed for a
// second and returns it.
func settledGoroutines() int {
	last, since := runtime.NumGoroutine(), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if n := runtime.NumGoroutine(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= time.Second {
			break
		}
	}
	return last
}

// goroutinesBackTo waits up to 30 s for the goroutine count to come back to
// at most want and returns the last count seen.
func goroutinesBackTo(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(30 * time.Second); n > want && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// nested is n levels of {"a":…} around 1.
func nested(n int) string {
	return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
}
