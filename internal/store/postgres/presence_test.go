package postgres_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
)

// presenceNode is one node's bus and presence over a shared schema.
type presenceNode struct {
	db       *postgres.DB
	bus      *hub.Bus
	presence *postgres.Presence
}

// fastPresence beats often so that the tests see a dead node quickly.
var fastPresence = postgres.PresenceOptions{Heartbeat: 100 * time.Millisecond, TTL: time.Second, ActivityFlush: 200 * time.Millisecond}

func mustPresenceNode(tb testing.TB, url string) *presenceNode {
	tb.Helper()
	n := &presenceNode{db: mustOpen(tb, url), bus: hub.NewBus()}
	n.presence = postgres.NewPresence(n.db, n.bus, slog.New(slog.NewTextHandler(io.Discard, nil)), fastPresence)
	if err := n.presence.Start(context.Background()); err != nil {
		tb.Fatalf("start presence: %v", err)
	}
	tb.Cleanup(n.presence.Close)
	return n
}

// waitConnection asks n until the identity's connection satisfies ok.
func waitConnection(tb testing.TB, n *presenceNode, k hub.TwinKey, what string, ok func(hub.Connection) bool) hub.Connection {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := n.presence.Connections(context.Background(), []hub.TwinKey{k, {DeviceID: "nobody"}})
		if err != nil {
			tb.Fatalf("Connections: %v", err)
		}
		if _, found := m[hub.TwinKey{DeviceID: "nobody"}]; found {
			tb.Fatalf("an identity that never connected has a connection: %+v", m)
		}
		if ok(m[k]) {
			return m[k]
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s: %+v", what, m[k])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRows runs a count query until it answers want.
func waitRows(tb testing.TB, url, query string, want int) {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
			tb.Fatalf("%s: %v", query, err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s = %d; want %d", query, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func connected(c hub.Connection) bool    { return c.Connected }
func disconnected(c hub.Connection) bool { return !c.Connected && !c.Updated.IsZero() }

func TestPresenceAcrossNodes(t *testing.T) {
	url := pgtest.SchemaURL(t)
	a, b := mustPresenceNode(t, url), mustPresenceNode(t, url)
	r := mustPresenceNode(t, url) // only reads
	dev, mod := hub.TwinKey{DeviceID: "dev1"}, hub.TwinKey{DeviceID: "dev1", ModuleID: "m1"}

	t.Run("ok/connected on A is connected on B, then disconnected", func(t *testing.T) {
		start := time.Now().Add(-time.Second)
		detach := a.bus.Attach("dev1", "", newFakeConn())
		if c, _ := a.presence.Connections(context.Background(), []hub.TwinKey{dev}); !c[dev].Connected {
			t.Errorf("A does not see its own connection at once: %+v", c[dev])
		}
		c := waitConnection(t, b, dev, "Connected on B", connected)
		if c.Updated.Before(start) || c.LastActivity.Before(start) {
			t.Errorf("on B: %+v; want times after %s", c, start)
		}
		if m, _ := b.presence.Connections(context.Background(), []hub.TwinKey{mod}); m[mod].Connected {
			t.Errorf("the device's module is not connected: %+v", m[mod])
		}
		detach()
		d := waitConnection(t, b, dev, "Disconnected on B", disconnected)
		if d.Updated.Before(c.Updated) {
			t.Errorf("disconnected since %s, before the connection at %s", d.Updated, c.Updated)
		}
	})

	t.Run("ok/moved from A to B stays connected", func(t *testing.T) {
		detachA := a.bus.Attach("dev1", "m1", newFakeConn())
		waitConnection(t, b, mod, "Connected on B", connected)
		detachB := b.bus.Attach("dev1", "m1", newFakeConn())
		detachA()
		waitRows(t, url, `SELECT count(*) FROM hub_presence WHERE device_id = 'dev1' AND module_id = 'm1' AND NOT connected`, 1)
		waitConnection(t, r, mod, "still Connected through B", connected)
		waitConnection(t, a, mod, "still Connected on A through B", connected)
		detachB()
		waitConnection(t, r, mod, "Disconnected", disconnected)
	})

	t.Run("ok/activity reaches the other node", func(t *testing.T) {
		detach := a.bus.Attach("dev2", "", newFakeConn())
		defer detach()
		k := hub.TwinKey{DeviceID: "dev2"}
		first := waitConnection(t, b, k, "Connected on B", connected)
		time.Sleep(10 * time.Millisecond)
		a.bus.Touch("dev2", "")
		waitConnection(t, b, k, "newer activity on B", func(c hub.Connection) bool { return c.LastActivity.After(first.LastActivity) })
	})

	t.Run("ok/a crashed node's devices are disconnected after the TTL", func(t *testing.T) {
		c := mustPresenceNode(t, url)
		c.bus.Attach("dev3", "", newFakeConn()) // never detached: the node dies
		k := hub.TwinKey{DeviceID: "dev3"}
		waitConnection(t, b, k, "Connected on B", connected)
		crashed := time.Now()
		c.db.Close() // no more heartbeats, no clean-up
		d := waitConnection(t, b, k, "Disconnected on B", disconnected)
		if took := time.Since(crashed); took > fastPresence.TTL+time.Second {
			t.Errorf("took %s, the TTL is %s", took, fastPresence.TTL)
		}
		if d.Updated.After(crashed) {
			t.Errorf("disconnected since %s, after the crash at %s (want the last heartbeat)", d.Updated, crashed)
		}
		// Swept: the dead node is forgotten and its connection ended at
		// its last heartbeat.
		waitRows(t, url, `SELECT count(*) FROM hub_presence WHERE device_id = 'dev3' AND connected`, 0)
		if got := waitConnection(t, a, k, "Disconnected on A", disconnected); !got.Updated.Equal(d.Updated) {
			t.Errorf("after the sweep, disconnected since %s; before it %s", got.Updated, d.Updated)
		}
	})

	t.Run("ok/a node that stops cleanly disconnects its devices at once", func(t *testing.T) {
		c := mustPresenceNode(t, url)
		c.bus.Attach("dev4", "", newFakeConn())
		k := hub.TwinKey{DeviceID: "dev4"}
		waitConnection(t, b, k, "Connected on B", connected)
		c.presence.Close()
		if m, err := b.presence.Connections(context.Background(), []hub.TwinKey{k}); err != nil || m[k].Connected {
			t.Errorf("after a clean stop: %+v, %v; want Disconnected at once", m[k], err)
		}
	})
}

// BenchmarkPresenceConnections reads the connections of one query batch
// (500 identities) among 100,000 presence rows of another node.
func BenchmarkPresenceConnections(b *testing.B) {
	url := pgtest.SchemaURL(b)
	n := mustPresenceNode(b, url)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `
		INSERT INTO hub_nodes VALUES ('other', now() + interval '1 hour');
		INSERT INTO hub_presence SELECT 'dev-' || lpad(i::text, 6, '0'), '', 'other', i % 2 = 0, now(), now()
		FROM generate_series(1, 100000) i;
		ANALYZE hub_presence`); err != nil {
		b.Fatal(err)
	}
	keys := make([]hub.TwinKey, 500)
	for i := range keys {
		keys[i] = hub.TwinKey{DeviceID: fmt.Sprintf("dev-%06d", 40000+i)}
	}
	b.ResetTimer()
	for b.Loop() {
		m, err := n.presence.Connections(ctx, keys)
		if err != nil || len(m) != 500 {
			b.Fatalf("%d connections, %v", len(m), err)
		}
	}
}
