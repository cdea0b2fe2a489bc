package hub

import (
	"context"
	"time"
)

// Connection is what IoT Hub reports of an identity's connection
// (hub-protocol.md §2.1, §3.2): connectionState,
// connectionStateUpdatedTime and lastActivityTime.
type Connection struct {
	Connected bool
	// Updated is when the state last changed; zero when never (or not
	// since this process started, on one node).
	Updated time.Time
	// LastActivity is the last CONNECT, telemetry message or twin or
	// method exchange, zero when never. Coarse: see
	// docs/decisions/0020-presence.md.
	LastActivity time.Time
}

// Presence tells which devices and modules are connected to the hub, on
// this node or, in a multi-node deployment, on any node. The Bus is the
// one-node implementation; internal/store/postgres provides one for
// several nodes.
type Presence interface {
	// Connections answers the connection of each key in one lookup; keys
	// that never connected may be missing from the map (the zero
	// Connection: disconnected, never). Errors: fault.Unavailable or
	// fault.Internal when the shared state cannot be read.
	Connections(ctx context.Context, keys []TwinKey) (map[TwinKey]Connection, error)
}

// Connection reports the connection of a device (moduleID "") or module.
func (s *Service) Connection(ctx context.Context, deviceID, moduleID string) (Connection, error) {
	k := TwinKey{deviceID, moduleID}
	m, err := s.presence.Connections(ctx, []TwinKey{k})
	return m[k], err
}

// Connections reports the connections of many identities in one lookup.
func (s *Service) Connections(ctx context.Context, keys []TwinKey) (map[TwinKey]Connection, error) {
	if len(keys) == 0 {
		return map[TwinKey]Connection{}, nil
	}
	return s.presence.Connections(ctx, keys)
}
