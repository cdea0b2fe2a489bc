package mqttapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
)

const (
	// outboxSize bounds what the hub has queued for one connection. A
	// device that lets it fill up is not reading; it is disconnected and
	// resynchronises its twin when it reconnects.
	outboxSize = 32
	// maxMethodPayloadBytes is IoT Hub's direct-method payload limit
	// (hub-protocol.md §6.3).
	maxMethodPayloadBytes = 128 << 10
)

// hubConn is one hub device connection as the bus sees it (hub.Conn).
// What the bus sends goes through an outbox drained by the connection's own
// goroutine, so a device that does not read never blocks the use case that
// changed its twin or called its method.
type hubConn struct {
	s      *session
	h      *hubHandler
	out    chan outgoing
	done   chan struct{} // closed when the connection has ended
	once   sync.Once
	detach func()
	expiry *time.Timer // nil when the token's expiry is unknown

	mu      sync.Mutex
	lastRID uint64
	pending map[string]chan methodAnswer // by $rid
}

var _ hub.Conn = (*hubConn)(nil)

type outgoing struct {
	topic   string
	payload []byte
}

type methodAnswer struct {
	status int
	body   json.RawMessage
	err    error
}

func newHubConn(s *session, h *hubHandler) *hubConn {
	return &hubConn{s: s, h: h, out: make(chan outgoing, outboxSize), done: make(chan struct{}), pending: map[string]chan methodAnswer{}}
}

// drain writes the outbox to the connection until it ends.
func (c *hubConn) drain() {
	for {
		select {
		case m := <-c.out:
			c.s.send(m.topic, m.payload)
		case <-c.done:
			return
		}
	}
}

// end runs once the connection has ended: it leaves the bus, stops the
// drain and the expiry timer, and fails the method calls still waiting.
func (c *hubConn) end() {
	c.once.Do(func() {
		close(c.done)
		if c.detach != nil {
			c.detach()
		}
		if c.expiry != nil {
			c.expiry.Stop()
		}
	})
}

// enqueue queues a publish for the connection; false when the connection
// has ended or was closed because its outbox is full.
func (c *hubConn) enqueue(topic string, payload []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.out <- outgoing{topic, payload}:
		return true
	default:
		c.Close("the device does not read what the hub sends")
		return false
	}
}

// subscribed reports whether the connection listens on topic.
func (c *hubConn) subscribed(topic string) bool {
	_, ok := grantedQoS(c.s.cl, topic)
	return ok
}

// DesiredChanged pushes a desired patch with its "$version" to this
// connection alone, if it subscribed to desired pushes (the C SDK
// subscribes only after its first twin GET, whose answer already shows
// earlier changes).
func (c *hubConn) DesiredChanged(patch map[string]any, version int64) {
	topic := desiredPushTopic + strconv.FormatInt(version, 10)
	if !c.subscribed(topic) {
		return
	}
	c.enqueue(topic, encodeJSON(withVersion(patch, version)))
}

// InvokeMethod publishes $iothub/methods/POST/{name}/?$rid={rid} with a
// $rid unique on this connection and waits for the device's
// $iothub/methods/res/{status}/?$rid={rid}. Errors: fault.NotFound when the
// device does not listen for methods or disconnects before answering,
// fault.Invalid for a name that cannot be a topic level or an answer that
// is not JSON, fault.TooLarge for a payload over 128 KB, and fault.Unavailable
// wrapping ctx's error when ctx ends first (errors.Is(err,
// context.DeadlineExceeded) tells a timeout).
func (c *hubConn) InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	if name == "" || strings.ContainsAny(name, "/+#?") {
		return 0, nil, fault.New(fault.Invalid, "method name %q cannot be sent over MQTT", name)
	}
	if len(payload) > maxMethodPayloadBytes {
		return 0, nil, fault.New(fault.TooLarge, "the method payload is %d bytes; the limit is %d", len(payload), maxMethodPayloadBytes)
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = json.RawMessage("null")
	}
	rid, answer := c.await()
	defer c.forget(rid)
	topic := methodRequestTopic + name + "/?$rid=" + rid
	if !c.subscribed(topic) || !c.enqueue(topic, payload) {
		return 0, nil, notOnline(c.s.id)
	}
	select {
	case a := <-answer:
		return a.status, a.body, a.err
	case <-c.done:
		return 0, nil, notOnline(c.s.id)
	case <-ctx.Done():
		return 0, nil, fault.Wrap(fault.Unavailable, ctx.Err(), "the device did not answer method %q in time", name)
	}
}

func notOnline(id identity) error {
	if id.module != "" {
		return fault.New(fault.NotFound, "Module %q on device %q is not online.", id.module, id.id)
	}
	return fault.New(fault.NotFound, "Device %q is not online.", id.id)
}

// await registers a method call and returns its $rid and the channel its
// answer arrives on.
func (c *hubConn) await() (string, chan methodAnswer) {
	ch := make(chan methodAnswer, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastRID++
	rid := strconv.FormatUint(c.lastRID, 10)
	c.pending[rid] = ch
	return rid, ch
}

func (c *hubConn) forget(rid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, rid)
}

// answered hands a device's method answer to the call waiting for it.
// Answers nobody waits for (late, or an unknown $rid) are dropped.
func (c *hubConn) answered(rid string, status int, payload []byte) {
	c.mu.Lock()
	ch := c.pending[rid]
	delete(c.pending, rid)
	c.mu.Unlock()
	if ch == nil {
		c.h.log.Debug("hub method answer nobody waits for", "session", c.s, "rid", rid, "status", status)
		return
	}
	a := methodAnswer{status: status}
	switch body := bytes.TrimSpace(payload); {
	case len(body) == 0:
	case json.Valid(body):
		a.body = json.RawMessage(bytes.Clone(body))
	default:
		a.err = fault.New(fault.Invalid, "the device answered the method with a body that is not JSON")
	}
	ch <- a
}

// Close disconnects the device (it was disabled or deleted, or its token
// expired). The session ends as for any disconnect.
func (c *hubConn) Close(reason string) {
	c.h.log.Info("hub connection closed", "session", c.s, "reason", reason)
	c.s.cl.Stop(errors.New(reason))
}

// tokenExpiry reads a SAS token's expiry.
func tokenExpiry(token string) (time.Time, bool) {
	t, err := sas.Parse(token)
	if err != nil {
		return time.Time{}, false
	}
	return t.Expiry, true
}
