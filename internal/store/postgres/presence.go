package postgres

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

// PresenceOptions tune a Presence; zero fields take the defaults.
type PresenceOptions struct {
	// Heartbeat is how often the node says it is alive and sweeps the
	// rows of dead nodes; 3 s.
	Heartbeat time.Duration
	// TTL is how long after its last heartbeat a node's connections stop
	// counting (a crashed node's devices show Disconnected); 10 s.
	TTL time.Duration
	// ActivityFlush is how often lastActivityTime is written for the
	// identities active here since the last flush; 1 min.
	ActivityFlush time.Duration
}

func (o PresenceOptions) withDefaults() PresenceOptions {
	if o.Heartbeat <= 0 {
		o.Heartbeat = 3 * time.Second
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.ActivityFlush <= 0 {
		o.ActivityFlush = time.Minute
	}
	return o
}

// Presence is the hub.Presence of several nodes on one database
// (docs/decisions/0020-presence.md): each node writes the state of its own
// connections to hub_presence when an identity's first connection attaches
// or its last detaches (in the background, batched, never on the connect
// path of the device) and heartbeats in hub_nodes; reads combine every
// live node's rows with this node's bus.
type Presence struct {
	db   *DB
	bus  *hub.Bus
	log  *slog.Logger
	opts PresenceOptions
	node string

	mu    sync.Mutex
	dirty map[hub.TwinKey]struct{}
	wake  chan struct{}

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

var _ hub.Presence = (*Presence)(nil)

// NewPresence returns the presence of bus's connections over db, and makes
// bus report its changes to it. Start it before serving devices' changes
// are lost otherwise: they are kept and written once it starts.
func NewPresence(db *DB, bus *hub.Bus, log *slog.Logger, opts PresenceOptions) *Presence {
	p := &Presence{db: db, bus: bus, log: log, opts: opts.withDefaults(), node: randomID(),
		dirty: map[hub.TwinKey]struct{}{}, wake: make(chan struct{}, 1)}
	bus.OnPresenceChange(p.changed)
	return p
}

// changed marks an identity to be written (called by the bus).
func (p *Presence) changed(deviceID, moduleID string) {
	p.mu.Lock()
	p.dirty[hub.TwinKey{DeviceID: deviceID, ModuleID: moduleID}] = struct{}{}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Start writes the node's first heartbeat, then writes changes and
// heartbeats in the background until Close.
func (p *Presence) Start(ctx context.Context) error {
	if _, err := p.heartbeat(ctx); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.stop, p.done = stop, make(chan struct{})
	go func() {
		defer close(p.done)
		p.run(runCtx)
	}()
	return nil
}

// Close writes the last changes, marks this node's identities
// disconnected and removes the node, so the other nodes see its devices
// go at once (a node that dies without Close is forgotten after the TTL).
func (p *Presence) Close() {
	if p.stop == nil {
		return
	}
	p.closeOnce.Do(p.close)
}

func (p *Presence) close() {
	p.stop()
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	p.flush(ctx)
	if _, err := p.db.pool.Exec(ctx, `UPDATE hub_presence SET connected = false, updated_at = now() WHERE node_id = $1 AND connected`, p.node); err != nil {
		p.log.Warn("presence: mark this node's connections closed", "err", err)
	}
	if _, err := p.db.pool.Exec(ctx, `DELETE FROM hub_nodes WHERE node_id = $1`, p.node); err != nil {
		p.log.Warn("presence: remove this node", "err", err)
	}
}

func (p *Presence) run(ctx context.Context) {
	beat := time.NewTicker(p.opts.Heartbeat)
	defer beat.Stop()
	activity := time.NewTicker(p.opts.ActivityFlush)
	defer activity.Stop()
	flushed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
			p.flush(ctx)
		case <-activity.C:
			now := time.Now()
			p.markDirty(p.bus.ActiveSince(flushed))
			flushed = now
			p.flush(ctx)
		case <-beat.C:
			revived, err := p.heartbeat(ctx)
			if err != nil {
				p.log.Warn("presence: heartbeat", "err", err)
				continue
			}
			if revived { // swept as dead while stalled: write everything again
				p.markDirty(p.bus.ActiveSince(time.Time{}))
			}
			p.flush(ctx) // also retries a failed write
			p.sweep(ctx)
		}
	}
}

func (p *Presence) markDirty(m map[hub.TwinKey]hub.Connection) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range m {
		p.dirty[k] = struct{}{}
	}
}

// heartbeat records that this node is alive; revived is true when its row
// was gone (another node swept it as dead, or this is the first beat).
func (p *Presence) heartbeat(ctx context.Context) (revived bool, err error) {
	err = p.db.pool.QueryRow(ctx, `
		INSERT INTO hub_nodes (node_id, heartbeat_at) VALUES ($1, now())
		ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now()
		RETURNING xmax = 0`, p.node).Scan(&revived)
	if err != nil {
		return false, fault.Wrap(fault.Unavailable, err, "presence: heartbeat")
	}
	return revived, nil
}

// sweep turns the connections of nodes silent for longer than the TTL into
// disconnections at their last heartbeat, and forgets those nodes. Every
// node sweeps; the statements are idempotent.
func (p *Presence) sweep(ctx context.Context) {
	tx, err := p.db.pool.Begin(ctx)
	if err != nil {
		p.log.Warn("presence: sweep", "err", err)
		return
	}
	defer func() { _ = tx.Rollback(ctx) }()
	ttl := p.opts.TTL.Seconds()
	if _, err := tx.Exec(ctx, `
		UPDATE hub_presence p SET connected = false, updated_at = n.heartbeat_at
		FROM hub_nodes n
		WHERE p.node_id = n.node_id AND p.connected AND n.heartbeat_at < now() - make_interval(secs => $1)`, ttl); err != nil {
		p.log.Warn("presence: sweep", "err", err)
		return
	}
	if _, err := tx.Exec(ctx, `DELETE FROM hub_nodes WHERE heartbeat_at < now() - make_interval(secs => $1)`, ttl); err != nil {
		p.log.Warn("presence: sweep", "err", err)
		return
	}
	if err := tx.Commit(ctx); err != nil {
		p.log.Warn("presence: sweep", "err", err)
	}
}

// flush writes the current local state of every changed identity in one
// round trip, and drops the older disconnections other nodes recorded for
// them. On failure the identities stay marked for the next attempt.
func (p *Presence) flush(ctx context.Context) {
	p.mu.Lock()
	keys := p.dirty
	p.dirty = map[hub.TwinKey]struct{}{}
	p.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	n := len(keys)
	devices, modules := make([]string, 0, n), make([]string, 0, n)
	connected := make([]bool, 0, n)
	updated, activity := make([]time.Time, 0, n), make([]time.Time, 0, n)
	for k := range keys {
		c := p.bus.LocalConnection(k.DeviceID, k.ModuleID)
		devices, modules = append(devices, k.DeviceID), append(modules, k.ModuleID)
		connected = append(connected, c.Connected)
		updated, activity = append(updated, c.Updated.UTC()), append(activity, c.LastActivity.UTC())
	}
	_, err := p.db.pool.Exec(ctx, `
		WITH k AS (
			SELECT * FROM unnest($1::text[], $2::text[], $4::bool[], $5::timestamptz[], $6::timestamptz[]) AS k(d, m, c, u, a)
		), gone AS (
			DELETE FROM hub_presence p USING k
			WHERE p.device_id = k.d AND p.module_id = k.m AND p.node_id <> $3 AND NOT p.connected AND p.updated_at <= k.u
		)
		INSERT INTO hub_presence (device_id, module_id, node_id, connected, updated_at, last_activity)
		SELECT d, m, $3, c, u, a FROM k
		ON CONFLICT (device_id, module_id, node_id) DO UPDATE SET
			connected = EXCLUDED.connected, updated_at = EXCLUDED.updated_at,
			last_activity = GREATEST(hub_presence.last_activity, EXCLUDED.last_activity)`,
		devices, modules, p.node, connected, updated, activity)
	if err != nil {
		p.log.Warn("presence: write", "identities", n, "err", err)
		p.mu.Lock()
		for k := range keys {
			p.dirty[k] = struct{}{}
		}
		p.mu.Unlock()
	}
}

// Connections combines this node's bus with the rows the other nodes
// wrote, in one query: connected when this node or any live node holds a
// connection (since the earliest of them), else disconnected since the
// latest disconnection (a dead node's connections end at its last
// heartbeat). Errors: fault.Unavailable when the database cannot answer.
func (p *Presence) Connections(ctx context.Context, keys []hub.TwinKey) (map[hub.TwinKey]hub.Connection, error) {
	devices, modules := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		devices[i], modules[i] = k.DeviceID, k.ModuleID
	}
	rows, err := p.db.pool.Query(ctx, `
		SELECT p.device_id, p.module_id, p.connected, p.updated_at, p.last_activity,
		       COALESCE(n.heartbeat_at >= now() - make_interval(secs => $4), false), COALESCE(n.heartbeat_at, p.updated_at)
		FROM hub_presence p LEFT JOIN hub_nodes n ON n.node_id = p.node_id
		WHERE (p.device_id, p.module_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) AND p.node_id <> $3`,
		devices, modules, p.node, p.opts.TTL.Seconds())
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "presence: read")
	}
	defer rows.Close()
	acc := map[hub.TwinKey]*combined{}
	for rows.Next() {
		var k hub.TwinKey
		var r presenceRow
		if err := rows.Scan(&k.DeviceID, &k.ModuleID, &r.connected, &r.updated, &r.activity, &r.alive, &r.heartbeat); err != nil {
			return nil, fault.Wrap(fault.Unavailable, err, "presence: read")
		}
		if acc[k] == nil {
			acc[k] = &combined{}
		}
		acc[k].add(r)
	}
	if err := rows.Err(); err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "presence: read")
	}
	out := make(map[hub.TwinKey]hub.Connection, len(keys))
	for _, k := range keys {
		c := acc[k]
		if c == nil {
			c = &combined{}
		}
		local := p.bus.LocalConnection(k.DeviceID, k.ModuleID)
		if !local.Updated.IsZero() || !local.LastActivity.IsZero() {
			c.add(presenceRow{connected: local.Connected, alive: true, updated: local.Updated, activity: local.LastActivity})
		}
		if c.any {
			out[k] = c.result()
		}
	}
	return out, nil
}

// presenceRow is one node's record of an identity.
type presenceRow struct {
	connected, alive  bool
	updated, activity time.Time
	heartbeat         time.Time // the node's last heartbeat
}

// combined folds the rows of one identity.
type combined struct {
	any               bool
	connected         bool
	connectedSince    time.Time // earliest live connection
	disconnectedSince time.Time // latest ended connection
	activity          time.Time
}

func (c *combined) add(r presenceRow) {
	c.any = true
	if r.activity.After(c.activity) {
		c.activity = r.activity
	}
	switch {
	case r.connected && r.alive:
		if !c.connected || r.updated.Before(c.connectedSince) {
			c.connectedSince = r.updated
		}
		c.connected = true
	case r.connected: // its node stopped heartbeating
		c.disconnectedSince = latest(c.disconnectedSince, r.heartbeat)
	default:
		c.disconnectedSince = latest(c.disconnectedSince, r.updated)
	}
}

func (c *combined) result() hub.Connection {
	if c.connected {
		return hub.Connection{Connected: true, Updated: c.connectedSince, LastActivity: c.activity}
	}
	return hub.Connection{Updated: c.disconnectedSince, LastActivity: c.activity}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
