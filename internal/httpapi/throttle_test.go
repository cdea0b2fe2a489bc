package httpapi_test

import (
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/httpapi"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/hubassign"
	"github.com/usher-iot/usher/internal/throttle"
	"github.com/usher-iot/usher/internal/wire"
)

// withLimits serves a's store through a second API that has limits, on a
// new TLS server, and returns the limits' OnThrottle calls so far.
func (a *testAPI) withLimits(t *testing.T, opts throttle.Options) func() []string {
	t.Helper()
	var mu sync.Mutex
	var calls []string
	opts.OnThrottle = func(transport, limit string) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, transport+" "+limit)
	}
	hubSvc := hub.NewService(a.db, hub.Options{HostName: hubHost, Bus: a.bus})
	api := httpapi.New(httpapi.Options{
		Enrollments: dps.NewService(a.db, dps.Options{}),
		Registrar:   dps.NewRegistrar(a.db, dps.RegistrarOptions{IDScope: a.idScope, Hubs: dps.SingleHub{Hub: hubassign.Hub{Service: hubSvc}}, Skew: time.Minute}),
		Limits:      throttle.New(opts),
	})
	srv := httptest.NewUnstartedServer(api)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	a.srv = srv
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), calls...)
	}
}

// TestThrottledDeviceRequests walks the limits over HTTPS: each refusal is
// Azure's 429 with Retry-After and the DPS error body (429001), a request
// that did not prove to be the device spends none of the device's budget,
// and polls have their own.
func TestThrottledDeviceRequests(t *testing.T) {
	a := newTestAPI(t)
	keys := map[string]string{}
	for _, id := range []string{"dev-1", "dev-2", "dev-3"} {
		keys[id] = a.enroll(t, symEnrollment(id))
	}
	frozen := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	calls := a.withLimits(t, throttle.Options{
		Registrations:          throttle.Rate{N: 3, Per: time.Minute},
		RegistrationsPerDevice: throttle.Rate{N: 1, Per: time.Minute},
		PollsPerDevice:         throttle.Rate{N: 2, Per: time.Minute},
		Now:                    func() time.Time { return frozen },
	})
	base := func(id string) string { return "/" + a.idScope + "/registrations/" + url.PathEscape(id) }
	auth := func(id, key string) map[string]string {
		return map[string]string{"Authorization": a.deviceToken(t, id, key)}
	}
	put := func(id, key string) response {
		return a.do(t, "PUT", base(id)+"/register?api-version=2019-03-31", map[string]any{"registrationId": id}, auth(id, key))
	}
	var opID string
	poll := func(id, key string) response {
		return a.do(t, "GET", base(id)+"/operations/"+opID+"?api-version=2019-03-31", nil, auth(id, key))
	}
	lookup := func(id, key string) response {
		return a.do(t, "POST", base(id)+"?api-version=2021-06-01", map[string]any{"registrationId": id}, auth(id, key))
	}
	tests := []struct {
		name       string
		send       func() response
		status     int
		retryAfter string
	}{
		{"401/a wrong key spends the node's budget, not the device's", func() response { return put("dev-1", keys["dev-2"]) }, 401, ""},
		{"202/first registration", func() response {
			r := put("dev-1", keys["dev-1"])
			opID = decodeInto[wire.RegistrationOperationStatus](t, r).OperationID
			return r
		}, 202, "1"},
		{"429/second registration of the device within its minute", func() response { return put("dev-1", keys["dev-1"]) }, 429, "60"},
		{"200/poll", func() response { return poll("dev-1", keys["dev-1"]) }, 200, ""},
		{"200/status lookup counts as a poll", func() response { return lookup("dev-1", keys["dev-1"]) }, 200, ""},
		{"429/third poll", func() response { return poll("dev-1", keys["dev-1"]) }, 429, "30"},
		{"202/another device", func() response { return put("dev-2", keys["dev-2"]) }, 202, "1"},
		{"429/the node's registrations are spent", func() response { return put("dev-3", keys["dev-3"]) }, 429, "20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.send()
			if r.status != tt.status || r.header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("status %d Retry-After %q, want %d %q: %s", r.status, r.header.Get("Retry-After"), tt.status, tt.retryAfter, r.body)
			}
			if r.status != 429 {
				return
			}
			e := r.errorBody(t)
			if e.ErrorCode != 429001 || r.header.Get("x-ms-error-code") != "429001" || e.TrackingID == "" || e.TrackingID != r.header.Get("x-ms-request-id") || e.Message == "" || e.TimestampUTC == "" {
				t.Errorf("429 body %+v, x-ms-error-code %q: want Azure's error body with errorCode 429001", e, r.header.Get("x-ms-error-code"))
			}
		})
	}
	want := []string{"https registrations-per-device", "https polls-per-device", "https registrations"}
	if diff := cmp.Diff(want, calls()); diff != "" {
		t.Errorf("OnThrottle calls (-want +got):\n%s", diff)
	}
}
