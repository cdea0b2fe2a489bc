package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
)

// connectionView is what the presence tests read of device, twin and
// query JSON.
type connectionView struct {
	DeviceID                   string `json:"deviceId"`
	ConnectionState            string `json:"connectionState"`
	ConnectionStateUpdatedTime string `json:"connectionStateUpdatedTime"`
	LastActivityTime           string `json:"lastActivityTime"`
}

const neverTime = "0001-01-01T00:00:00Z"

// connectionViews runs the CLI and decodes its JSON answer: one object or
// an array of them.
func connectionViews(t *testing.T, s *testServer, args ...string) []connectionView {
	t.Helper()
	out := strings.TrimSpace(s.mustUsher(t, args...))
	var many []connectionView
	if strings.HasPrefix(out, "[") {
		if err := json.Unmarshal([]byte(out), &many); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return many
	}
	var one connectionView
	if err := json.Unmarshal([]byte(out), &one); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return []connectionView{one}
}

const connectedQuery = "SELECT * FROM devices WHERE connectionState = 'Connected'"

func TestHubConnectionStateFollowsMQTT(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run("ok/"+store, func(t *testing.T) {
			var s *testServer
			if store == "postgres" {
				s = startServerOn(t, pgtest.SchemaURL(t), "--hub-hostname", "hub.usher.test")
			} else {
				s = startServer(t, "--hub-hostname", "hub.usher.test")
			}
			checkConnectionState(t, s)
		})
	}
}

// checkConnectionState connects a device over MQTT and follows its
// connection in device, twin and query JSON.
func checkConnectionState(t *testing.T, s *testServer) {
	key := provisionDevice(t, s, "online-1")
	provisionDevice(t, s, "offline-1")
	before := time.Now().UTC().Add(-time.Second)

	if got := connectionViews(t, s, "hub", "query", connectedQuery); len(got) != 0 {
		t.Fatalf("before any connection, %q = %+v; want none", connectedQuery, got)
	}
	dev := connectionViews(t, s, "hub", "device", "show", "--device-id", "online-1")[0]
	if dev.ConnectionState != "Disconnected" || dev.ConnectionStateUpdatedTime != neverTime || dev.LastActivityTime != neverTime {
		t.Errorf("never connected: %+v; want Disconnected, never, never", dev)
	}

	c := connectDevice(t, s, "online-1", key)
	dev = connectionViews(t, s, "hub", "device", "show", "--device-id", "online-1")[0]
	if dev.ConnectionState != "Connected" {
		t.Errorf("device show after CONNECT: connectionState %q, want Connected", dev.ConnectionState)
	}
	connectedAt := mustHubTime(t, "connectionStateUpdatedTime", dev.ConnectionStateUpdatedTime)
	if connectedAt.Before(before) || connectedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("connectionStateUpdatedTime %s is not the time of the CONNECT (after %s)", connectedAt, before)
	}
	if a := mustHubTime(t, "lastActivityTime", dev.LastActivityTime); a.Before(connectedAt) {
		t.Errorf("lastActivityTime %s is before the CONNECT at %s", a, connectedAt)
	}
	if tk := c.Publish("devices/online-1/messages/events/", 1, false, `{"t":1}`); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("publish: %v", tk.Error())
	}
	after := connectionViews(t, s, "hub", "device", "show", "--device-id", "online-1")[0]
	if a, b := mustHubTime(t, "lastActivityTime", after.LastActivityTime), mustHubTime(t, "lastActivityTime", dev.LastActivityTime); !a.After(b) {
		t.Errorf("lastActivityTime %s did not move past %s with a message", a, b)
	}
	if after.ConnectionStateUpdatedTime != dev.ConnectionStateUpdatedTime {
		t.Errorf("a message changed connectionStateUpdatedTime: %s, then %s", dev.ConnectionStateUpdatedTime, after.ConnectionStateUpdatedTime)
	}
	twin := connectionViews(t, s, "hub", "twin", "show", "--device-id", "online-1")[0]
	if twin.ConnectionState != "Connected" || twin.LastActivityTime == neverTime {
		t.Errorf("twin show after CONNECT: %+v; want Connected with a lastActivityTime", twin)
	}
	if got := connectionViews(t, s, "hub", "query", connectedQuery); len(got) != 1 || got[0].DeviceID != "online-1" || got[0].ConnectionState != "Connected" {
		t.Errorf("%q = %+v; want online-1 alone", connectedQuery, got)
	}
	off := connectionViews(t, s, "hub", "query", "SELECT deviceId, connectionState FROM devices WHERE connectionState = 'Disconnected'")
	if len(off) != 1 || off[0].DeviceID != "offline-1" {
		t.Errorf("Disconnected query = %+v; want offline-1 alone", off)
	}
	if n := s.mustUsher(t, "hub", "query", "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'"); !strings.Contains(n, `"n": 1`) {
		t.Errorf("COUNT of connected devices: %s", n)
	}

	c.Disconnect(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		dev = connectionViews(t, s, "hub", "device", "show", "--device-id", "online-1")[0]
		if dev.ConnectionState == "Disconnected" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if dev.ConnectionState != "Disconnected" {
		t.Fatalf("after DISCONNECT: connectionState %q", dev.ConnectionState)
	}
	if at := mustHubTime(t, "connectionStateUpdatedTime", dev.ConnectionStateUpdatedTime); at.Before(connectedAt) {
		t.Errorf("connectionStateUpdatedTime %s after DISCONNECT is before the CONNECT at %s", at, connectedAt)
	}
	if got := connectionViews(t, s, "hub", "query", connectedQuery); len(got) != 0 {
		t.Errorf("after DISCONNECT, %q = %+v; want none", connectedQuery, got)
	}
	if twin := connectionViews(t, s, "hub", "twin", "show", "--device-id", "online-1")[0]; twin.ConnectionState != "Disconnected" {
		t.Errorf("twin show after DISCONNECT: %+v", twin)
	}
}

func mustHubTime(t *testing.T, name, v string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || v == neverTime {
		t.Fatalf("%s = %q; want a time", name, v)
	}
	return at
}
