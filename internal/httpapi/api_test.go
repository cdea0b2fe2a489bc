package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/httpapi"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/hubassign"
	"github.com/usher-iot/usher/internal/instance"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/sqlite"
	"github.com/usher-iot/usher/internal/wire"
)

// testAPI is the HTTPS API on a real TLS socket over a real SQLite store.
type testAPI struct {
	srv      *httptest.Server
	db       *sqlite.DB
	owner    access.Policy
	reader   access.Policy
	hubOwner access.Policy
	idScope  string
	bus      *hub.Bus // devices "connected" to the hub (attach fakes in tests)
}

const (
	audience = "usher.test"
	hubHost  = "hub.usher.test"
)

func newTestAPI(t testing.TB) *testAPI {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	idScope, err := instance.Bootstrap(ctx, db, db)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := db.Policy(ctx, access.DPS, access.DPSOwner)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := access.NewPolicy(access.DPS, "reader", access.EnrollmentRead|access.RegistrationStatusRead)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePolicy(ctx, reader); err != nil {
		t.Fatal(err)
	}
	hubOwner, err := db.Policy(ctx, access.Hub, access.HubOwner)
	if err != nil {
		t.Fatal(err)
	}
	bus := hub.NewBus()
	hubSvc := hub.NewService(db, hub.Options{HostName: hubHost, Bus: bus})
	auth := func(scope access.Scope, aud string) *access.Authenticator {
		return &access.Authenticator{Store: db, Scope: scope, Now: time.Now, Skew: time.Minute, Audiences: func() []string { return []string{aud} }}
	}
	api := httpapi.New(httpapi.Options{
		Enrollments: dps.NewService(db, dps.Options{}),
		DPSAuth:     auth(access.DPS, audience),
		Registrar:   dps.NewRegistrar(db, dps.RegistrarOptions{IDScope: idScope, Hubs: dps.SingleHub{Hub: hubassign.Hub{Service: hubSvc}}, Skew: time.Minute}),
		Hub:         hubSvc,
		HubAuth:     auth(access.Hub, hubHost),
	})
	srv := httptest.NewUnstartedServer(api)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &testAPI{srv: srv, db: db, owner: owner, reader: reader, hubOwner: hubOwner, idScope: idScope, bus: bus}
}

func (a *testAPI) token(t testing.TB, p access.Policy, expiry time.Time) string {
	t.Helper()
	tok, err := sas.SignKey(audience, p.Name, p.PrimaryKey, expiry)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// response is an answer with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorBody(t *testing.T) wire.ErrorDetails {
	t.Helper()
	var e wire.ErrorDetails
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not Azure's error JSON: %v\n%s", err, r.body)
	}
	return e
}

// do sends a request signed by the owner policy unless headers set
// Authorization themselves ("" removes it).
func (a *testAPI) do(t testing.TB, method, path string, body any, headers map[string]string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	if !strings.Contains(path, "api-version") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "api-version=2021-10-01"
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", a.token(t, a.owner, time.Now().Add(time.Hour)))
	if rd != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func symEnrollment(id string) map[string]any {
	return map[string]any{
		"registrationId": id,
		"attestation":    map[string]any{"type": "symmetricKey"},
		"initialTwin":    map[string]any{"tags": map[string]any{"environment": "test"}, "properties": map[string]any{"desired": map[string]any{"n": 1}}},
	}
}

func decodeInto[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, r.body)
	}
	return v
}
func itoa(n int) string { return strconv.Itoa(n) }

func signWith(t *testing.T, policy, key string) string {
	t.Helper()
	tok, err := sas.SignKey(audience, policy, key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func must(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
