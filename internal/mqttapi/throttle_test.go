package mqttapi

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/throttle"
)

// TestThrottledRequestsAnswered429 checks the MQTT form of a refusal:
// $dps/registrations/res/429/?$rid={rid}&retry-after={limiter's wait} with
// the DPS error body (errorCode 429001), for registrations and polls alike,
// and that the connection stays usable.
func TestThrottledRequestsAnswered429(t *testing.T) {
	frozen := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var calls []string
	limits := throttle.New(throttle.Options{
		Registrations:          throttle.Rate{N: 2, Per: time.Minute},
		RegistrationsPerDevice: throttle.Rate{N: 1, Per: time.Minute},
		PollsPerDevice:         throttle.Rate{N: 1, Per: 10 * time.Second},
		Now:                    func() time.Time { return frozen },
		OnThrottle: func(transport, limit string) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, transport+" "+limit)
		},
	})
	e := newEnv(t, func(o *Options) { o.Limits = limits })
	d1 := e.mustConnect(t, "dev-1", e.enrollDevice(t, "dev-1", dps.Enabled))
	d2 := e.mustConnect(t, "dev-2", e.enrollDevice(t, "dev-2", dps.Enabled))
	d3 := e.mustConnect(t, "dev-3", e.enrollDevice(t, "dev-3", dps.Enabled))

	var opID string
	tests := []struct {
		name       string
		dev        *device
		topic      func() string
		status     int
		retryAfter string
	}{
		{"202/register", d1, func() string { return registerTopic("1") }, 202, "1"},
		{"429/register again within the device's minute", d1, func() string { return registerTopic("2") }, 429, "60"},
		{"200/poll", d1, func() string { return pollTopic("3", opID) }, 200, ""},
		{"429/poll again within 10 s", d1, func() string { return pollTopic("4", opID) }, 429, "10"},
		{"202/another device", d2, func() string { return registerTopic("5") }, 202, "1"},
		{"429/the node's registrations are spent", d3, func() string { return registerTopic("6") }, 429, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.dev.publish(t, tt.topic(), 1, "")
			a := tt.dev.nextAnswer(t)
			if a.status != tt.status || a.retryAfter != tt.retryAfter {
				t.Fatalf("answer %d retry-after %q, want %d %q: %v", a.status, a.retryAfter, tt.status, tt.retryAfter, a.body)
			}
			if a.status == 202 {
				opID = str(a.body, "operationId")
			}
			if a.status != 429 {
				return
			}
			if code, _ := a.body["errorCode"].(float64); code != 429001 || str(a.body, "trackingId") == "" || str(a.body, "message") == "" || str(a.body, "timestampUtc") == "" {
				t.Errorf("429 body %v: want Azure's error body with errorCode 429001", a.body)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"mqtt registrations-per-device", "mqtt polls-per-device", "mqtt registrations"}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("OnThrottle calls (-want +got):\n%s", diff)
	}
}
