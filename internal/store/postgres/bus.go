package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

// Limits of the bus relay.
const (
	// maxNotifyBytes keeps a payload under NOTIFY's 8000-byte limit;
	// larger messages go through bus_messages.
	maxNotifyBytes = 7900
	// ackTimeout is how long an invoking node waits for some node to say
	// it holds the device before answering "not online".
	ackTimeout = 2 * time.Second
	// relayRetry is the pause before the listener reconnects.
	relayRetry = time.Second
	// sendTimeout bounds a fire-and-forget send, so a stalled database
	// does not hold up the use case that changed a twin.
	sendTimeout = 5 * time.Second
)

// Kinds of bus messages.
const (
	msgDesired    = "desired"
	msgDisconnect = "disconnect"
	msgInvoke     = "invoke"
	msgAck        = "ack"    // a node holds the device and is invoking
	msgAnswer     = "answer" // the outcome of an invoke
)

// busMessage is what nodes NOTIFY each other, as JSON.
type busMessage struct {
	Node      string          `json:"node"` // the sender
	Kind      string          `json:"kind"`
	ID        string          `json:"id,omitempty"` // correlates invoke, ack and answer
	To        string          `json:"to,omitempty"` // the invoking node, on ack and answer
	Device    string          `json:"device,omitempty"`
	Module    string          `json:"module,omitempty"`
	Patch     json.RawMessage `json:"patch,omitempty"`
	Version   int64           `json:"version,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Method    string          `json:"method,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	TimeoutMS int64           `json:"timeoutMs,omitempty"`
	Status    int             `json:"status,omitempty"`
	Failed    bool            `json:"failed,omitempty"`
	ErrKind   fault.Kind      `json:"errKind,omitempty"`
	ErrMsg    string          `json:"errMsg,omitempty"`
}

// BusRelay carries a hub.Bus's desired pushes, disconnects and direct
// methods between the nodes sharing one database, over LISTEN/NOTIFY on a
// channel named after the schema (docs/decisions/0012-multi-node.md). A
// node that holds a device's connection invokes its methods locally and
// notifies the answer to the node that asked.
type BusRelay struct {
	db      *DB
	bus     *hub.Bus
	log     *slog.Logger
	node    string
	channel string

	mu      sync.Mutex
	waiting map[string]chan busMessage // by correlation id

	stop context.CancelFunc
	wg   sync.WaitGroup
}

var _ hub.Relay = (*BusRelay)(nil)

// NewBusRelay returns a relay for bus over db's database. Start it, then
// give it to bus.SetRelay.
func NewBusRelay(db *DB, bus *hub.Bus, log *slog.Logger) *BusRelay {
	return &BusRelay{db: db, bus: bus, log: log, node: randomID(), waiting: map[string]chan busMessage{}}
}

// Start listens on the relay's channel (before it returns, so nothing
// notified afterwards is missed) and keeps listening, reconnecting after
// failures, until Close.
func (r *BusRelay) Start(ctx context.Context) error {
	var schema string
	if err := r.db.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fault.Wrap(fault.Unavailable, err, "bus relay: read schema")
	}
	r.channel = "usher_bus_" + schema
	conn, err := r.listen(ctx)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stop = stop
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.run(runCtx, conn)
	}()
	return nil
}

// Close stops listening and waits for the methods being invoked here.
func (r *BusRelay) Close() {
	if r.stop != nil {
		r.stop()
	}
	r.wg.Wait()
}

func (r *BusRelay) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, r.db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "bus relay: connect")
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{r.channel}.Sanitize()); err != nil {
		conn.Close(ctx)
		return nil, fault.Wrap(fault.Unavailable, err, "bus relay: listen")
	}
	return conn, nil
}

// run receives notifications until ctx ends, reconnecting when the
// connection fails.
func (r *BusRelay) run(ctx context.Context, conn *pgx.Conn) {
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		if conn == nil {
			var err error
			if conn, err = r.listen(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				r.log.Warn("bus relay: reconnecting", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(relayRetry):
				}
				continue
			}
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("bus relay: connection lost", "err", err)
			conn.Close(ctx)
			conn = nil
			continue
		}
		r.receive(ctx, n.Payload)
	}
}

// receive decodes one notification and acts on it.
func (r *BusRelay) receive(ctx context.Context, payload string) {
	body := []byte(payload)
	if id, ok := strings.CutPrefix(payload, "@"); ok {
		seq, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return
		}
		var s string
		if err := r.db.pool.QueryRow(ctx, `SELECT body FROM bus_messages WHERE id = $1`, seq).Scan(&s); err != nil {
			r.log.Warn("bus relay: read stored message", "id", seq, "err", err)
			return
		}
		body = []byte(s)
	}
	var m busMessage
	if err := json.Unmarshal(body, &m); err != nil {
		r.log.Warn("bus relay: undecodable message", "err", err)
		return
	}
	if m.Node == r.node {
		return // our own, delivered locally already
	}
	switch m.Kind {
	case msgDesired:
		var patch map[string]any
		dec := json.NewDecoder(bytes.NewReader(m.Patch))
		dec.UseNumber()
		if err := dec.Decode(&patch); err != nil {
			return
		}
		r.bus.LocalDesiredChanged(m.Device, m.Module, patch, m.Version)
	case msgDisconnect:
		r.bus.LocalDisconnect(m.Device, m.Reason)
	case msgInvoke:
		if !r.bus.Connected(m.Device, m.Module) {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.invokeHere(ctx, m)
		}()
	case msgAck, msgAnswer:
		if m.To != r.node {
			return
		}
		r.mu.Lock()
		ch := r.waiting[m.ID]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

// invokeHere runs a method another node asked for on a local connection
// and notifies the outcome.
func (r *BusRelay) invokeHere(ctx context.Context, m busMessage) {
	r.send(ctx, busMessage{Kind: msgAck, ID: m.ID, To: m.Node})
	ictx, cancel := context.WithTimeout(ctx, time.Duration(m.TimeoutMS)*time.Millisecond)
	defer cancel()
	status, answer, err := r.bus.LocalInvokeMethod(ictx, m.Device, m.Module, m.Method, m.Payload)
	out := busMessage{Kind: msgAnswer, ID: m.ID, To: m.Node, Status: status, Payload: answer}
	if err != nil {
		out.Failed, out.ErrKind, out.ErrMsg = true, fault.KindOf(err), fault.MessageOf(err)
		out.Payload = nil
	}
	r.send(ctx, out)
}

// DesiredChanged notifies the other nodes of a desired patch.
func (r *BusRelay) DesiredChanged(deviceID, moduleID string, patch map[string]any, version int64) {
	raw, err := json.Marshal(patch)
	if err != nil {
		r.log.Warn("bus relay: encode desired patch", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	r.send(ctx, busMessage{Kind: msgDesired, Device: deviceID, Module: moduleID, Patch: raw, Version: version})
}

// Disconnect asks the other nodes to close a device's connections.
func (r *BusRelay) Disconnect(deviceID, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	r.send(ctx, busMessage{Kind: msgDisconnect, Device: deviceID, Reason: reason})
}

// InvokeMethod asks the other nodes to invoke a method and waits for the
// answer of the one holding the device. Errors: fault.NotFound when no
// node acknowledges within ackTimeout, the remote connection's error, and
// fault.Unavailable wrapping ctx's error when ctx ends first.
func (r *BusRelay) InvokeMethod(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	id := randomID()
	ch := make(chan busMessage, 4)
	r.mu.Lock()
	r.waiting[id] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, id)
		r.mu.Unlock()
	}()
	timeout := time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	m := busMessage{Kind: msgInvoke, ID: id, Device: deviceID, Module: moduleID, Method: name, Payload: payload, TimeoutMS: max(timeout.Milliseconds(), 1)}
	if err := r.send(ctx, m); err != nil {
		return 0, nil, err
	}
	ack := time.NewTimer(ackTimeout)
	defer ack.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, nil, fault.Wrap(fault.Unavailable, ctx.Err(), "method %q on %q", name, deviceID)
		case <-ack.C:
			return 0, nil, fault.New(fault.NotFound, "Device %q is not online.", deviceID)
		case a := <-ch:
			if a.Kind == msgAck {
				ack.Stop()
				continue
			}
			if a.Failed {
				return 0, nil, fault.New(a.ErrKind, "%s", a.ErrMsg)
			}
			return a.Status, a.Payload, nil
		}
	}
}

// send notifies m, through bus_messages when it is too large for NOTIFY.
func (r *BusRelay) send(ctx context.Context, m busMessage) error {
	m.Node = r.node
	body, err := json.Marshal(m)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "bus relay: encode")
	}
	payload := string(body)
	if len(body) > maxNotifyBytes {
		var seq int64
		if err := r.db.pool.QueryRow(ctx, `INSERT INTO bus_messages (body) VALUES ($1) RETURNING id`, payload).Scan(&seq); err != nil {
			r.log.Warn("bus relay: store message", "err", err)
			return internal(err)
		}
		if _, err := r.db.pool.Exec(ctx, `DELETE FROM bus_messages WHERE created_at < now() - interval '1 minute'`); err != nil {
			r.log.Warn("bus relay: delete old messages", "err", err)
		}
		payload = "@" + strconv.FormatInt(seq, 10)
	}
	if _, err := r.db.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, r.channel, payload); err != nil {
		r.log.Warn("bus relay: notify", "kind", m.Kind, "err", err)
		return internal(err)
	}
	return nil
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return hex.EncodeToString(b[:])
}
