package hub

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// Conn is a device or module connected through a transport (MQTT today).
// The bus calls it; it must not block for long.
type Conn interface {
	// DesiredChanged delivers a desired-properties patch with its version.
	DesiredChanged(patch map[string]any, version int64)
	// InvokeMethod sends a direct method request and waits for the answer
	// until ctx ends (fault.Unavailable when the device does not listen for
	// methods).
	InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (status int, answer json.RawMessage, err error)
	// Close disconnects the device (disabled or deleted).
	Close(reason string)
}

// Bus connects the hub's use cases to the devices connected to this
// process: desired-property pushes, direct methods, disconnects. In a
// multi-node deployment a Relay also carries them to the other nodes, whose
// relays hand them to their own bus through the Local methods.
//
// The bus is also the one-node Presence: it remembers when each identity
// last connected or disconnected here and its last activity.
type Bus struct {
	mu       sync.Mutex
	conns    map[connKey]map[Conn]struct{}
	seen     map[connKey]*seen
	relay    Relay
	onChange func(deviceID, moduleID string)
	now      func() time.Time
}

// seen is what the bus remembers of an identity that connected here.
type seen struct {
	updated  time.Time // the last first attach or last detach
	activity time.Time
}

var _ Presence = (*Bus)(nil)

// Relay carries bus traffic to the other nodes sharing the store
// (internal/store/postgres provides one over LISTEN/NOTIFY).
type Relay interface {
	// DesiredChanged and Disconnect are best effort: a node that misses
	// one leaves the device to resynchronise when it reconnects.
	DesiredChanged(deviceID, moduleID string, patch map[string]any, version int64)
	Disconnect(deviceID, reason string)
	// InvokeMethod calls a method on a device connected to another node,
	// with Conn.InvokeMethod's errors; fault.NotFound when no node has it.
	InvokeMethod(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage) (int, json.RawMessage, error)
}

// SetRelay makes the bus fan out through r. Call it before the bus is used.
func (b *Bus) SetRelay(r Relay) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.relay = r
}

func (b *Bus) currentRelay() Relay {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.relay
}

type connKey struct{ device, module string }

// NewBus returns an empty bus.
func NewBus() *Bus {
	return &Bus{conns: map[connKey]map[Conn]struct{}{}, seen: map[connKey]*seen{}, now: time.Now}
}

// SetClock makes the bus read the time from now (tests). Call it before
// the bus is used.
func (b *Bus) SetClock(now func() time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = now
}

// OnPresenceChange makes the bus call fn (outside its lock, on the
// goroutine that attached or detached) when an identity's first connection
// here attaches or its last detaches: how a multi-node Presence learns what
// to share. Call it before the bus is used.
func (b *Bus) OnPresenceChange(fn func(deviceID, moduleID string)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onChange = fn
}

// Attach registers a connection of a device (moduleID "") or module and
// returns the function that detaches it.
func (b *Bus) Attach(deviceID, moduleID string, c Conn) (detach func()) {
	k := connKey{deviceID, moduleID}
	b.mu.Lock()
	first := b.conns[k] == nil
	if first {
		b.conns[k] = map[Conn]struct{}{}
	}
	b.conns[k][c] = struct{}{}
	now := b.now()
	e := b.seenLocked(k)
	e.activity = now
	if first {
		e.updated = now
	}
	notify := b.onChange
	b.mu.Unlock()
	if first && notify != nil {
		notify(deviceID, moduleID)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			set, ok := b.conns[k]
			_, mine := set[c]
			last := ok && mine && len(set) == 1
			delete(set, c)
			if last {
				delete(b.conns, k)
				b.seenLocked(k).updated = b.now()
			}
			notify := b.onChange
			b.mu.Unlock()
			if last && notify != nil {
				notify(deviceID, moduleID)
			}
		})
	}
}

func (b *Bus) seenLocked(k connKey) *seen {
	e := b.seen[k]
	if e == nil {
		e = &seen{}
		b.seen[k] = e
	}
	return e
}

// Touch records activity of a connected device or module (a message, a
// twin request, a method answer): lastActivityTime.
func (b *Bus) Touch(deviceID, moduleID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seenLocked(connKey{deviceID, moduleID}).activity = b.now()
}

// LocalConnection is the identity's connection to this process.
func (b *Bus) LocalConnection(deviceID, moduleID string) Connection {
	k := connKey{deviceID, moduleID}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connectionLocked(k)
}

func (b *Bus) connectionLocked(k connKey) Connection {
	e := b.seen[k]
	if e == nil {
		return Connection{}
	}
	return Connection{Connected: len(b.conns[k]) > 0, Updated: e.updated, LastActivity: e.activity}
}

// Connections answers from this process's connections alone (one node).
func (b *Bus) Connections(_ context.Context, keys []TwinKey) (map[TwinKey]Connection, error) {
	out := make(map[TwinKey]Connection, len(keys))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		if c := b.connectionLocked(connKey{k.DeviceID, k.ModuleID}); !c.Updated.IsZero() || !c.LastActivity.IsZero() {
			out[k] = c
		}
	}
	return out, nil
}

// ActiveSince lists the identities with activity here after t, with their
// connection: what a multi-node Presence writes out from time to time.
func (b *Bus) ActiveSince(t time.Time) map[TwinKey]Connection {
	out := map[TwinKey]Connection{}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, e := range b.seen {
		if e.activity.After(t) {
			out[TwinKey{k.device, k.module}] = b.connectionLocked(k)
		}
	}
	return out
}

func (b *Bus) lookup(deviceID, moduleID string) []Conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Conn
	for c := range b.conns[connKey{deviceID, moduleID}] {
		out = append(out, c)
	}
	return out
}

// Connected reports whether the device or module has a connection here.
func (b *Bus) Connected(deviceID, moduleID string) bool { return len(b.lookup(deviceID, moduleID)) > 0 }

// DesiredChanged pushes a desired patch to the twin's connections, here
// and through the relay.
func (b *Bus) DesiredChanged(deviceID, moduleID string, patch map[string]any, version int64) {
	b.LocalDesiredChanged(deviceID, moduleID, patch, version)
	if r := b.currentRelay(); r != nil {
		r.DesiredChanged(deviceID, moduleID, patch, version)
	}
}

// LocalDesiredChanged pushes a desired patch to this process's connections.
func (b *Bus) LocalDesiredChanged(deviceID, moduleID string, patch map[string]any, version int64) {
	for _, c := range b.lookup(deviceID, moduleID) {
		c.DesiredChanged(patch, version)
	}
}

// InvokeMethod calls a direct method on a connected device or module: a
// connection of this process, else one the relay finds. Errors:
// fault.NotFound ("not online") when nothing is connected.
func (b *Bus) InvokeMethod(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	if len(b.lookup(deviceID, moduleID)) == 0 {
		if r := b.currentRelay(); r != nil {
			return r.InvokeMethod(ctx, deviceID, moduleID, name, payload)
		}
	}
	return b.LocalInvokeMethod(ctx, deviceID, moduleID, name, payload)
}

// LocalInvokeMethod calls a direct method on a connection of this process.
// Errors: fault.NotFound ("not online") when nothing is connected here.
func (b *Bus) LocalInvokeMethod(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	conns := b.lookup(deviceID, moduleID)
	if len(conns) == 0 {
		return 0, nil, fault.New(fault.NotFound, "Device %q is not online.", deviceID)
	}
	return conns[0].InvokeMethod(ctx, name, payload)
}

// Disconnect closes every connection of a device and of its modules, here
// and through the relay.
func (b *Bus) Disconnect(deviceID, reason string) {
	b.LocalDisconnect(deviceID, reason)
	if r := b.currentRelay(); r != nil {
		r.Disconnect(deviceID, reason)
	}
}

// LocalDisconnect closes this process's connections of a device and of its
// modules.
func (b *Bus) LocalDisconnect(deviceID, reason string) {
	b.mu.Lock()
	var all []Conn
	for k, set := range b.conns {
		if k.device == deviceID {
			for c := range set {
				all = append(all, c)
			}
		}
	}
	b.mu.Unlock()
	for _, c := range all {
		c.Close(reason)
	}
}
