package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/hub"
)

// stepClock is a clock that moves one second each time it is read.
type stepClock struct{ t time.Time }

func (c *stepClock) now() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}

func TestBusPresence(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	clock := &stepClock{t: t0}
	bus := hub.NewBus()
	bus.SetClock(clock.now)
	var changes []string
	bus.OnPresenceChange(func(d, m string) { changes = append(changes, d+"/"+m) })
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	d1, m1, never := hub.TwinKey{DeviceID: "d1"}, hub.TwinKey{DeviceID: "d1", ModuleID: "m1"}, hub.TwinKey{DeviceID: "never"}
	keys := []hub.TwinKey{d1, m1, never}

	first := bus.Attach("d1", "", localConn{})    // t+1
	second := bus.Attach("d1", "", &localConn2{}) // t+2: already connected
	mod := bus.Attach("d1", "m1", localConn{})    // t+3
	bus.Touch("d1", "m1")                         // t+4
	got, err := bus.Connections(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	want := map[hub.TwinKey]hub.Connection{
		d1: {Connected: true, Updated: at(1), LastActivity: at(2)},
		m1: {Connected: true, Updated: at(3), LastActivity: at(4)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("connected (-want +got):\n%s", diff)
	}
	if active := bus.ActiveSince(at(2)); len(active) != 1 || !active[m1].Connected {
		t.Errorf("ActiveSince(t+2) = %+v; want m1 alone", active)
	}

	first()  // d1 still has its second connection
	first()  // detaching twice changes nothing
	second() // t+5: the last one
	mod()    // t+6
	got, _ = bus.Connections(ctx, keys)
	want = map[hub.TwinKey]hub.Connection{
		d1: {Updated: at(5), LastActivity: at(2)},
		m1: {Updated: at(6), LastActivity: at(4)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("disconnected (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"d1/", "d1/m1", "d1/", "d1/m1"}, changes); diff != "" {
		t.Errorf("presence changes (-want +got):\n%s", diff)
	}
}

// localConn2 is a second, distinct connection.
type localConn2 struct{ localConn }

func TestQueryConnectionState(t *testing.T) {
	ctx := context.Background()
	s, bus := newHub(t)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	defer bus.Attach("b", "", localConn{})()
	tests := []struct {
		query string
		want  []string
	}{
		{"SELECT * FROM devices WHERE connectionState = 'Connected'", []string{"b"}},
		{"SELECT * FROM devices WHERE connectionState = 'Disconnected'", []string{"a", "c"}},
		{"SELECT * FROM devices WHERE lastActivityTime > '2000-01-01'", []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			res, err := s.Query(ctx, tt.query, hub.QueryPage{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, it := range res.Items {
				ids = append(ids, it["deviceId"].(string))
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}
