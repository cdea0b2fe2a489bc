package client

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

const testKey = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY=" // 32 bytes

// seen is what the fake server recorded of the last request.
type seen struct {
	method, escapedPath, apiVersion, auth, contentType, ifMatch, maxItems, continuation, host string
	body                                                                                      string
}

// fakeServer is an httptest TLS server that records each request and
// answers with the given status, headers and body.
type fakeServer struct {
	*httptest.Server
	mu   sync.Mutex
	last seen
}

func newFakeServer(t *testing.T, status int, header map[string]string, body string) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.last = seen{
			method: r.Method, escapedPath: r.URL.EscapedPath(), apiVersion: r.URL.Query().Get("api-version"),
			auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type"),
			ifMatch: r.Header.Get("If-Match"), maxItems: r.Header.Get("x-ms-max-item-count"),
			continuation: r.Header.Get("x-ms-continuation"), host: r.Host, body: string(b),
		}
		f.mu.Unlock()
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) request() seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// caFile writes the server's certificate as a PEM file.
func (f *fakeServer) caFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustClient returns a client for host "example.com" (a name the httptest
// certificate covers) that dials the fake server through Address and trusts
// it through CAFile.
func mustClient(t *testing.T, f *fakeServer, now time.Time) *Client {
	t.Helper()
	cs := sas.ConnectionString{HostName: "example.com", SharedAccessKeyName: "provisioningserviceowner", SharedAccessKey: testKey}
	c, err := New(cs, Options{CAFile: f.caFile(t), Address: f.Listener.Addr().String(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestRequestIsSigned(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newFakeServer(t, http.StatusOK, nil, `{"registrationId":"dev 1/a","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":null,"secondaryKey":null}}}`)
	c := mustClient(t, f, now)

	got, err := c.Enrollment(context.Background(), "dev 1/a")
	if err != nil {
		t.Fatalf("Enrollment: %v", err)
	}
	if got.RegistrationID != "dev 1/a" || got.Attestation == nil || got.Attestation.SymmetricKey.PrimaryKey != nil {
		t.Errorf("Enrollment decoded %+v, want dev 1/a with masked keys", got)
	}
	r := f.request()
	if r.method != http.MethodGet || r.escapedPath != "/enrollments/dev%201%2Fa" || r.apiVersion != APIVersion || r.host != "example.com" {
		t.Errorf("request = %s %s api-version=%q host=%q; want GET /enrollments/dev%%201%%2Fa api-version=%s host=example.com",
			r.method, r.escapedPath, r.apiVersion, r.host, APIVersion)
	}
	tok, err := sas.Parse(r.auth)
	if err != nil {
		t.Fatalf("Authorization %q does not parse: %v", r.auth, err)
	}
	if err := tok.VerifyAny(now, 0, testKey); err != nil {
		t.Errorf("token does not verify with the policy key: %v", err)
	}
	if res, _ := tok.Resource(); res != "example.com" || tok.KeyName != "provisioningserviceowner" {
		t.Errorf("token sr=%q skn=%q, want sr=example.com skn=provisioningserviceowner", res, tok.KeyName)
	}
	if want := now.Add(time.Hour); !tok.Expiry.Equal(want) {
		t.Errorf("token expires %v, want %v (one hour)", tok.Expiry, want)
	}
}

func TestResourceHasNoPort(t *testing.T) {
	f := newFakeServer(t, http.StatusNoContent, nil, "")
	cs := sas.ConnectionString{HostName: f.Listener.Addr().String(), SharedAccessKeyName: "p", SharedAccessKey: testKey}
	c, err := New(cs, Options{HTTPClient: f.Client()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.DeleteEnrollment(context.Background(), "d1", `"etag-1"`); err != nil {
		t.Fatalf("DeleteEnrollment: %v", err)
	}
	r := f.request()
	tok, err := sas.Parse(r.auth)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RawResource != "127.0.0.1" {
		t.Errorf("sr = %q, want 127.0.0.1 (no port)", tok.RawResource)
	}
	if r.method != http.MethodDelete || r.ifMatch != `"etag-1"` {
		t.Errorf("request = %s If-Match %q, want DELETE with If-Match \"etag-1\"", r.method, r.ifMatch)
	}
}

func TestPutSendsJSON(t *testing.T) {
	f := newFakeServer(t, http.StatusOK, nil, `{"enrollmentGroupId":"g1","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"a2V5","secondaryKey":"a2V5"}},"initialTwin":{"tags":{"n":12345678901234567890}}}`)
	c := mustClient(t, f, time.Now())
	g := wire.EnrollmentGroup{EnrollmentGroupID: "g1", EnrollmentSettings: wire.EnrollmentSettings{Attestation: &wire.AttestationMechanism{Type: "symmetricKey"}}}
	got, err := c.PutGroup(context.Background(), g, "*")
	if err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
	r := f.request()
	if r.method != http.MethodPut || r.escapedPath != "/enrollmentGroups/g1" || r.ifMatch != "*" {
		t.Errorf("request = %s %s If-Match %q, want PUT /enrollmentGroups/g1 If-Match *", r.method, r.escapedPath, r.ifMatch)
	}
	if r.contentType != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q, want application/json; charset=utf-8", r.contentType)
	}
	if !strings.Contains(r.body, `"enrollmentGroupId":"g1"`) {
		t.Errorf("body %s lacks the group ID", r.body)
	}
	if n := got.InitialTwin.Tags["n"]; n != json.Number("12345678901234567890") {
		t.Errorf("tag n = %#v, want the exact json.Number", n)
	}
}

func TestQueryPaging(t *testing.T) {
	tests := []struct {
		name         string
		pageSize     int
		continuation string
		respHeader   map[string]string
		wantMax      string
		wantNext     string
	}{
		{"ok/more pages", 2, "", map[string]string{"x-ms-continuation": "tok2"}, "2", "tok2"},
		{"ok/last page", 0, "tok2", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t, http.StatusOK, tt.respHeader, `[{"registrationId":"a"},{"registrationId":"b"}]`)
			c := mustClient(t, f, time.Now())
			items, next, err := c.QueryEnrollments(context.Background(), "SELECT * FROM enrollments", tt.pageSize, tt.continuation)
			if err != nil {
				t.Fatalf("QueryEnrollments: %v", err)
			}
			if len(items) != 2 || next != tt.wantNext {
				t.Errorf("got %d items, next %q; want 2 items, next %q", len(items), next, tt.wantNext)
			}
			r := f.request()
			if r.escapedPath != "/enrollments/query" || r.maxItems != tt.wantMax || r.continuation != tt.continuation {
				t.Errorf("request %s max-item-count %q continuation %q; want /enrollments/query %q %q",
					r.escapedPath, r.maxItems, r.continuation, tt.wantMax, tt.continuation)
			}
			if diff := cmp.Diff(`{"query":"SELECT * FROM enrollments"}`, r.body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegistrationQueryWithoutQuerySendsNoBody(t *testing.T) {
	f := newFakeServer(t, http.StatusOK, nil, `[]`)
	c := mustClient(t, f, time.Now())
	if _, _, err := c.GroupRegistrations(context.Background(), "g 1", "", 0, ""); err != nil {
		t.Fatalf("GroupRegistrations: %v", err)
	}
	r := f.request()
	if r.escapedPath != "/registrations/g%201/query" || r.body != "" || r.contentType != "" {
		t.Errorf("request %s body %q Content-Type %q; want /registrations/g%%201/query with no body", r.escapedPath, r.body, r.contentType)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   APIError
		msg    string
	}{
		{
			name: "404/azure body", status: 404,
			body: `{"errorCode":404201,"trackingId":"t-1","message":"enrollment \"x\" does not exist","timestampUtc":"2024-01-01T00:00:00.0000000Z"}`,
			want: APIError{Status: 404, Code: 404201, Message: `enrollment "x" does not exist`, TrackingID: "t-1"},
			msg:  `enrollment "x" does not exist (HTTP 404)`,
		},
		{
			name: "502/not json", status: 502, header: map[string]string{"x-ms-request-id": "r-9"},
			body: "bad gateway\n",
			want: APIError{Status: 502, Message: "bad gateway", TrackingID: "r-9"},
			msg:  "bad gateway (HTTP 502)",
		},
		{
			name: "401/empty body", status: 401, header: map[string]string{"x-ms-error-code": "401002"},
			want: APIError{Status: 401, Code: 401002},
			msg:  "Unauthorized (HTTP 401)",
		},
		{
			name: "429/retry-after seconds", status: 429, header: map[string]string{"Retry-After": "7"},
			body: `{"errorCode":429001,"trackingId":"t-2","message":"too many requests"}`,
			want: APIError{Status: 429, Code: 429001, Message: "too many requests", TrackingID: "t-2", RetryAfter: 7 * time.Second},
			msg:  "too many requests (HTTP 429)",
		},
		{
			name: "503/retry-after garbage ignored", status: 503, header: map[string]string{"Retry-After": "soon"},
			body: `{"errorCode":503001,"message":"not ready"}`,
			want: APIError{Status: 503, Code: 503001, Message: "not ready"},
			msg:  "not ready (HTTP 503)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeServer(t, tt.status, tt.header, tt.body)
			c := mustClient(t, f, time.Now())
			_, err := c.Registration(context.Background(), "x")
			var got *APIError
			if !errors.As(err, &got) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
			if err.Error() != tt.msg {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.msg)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := sas.ConnectionString{HostName: "h", SharedAccessKeyName: "p", SharedAccessKey: testKey}
	tests := []struct {
		name string
		cs   sas.ConnectionString
		opts Options
	}{
		{"error/no host name", sas.ConnectionString{SharedAccessKey: testKey}, Options{}},
		{"error/key not base64", sas.ConnectionString{HostName: "h", SharedAccessKey: "%%%"}, Options{}},
		{"error/CA file missing", good, Options{CAFile: filepath.Join(dir, "missing.pem")}},
		{"error/CA file without certificates", good, Options{CAFile: notPEM}},
		{"error/address without port", good, Options{Address: "127.0.0.1"}},
		{"error/HTTPClient with Address", good, Options{HTTPClient: http.DefaultClient, Address: "127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cs, tt.opts); err == nil {
				t.Errorf("New succeeded, want an error")
			}
		})
	}
}

func TestUntrustedServerFails(t *testing.T) {
	f := newFakeServer(t, http.StatusOK, nil, `{}`)
	cs := sas.ConnectionString{HostName: "example.com", SharedAccessKeyName: "p", SharedAccessKey: testKey}
	c, err := New(cs, Options{Address: f.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Group(context.Background(), "g")
	var apiErr *APIError
	if err == nil || errors.As(err, &apiErr) {
		t.Errorf("err = %v, want a TLS failure that is not an APIError", err)
	}
}
