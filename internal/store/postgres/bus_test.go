package postgres_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
)

// fakeConn is a device connection that records what the bus sends it and
// answers methods by echoing the payload with status 200.
type fakeConn struct {
	desired chan int64
	closed  chan string
}

func newFakeConn() *fakeConn {
	return &fakeConn{desired: make(chan int64, 8), closed: make(chan string, 8)}
}

func (c *fakeConn) DesiredChanged(_ map[string]any, version int64) { c.desired <- version }
func (c *fakeConn) Close(reason string)                            { c.closed <- reason }
func (c *fakeConn) InvokeMethod(_ context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	if name == "fail" {
		return 0, nil, fault.New(fault.Invalid, "no such method")
	}
	return 200, payload, nil
}

// mustNode starts a bus with a relay over the schema at url: one node.
func mustNode(tb testing.TB, url string) *hub.Bus {
	tb.Helper()
	db := mustOpen(tb, url)
	bus := hub.NewBus()
	r := postgres.NewBusRelay(db, bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := r.Start(context.Background()); err != nil {
		tb.Fatalf("start relay: %v", err)
	}
	tb.Cleanup(r.Close)
	bus.SetRelay(r)
	return bus
}

func wait[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestBusRelayAcrossNodes(t *testing.T) {
	url := pgtest.SchemaURL(t)
	a, b := mustNode(t, url), mustNode(t, url)
	conn := newFakeConn()
	detach := a.Attach("dev1", "", conn)
	defer detach()

	t.Run("ok/desired through B reaches A", func(t *testing.T) {
		b.DesiredChanged("dev1", "", map[string]any{"x": 1}, 7)
		if got := wait(t, conn.desired, "desired push"); got != 7 {
			t.Errorf("version = %d, want 7", got)
		}
	})
	t.Run("ok/large desired through the table", func(t *testing.T) {
		b.DesiredChanged("dev1", "", map[string]any{"big": strings.Repeat("x", 20000)}, 8)
		if got := wait(t, conn.desired, "large desired push"); got != 8 {
			t.Errorf("version = %d, want 8", got)
		}
	})
	t.Run("ok/method through B answered by A", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		status, answer, err := b.InvokeMethod(ctx, "dev1", "", "echo", json.RawMessage(`{"n":1}`))
		if err != nil || status != 200 || string(answer) != `{"n":1}` {
			t.Errorf("InvokeMethod = %d, %s, %v; want 200, {\"n\":1}, nil", status, answer, err)
		}
	})
	t.Run("invalid/remote fault kind returns", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, err := b.InvokeMethod(ctx, "dev1", "", "fail", nil)
		if !fault.Is(err, fault.Invalid) {
			t.Errorf("err = %v, want fault.Invalid", err)
		}
	})
	t.Run("404/no node holds the device", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, err := b.InvokeMethod(ctx, "nobody", "", "echo", nil)
		if !fault.Is(err, fault.NotFound) {
			t.Errorf("err = %v, want fault.NotFound", err)
		}
	})
	t.Run("ok/disconnect through B closes A's connection", func(t *testing.T) {
		b.Disconnect("dev1", "the device is disabled")
		if got := wait(t, conn.closed, "close"); got != "the device is disabled" {
			t.Errorf("reason = %q", got)
		}
	})
}

func TestExclusiveRunsOneAtATime(t *testing.T) {
	url := pgtest.SchemaURL(t)
	a, b := mustOpen(t, url), mustOpen(t, url)
	ctx := context.Background()
	var inner bool
	ran, err := a.Exclusive(ctx, 42, func(ctx context.Context) error {
		var err error
		inner, err = b.Exclusive(ctx, 42, func(context.Context) error { return nil })
		return err
	})
	if err != nil || !ran {
		t.Fatalf("outer Exclusive = %v, %v; want true, nil", ran, err)
	}
	if inner {
		t.Errorf("inner Exclusive ran while the outer held the lock")
	}
	if ran, err := b.Exclusive(ctx, 42, func(context.Context) error { return nil }); err != nil || !ran {
		t.Errorf("Exclusive after release = %v, %v; want true, nil", ran, err)
	}
}
