package mqttapi

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/dps"
)

// observer records what the server reports.
type observer struct {
	mu            sync.Mutex
	connections   map[string]int
	registrations map[string]int // transport/outcome
}

func newObserver() *observer {
	return &observer{connections: map[string]int{}, registrations: map[string]int{}}
}

func (o *observer) Registration(transport, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.registrations[transport+"/"+outcome]++
}

func (o *observer) Connection(kind string, delta int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.connections[kind] += delta
}

func (o *observer) conns(kind string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.connections[kind]
}

// waitConns waits until the gauge of kind reads want.
func (o *observer) waitConns(t *testing.T, kind string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for o.conns(kind) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s connections = %d, want %d", kind, o.conns(kind), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestObserverCountsConnectionsAndRegistrations: admitted DPS connections
// are counted up and down, and each registration request is reported once
// with its outcome; a refused one's error body names the tracking ID of its
// log line.
func TestObserverCountsConnectionsAndRegistrations(t *testing.T) {
	obs := newObserver()
	e := newEnv(t, func(o *Options) { o.Metrics = obs })
	key := e.enrollDevice(t, "counted", dps.Enabled)
	wrong := e.enrollDevice(t, "spare", dps.Enabled)
	e.enrollDevice(t, "victim", dps.Enabled)

	d := e.mustConnect(t, "counted", key)
	obs.waitConns(t, "dps", 1)
	d.publish(t, registerTopic("1"), 1, `{"registrationId":"counted"}`)
	if a := d.nextAnswer(t); a.status != 202 {
		t.Fatalf("register answer %d, want 202", a.status)
	}
	bad := e.mustConnect(t, "victim", wrong)
	obs.waitConns(t, "dps", 2)
	bad.publish(t, registerTopic("2"), 1, `{"registrationId":"victim"}`)
	a := bad.nextAnswer(t)
	id := str(a.body, "trackingId")
	if a.status != 401 || id == "" || str(a.body, "message") != "the device could not be authenticated" {
		t.Fatalf("refused answer %d %v, want the generic 401 with a trackingId", a.status, a.body)
	}
	var line string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, "trackingId="+id) {
			line = l
		}
	}
	if !strings.Contains(line, "MQTT DPS request") || !strings.Contains(line, "status=401") ||
		!strings.Contains(line, "signature does not match the individual enrollment's keys") {
		t.Errorf("the log line of trackingId %s is %q, want the request line with the internal reason", id, line)
	}
	obs.mu.Lock()
	got := map[string]int{}
	for k, v := range obs.registrations {
		got[k] = v
	}
	obs.mu.Unlock()
	if got["mqtt/assigned"] != 1 || got["mqtt/unauthenticated"] != 1 || len(got) != 2 {
		t.Errorf("registrations reported %v, want one assigned and one unauthenticated over mqtt", got)
	}

	d.c.Disconnect(0)
	bad.c.Disconnect(0)
	obs.waitConns(t, "dps", 0)
	if n := obs.conns("hub"); n != 0 {
		t.Errorf("hub connections = %d, want 0", n)
	}
}
