package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/metrics"
)

// TestThrottledAndRecordedSeriesAreServed: what is recorded, including the
// rate limiter's hook, shows up in the exposition; two Metrics share no
// state.
func TestThrottledAndRecordedSeriesAreServed(t *testing.T) {
	m := metrics.New()
	other := metrics.New()
	m.Throttled("https", "per-address")
	m.Throttled("https", "per-address")
	m.Throttled("mqtt", "global")
	m.Registration("mqtt", "assigned", 30*time.Millisecond)
	m.Connection("hub", 1)
	m.HTTPRequest("enrollments", 200, time.Millisecond)
	m.StoreOperation("operation.put", 2*time.Millisecond)
	body := scrape(t, m)
	for _, want := range []string{
		`usher_throttled_requests_total{limit="per-address",transport="https"} 2`,
		`usher_throttled_requests_total{limit="global",transport="mqtt"} 1`,
		`usher_registrations_total{outcome="assigned",transport="mqtt"} 1`,
		`usher_registration_duration_seconds_bucket{transport="mqtt",le="0.05"} 1`,
		`usher_registration_duration_seconds_bucket{transport="mqtt",le="0.025"} 0`,
		`usher_mqtt_connections{kind="hub"} 1`,
		`usher_http_requests_total{route="enrollments",status="200"} 1`,
		`usher_store_operation_duration_seconds_count{operation="operation.put"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(scrape(t, other), "usher_throttled_requests_total{") {
		t.Errorf("a second Metrics sees the first one's counts")
	}
}

// TestNilMetricsRecordNothing: a server without --metrics-addr holds a nil
// *Metrics, whose methods do nothing and whose decorators are identities.
func TestNilMetricsRecordNothing(t *testing.T) {
	var m *metrics.Metrics
	m.Throttled("https", "global")
	m.Registration("https", "assigned", time.Second)
	m.Connection("dps", 1)
	m.HTTPRequest("x", 200, time.Second)
	m.StoreOperation("x", time.Second)
	if m.DPSStore(nil) != nil || m.AuditStore(nil) != nil {
		t.Errorf("nil Metrics wrapped a store")
	}
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
