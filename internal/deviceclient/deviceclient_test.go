package deviceclient

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

const (
	testScope = "0ne00000A0A"
	testKey   = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY=" // 32 bytes
	testOp    = "5.316aac5bdc130deb.b1e02da8-c3a0-4ff2-a121-7ea7a6b7f550"
	// fast keeps the waits between requests short.
	fast = 10 * time.Millisecond
)

// step is one scripted answer of the fake DPS.
type step struct {
	status     int
	retryAfter string
	body       string
}

// seenRequest is what the fake DPS recorded of a request.
type seenRequest struct {
	method, escapedPath, apiVersion, auth, contentType, userAgent, host, body string
}

// fakeDPS is an httptest TLS server answering requests with a script, one
// step per request in order, and recording what it got.
type fakeDPS struct {
	srv   *httptest.Server
	conns atomic.Int32
	mu    sync.Mutex
	steps []step
	seen  []seenRequest
}

func newFakeDPS(t *testing.T, steps ...step) *fakeDPS {
	t.Helper()
	f := &fakeDPS{steps: steps}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDPS) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.seen = append(f.seen, seenRequest{
		method: r.Method, escapedPath: r.URL.EscapedPath(), apiVersion: r.URL.Query().Get("api-version"),
		auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type"),
		userAgent: r.Header.Get("User-Agent"), host: r.Host, body: string(b),
	})
	if len(f.steps) == 0 {
		f.mu.Unlock()
		http.Error(w, "script exhausted", http.StatusTeapot)
		return
	}
	s := f.steps[0]
	f.steps = f.steps[1:]
	f.mu.Unlock()
	if s.retryAfter != "" {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-request-id", "req-1")
	w.WriteHeader(s.status)
	io.WriteString(w, s.body)
}

func (f *fakeDPS) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

// options returns Options that reach f and trust its certificate.
func (f *fakeDPS) options(regID string) Options {
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	return Options{
		Endpoint: f.srv.Listener.Addr().String(), IDScope: testScope, RegistrationID: regID, Key: testKey,
		RootCAs: pool, MaxPollInterval: fast,
	}
}

func assigning(op string) string {
	return `{"operationId":"` + op + `","status":"assigning"}`
}

func assignedBody(regID string) string {
	return `{"operationId":"` + testOp + `","status":"assigned","registrationState":{"registrationId":"` + regID +
		`","assignedHub":"hub.usher.test","deviceId":"` + regID + `","status":"assigned","substatus":"initialAssignment","payload":{"hello":"world"}}}`
}

func TestRegisterHTTPS(t *testing.T) {
	failedBody := `{"operationId":"` + testOp + `","status":"failed","registrationState":{"registrationId":"dev1","status":"failed","errorCode":400208,"errorMessage":"no IoT hub is available for this device"}}`
	disabledBody := `{"operationId":"` + testOp + `","status":"disabled","registrationState":{"registrationId":"dev1","status":"disabled"}}`
	tests := []struct {
		name      string
		steps     []step
		want      Result // compared without Raw
		wantErr   error  // compared with cmp on the typed error; nil for success
		wantErrIs string // substring of a plain error
		wantReqs  int
	}{
		{
			name:     "ok/202 then assigned",
			steps:    []step{{202, "1", assigning(testOp)}, {200, "", assignedBody("dev1")}},
			want:     Result{Status: "assigned", AssignedHub: "hub.usher.test", DeviceID: "dev1", RegistrationID: "dev1", Substatus: "initialAssignment", Payload: json.RawMessage(`{"hello":"world"}`), OperationID: testOp},
			wantReqs: 2,
		},
		{
			name:     "ok/429 then 202 then assigned",
			steps:    []step{{429, "1", `{"errorCode":429001,"message":"slow down"}`}, {202, "1", assigning(testOp)}, {200, "", assignedBody("dev1")}},
			want:     Result{Status: "assigned", AssignedHub: "hub.usher.test", DeviceID: "dev1", RegistrationID: "dev1", Substatus: "initialAssignment", Payload: json.RawMessage(`{"hello":"world"}`), OperationID: testOp},
			wantReqs: 3,
		},
		{
			name:     "ok/503 on poll retried, poll still assigning",
			steps:    []step{{202, "", assigning(testOp)}, {503, "x", `{}`}, {202, "3", assigning(testOp)}, {200, "", assignedBody("dev1")}},
			want:     Result{Status: "assigned", AssignedHub: "hub.usher.test", DeviceID: "dev1", RegistrationID: "dev1", Substatus: "initialAssignment", Payload: json.RawMessage(`{"hello":"world"}`), OperationID: testOp},
			wantReqs: 4,
		},
		{
			name:     "ok/PUT answered 200 assigned at once",
			steps:    []step{{200, "", assignedBody("dev1")}},
			want:     Result{Status: "assigned", AssignedHub: "hub.usher.test", DeviceID: "dev1", RegistrationID: "dev1", Substatus: "initialAssignment", Payload: json.RawMessage(`{"hello":"world"}`), OperationID: testOp},
			wantReqs: 1,
		},
		{
			name:     "failed/hub not available",
			steps:    []step{{202, "1", assigning(testOp)}, {200, "", failedBody}},
			want:     Result{Status: "failed", RegistrationID: "dev1", ErrorCode: 400208, ErrorMessage: "no IoT hub is available for this device", OperationID: testOp},
			wantErr:  &RegistrationError{RegistrationID: "dev1", Status: "failed", ErrorCode: 400208, Message: "no IoT hub is available for this device"},
			wantReqs: 2,
		},
		{
			name:     "disabled/enrollment disabled",
			steps:    []step{{202, "1", assigning(testOp)}, {200, "", disabledBody}},
			want:     Result{Status: "disabled", RegistrationID: "dev1", OperationID: testOp},
			wantErr:  &RegistrationError{RegistrationID: "dev1", Status: "disabled"},
			wantReqs: 2,
		},
		{
			name:     "401/wrong key carries the DPS error body",
			steps:    []step{{401, "", `{"errorCode":401002,"trackingId":"t-1","message":"the device could not be authenticated","timestampUtc":"2026-01-01T00:00:00.0000000Z"}`}},
			wantErr:  &ServiceError{Status: 401, ErrorCode: 401002, Message: "the device could not be authenticated", TrackingID: "t-1"},
			wantReqs: 1,
		},
		{
			name:     "404/poll of an unknown operation",
			steps:    []step{{202, "1", assigning(testOp)}, {404, "", `{"errorCode":404201,"trackingId":"t-2","message":"operation not found"}`}},
			wantErr:  &ServiceError{Status: 404, ErrorCode: 404201, Message: "operation not found", TrackingID: "t-2"},
			wantReqs: 2,
		},
		{
			name:     "400/body that is not DPS JSON",
			steps:    []step{{400, "", "bad request\n"}},
			wantErr:  &ServiceError{Status: 400, Message: "bad request", TrackingID: "req-1"},
			wantReqs: 1,
		},
		{
			name:      "error/assigning without operationId",
			steps:     []step{{202, "1", `{"status":"assigning"}`}},
			wantErrIs: "without an operationId",
			wantReqs:  1,
		},
		{
			name:      "error/status in the wrong case",
			steps:     []step{{202, "1", assigning(testOp)}, {200, "", `{"operationId":"x","status":"Assigned"}`}},
			wantErrIs: `unexpected status "Assigned"`,
			wantReqs:  2,
		},
		{
			name:      "error/assigned without deviceId",
			steps:     []step{{202, "1", assigning(testOp)}, {200, "", `{"operationId":"x","status":"assigned","registrationState":{"assignedHub":"h.example"}}`}},
			want:      Result{Status: "assigned", AssignedHub: "h.example", RegistrationID: "dev1", OperationID: testOp},
			wantErrIs: "without assignedHub and deviceId",
			wantReqs:  2,
		},
		{
			name:      "error/answer is not JSON",
			steps:     []step{{202, "1", `<html>`}},
			wantErrIs: "not a registration status",
			wantReqs:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeDPS(t, tt.steps...)
			got, err := Register(context.Background(), f.options("dev1"))
			switch {
			case tt.wantErr != nil:
				if err == nil {
					t.Fatalf("Register succeeded, want error %v", tt.wantErr)
				}
				var gotErr error
				var se *ServiceError
				var re *RegistrationError
				switch {
				case errors.As(err, &se):
					gotErr = se
				case errors.As(err, &re):
					gotErr = re
				default:
					t.Fatalf("Register error = %v (%T), want %T", err, err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
			case tt.wantErrIs != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErrIs) {
					t.Fatalf("Register error = %v, want one mentioning %q", err, tt.wantErrIs)
				}
			case err != nil:
				t.Fatalf("Register: %v", err)
			}
			got.Raw = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Result (-want +got):\n%s", diff)
			}
			if n := len(f.requests()); n != tt.wantReqs {
				t.Errorf("%d requests, want %d", n, tt.wantReqs)
			}
			if n := f.conns.Load(); n != 1 {
				t.Errorf("%d TLS connections, want 1 (keep-alive)", n)
			}
		})
	}
}

// TestRegisterHTTPSRequests checks what goes on the wire: the PUT and the
// GET, their paths, api-version, headers, body and token.
func TestRegisterHTTPSRequests(t *testing.T) {
	f := newFakeDPS(t, step{202, "1", assigning(testOp)}, step{200, "", assignedBody("sensor:7")})
	opts := f.options("sensor:7")
	opts.Payload = json.RawMessage(`{"modelId":"dtmi:example;1","extra":42}`)
	var progress []string
	opts.Progress = func(s string) { progress = append(progress, s) }
	if _, err := Register(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2", len(reqs))
	}
	host := f.srv.Listener.Addr().String()
	want := []seenRequest{
		{method: "PUT", escapedPath: "/" + testScope + "/registrations/sensor:7/register", apiVersion: "2021-06-01",
			contentType: "application/json; charset=utf-8", userAgent: "usher-deviceclient", host: host,
			body: `{"registrationId":"sensor:7","payload":{"modelId":"dtmi:example;1","extra":42}}`},
		{method: "GET", escapedPath: "/" + testScope + "/registrations/sensor:7/operations/" + testOp, apiVersion: "2021-06-01",
			userAgent: "usher-deviceclient", host: host},
	}
	for i := range reqs {
		tok := reqs[i].auth
		reqs[i].auth = ""
		checkToken(t, tok, testScope+"/registrations/sensor:7", testKey)
	}
	if diff := cmp.Diff(want, reqs, cmp.AllowUnexported(seenRequest{})); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"assigning", "assigned"}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}

// checkToken verifies a registration token as a DPS would: raw sr (like the
// Node SDK), skn "registration", signed with key, about an hour left.
func checkToken(t *testing.T, token, resource, key string) {
	t.Helper()
	tok, err := sas.Parse(token)
	if err != nil {
		t.Fatalf("token %q: %v", token, err)
	}
	if tok.RawResource != resource || tok.KeyName != "registration" {
		t.Errorf("token sr=%q skn=%q, want sr=%q skn=registration", tok.RawResource, tok.KeyName, resource)
	}
	if err := tok.VerifyAny(time.Now(), 0, key); err != nil {
		t.Errorf("token does not verify with the key: %v", err)
	}
	if left := time.Until(tok.Expiry); left < 50*time.Minute || left > 61*time.Minute {
		t.Errorf("token expires in %s, want about an hour", left)
	}
}

func TestRegisterGroupKey(t *testing.T) {
	const groupKey = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	const regID = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6"
	f := newFakeDPS(t, step{202, "1", assigning(testOp)}, step{200, "", assignedBody(regID)})
	opts := f.options(regID)
	opts.Key, opts.GroupKey = "", groupKey
	if _, err := Register(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	// dps-protocol.md §3.3 test vector.
	checkToken(t, f.requests()[0].auth, testScope+"/registrations/"+regID, "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=")
}

func TestRegisterContextEnds(t *testing.T) {
	f := newFakeDPS(t, step{202, "1", assigning(testOp)}, step{202, "1", assigning(testOp)}, step{202, "1", assigning(testOp)})
	opts := f.options("dev1")
	opts.MaxPollInterval = time.Minute // the retry-after of 1 s is honoured
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Register(ctx, opts)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Register error = %v, want one wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("Register returned after %s; it should stop when the context ends", d)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (the poll waits for retry-after)", n)
	}
}

func TestRegisterBadOptions(t *testing.T) {
	ok := Options{Endpoint: "dps.example", IDScope: testScope, RegistrationID: "dev1", Key: testKey}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"invalid/no endpoint", func(o *Options) { o.Endpoint = "" }, "endpoint is required"},
		{"invalid/no scope", func(o *Options) { o.IDScope = "" }, "ID scope is required"},
		{"invalid/no registration ID", func(o *Options) { o.RegistrationID = "" }, "registration ID is required"},
		{"invalid/no key", func(o *Options) { o.Key = "" }, "key or a group key is required"},
		{"invalid/both keys", func(o *Options) { o.GroupKey = testKey }, "not both"},
		{"invalid/key not base64", func(o *Options) { o.Key = "!!!" }, "key is not valid base64"},
		{"invalid/group key not base64", func(o *Options) { o.Key, o.GroupKey = "", "!!!" }, "group key is not valid base64"},
		{"invalid/transport", func(o *Options) { o.Transport = "amqp" }, `transport "amqp"`},
		{"invalid/payload not an object", func(o *Options) { o.Payload = json.RawMessage(`[1]`) }, "payload must be a JSON object"},
		{"invalid/payload with trailing data", func(o *Options) { o.Payload = json.RawMessage(`{} x`) }, "payload must be a JSON object"},
		{"invalid/endpoint with empty port", func(o *Options) { o.Endpoint = "dps.example:" }, "not host or host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.change(&o)
			_, err := Register(context.Background(), o)
			if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Register error = %v, want a fault Invalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		retryAfter string
		max        time.Duration
		want       time.Duration
	}{
		{"", time.Minute, 2 * time.Second},
		{"3", time.Minute, 3 * time.Second},
		{" 5 ", time.Minute, 5 * time.Second},
		{"0", time.Minute, time.Second},
		{"-4", time.Minute, time.Second},
		{"120", time.Minute, time.Minute},
		{"99999999999999999999", time.Minute, 2 * time.Second},
		{"2.5", time.Minute, 2 * time.Second},
		{"Wed, 21 Oct 2015 07:28:00 GMT", time.Minute, 2 * time.Second},
		{"30", 10 * time.Second, 10 * time.Second},
		{"1", fast, fast},
	}
	for _, tt := range tests {
		if got := wait(tt.retryAfter, tt.max); got != tt.want {
			t.Errorf("wait(%q, %s) = %s, want %s", tt.retryAfter, tt.max, got, tt.want)
		}
	}
}

func TestSplitEndpoint(t *testing.T) {
	tests := []struct {
		endpoint, port, host, addr string
	}{
		{"dps.example", "443", "dps.example", "dps.example:443"},
		{"dps.example:8443", "443", "dps.example:8443", "dps.example:8443"},
		{"https://dps.example/", "443", "dps.example", "dps.example:443"},
		{"mqtts://dps.example", "8883", "dps.example", "dps.example:8883"},
		{"127.0.0.1:1234", "443", "127.0.0.1:1234", "127.0.0.1:1234"},
		{"::1", "8883", "[::1]", "[::1]:8883"},
		{"[::1]", "443", "[::1]", "[::1]:443"},
		{"[::1]:9", "443", "[::1]:9", "[::1]:9"},
	}
	for _, tt := range tests {
		host, addr, err := splitEndpoint(tt.endpoint, tt.port)
		if err != nil || host != tt.host || addr != tt.addr {
			t.Errorf("splitEndpoint(%q, %s) = %q, %q, %v; want %q, %q", tt.endpoint, tt.port, host, addr, err, tt.host, tt.addr)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"service error", &ServiceError{Status: 401, ErrorCode: 401002, Message: "the device could not be authenticated", TrackingID: "t"},
			"DPS refused the registration with status 401: the device could not be authenticated (errorCode 401002, trackingId t)"},
		{"disabled", &RegistrationError{RegistrationID: "d", Status: "disabled"}, "registration d is disabled: its enrollment or enrollment group is disabled"},
		{"failed", &RegistrationError{RegistrationID: "d", Status: "failed", ErrorCode: 400208, Message: "no hub"}, "registration d failed: no hub (errorCode 400208)"},
		{"connack 5", &ConnectionRefusedError{ReturnCode: 5}, "DPS refused the MQTT connection: not authorized (CONNACK return code 5)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: Error() = %q, want %q", tt.name, got, tt.want)
		}
	}
}
