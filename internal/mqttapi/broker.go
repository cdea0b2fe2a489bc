package mqttapi

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sync"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/usher-iot/usher/internal/fault"
)

// handler serves the connections of one kind: DPS registrations or hub
// devices (broker.handler picks by kind).
type handler interface {
	// authenticate checks a CONNECT's credentials. fault.Unauthenticated
	// refuses the connection with CONNACK 5, any other error with CONNACK 3.
	authenticate(ctx context.Context, id identity, password string) error
	// configure applies the kind's session rules to an accepted CONNECT
	// (clean session, will) before the broker looks for a session to resume.
	configure(cl *mqtt.Client)
	// maySubscribe and mayPublish are the kind's ACL.
	maySubscribe(s *session, filter string) bool
	mayPublish(s *session, topic string) bool
	// started and ended bracket an admitted session: started runs before
	// its first packet is read, ended after its connection closed.
	started(s *session)
	ended(s *session)
	// admit runs before the broker acknowledges a publish mayPublish
	// allowed, for work the PUBACK promises (storing telemetry); ctx ends
	// when the server stops. An error ends the connection without an
	// acknowledgement.
	admit(ctx context.Context, s *session, pk packets.Packet) error
	// serve answers one request after it was acknowledged.
	serve(ctx context.Context, s *session, topic string, payload []byte)
}

// session is an admitted connection.
type session struct {
	b        *broker
	cl       *mqtt.Client
	id       identity
	h        handler
	password string   // the SAS token: never logged
	hub      *hubConn // the hub's state of a hub session, nil for DPS
}

// LogValue keeps credentials out of every log line that names a session.
func (s *session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", s.id.kind.String()), slog.String("id", s.id.id), slog.String("remote", s.cl.Net.Remote))
}

// send writes an answer to this session's connection alone. A write that
// timed out (the client stopped reading; the listener gives every write a
// deadline) leaves the TLS connection unable to write again, so the
// connection is closed; the device reconnects and asks again.
func (s *session) send(topic string, payload []byte) {
	err := s.b.deliver(s.cl, topic, payload)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.b.log().Info("MQTT connection closed: the client does not read what the server sends", "session", s, "topic", topic)
		s.cl.Stop(err)
	default:
		s.b.log().Debug("MQTT answer not delivered", "session", s, "topic", topic, "err", err)
	}
}

// broker is one Serve's running broker: the embedded server, its hooks, and
// the sessions they admitted.
type broker struct {
	ctx    context.Context // ends when Serve stops
	cancel context.CancelFunc
	srv    *Server
	mqtt   *mqtt.Server

	mu       sync.Mutex
	sessions map[*mqtt.Client]*session
}

func newBroker(ctx context.Context, srv *Server) *broker {
	ctx, cancel := context.WithCancel(ctx)
	b := &broker{ctx: ctx, cancel: cancel, srv: srv, mqtt: newMochi(srv.log), sessions: map[*mqtt.Client]*session{}}
	// AddHook fails only when a hook's Init does; ours has none.
	_ = b.mqtt.AddHook(&hooks{b: b}, nil)
	return b
}

func (b *broker) log() *slog.Logger { return b.srv.log }

// handler returns the handler for a kind, nil for kinds not served (the
// hub when the server has none).
func (b *broker) handler(k kind) handler {
	switch {
	case k == dpsKind:
		return b.srv.dps
	case k == hubKind && b.srv.hub != nil:
		return b.srv.hub
	}
	return nil
}

func (b *broker) session(cl *mqtt.Client) *session {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessions[cl]
}

// refuse answers a CONNECT with a refusal the broker's own flow cannot
// give, and ends the connection.
func (b *broker) refuse(cl *mqtt.Client, code packets.Code) error {
	if err := b.mqtt.SendConnack(cl, code, false, nil); err != nil {
		return err
	}
	return code
}

// hooks connects the broker's events to Usher.
type hooks struct {
	mqtt.HookBase
	b *broker
}

func (h *hooks) ID() string { return "usher" }

var provided = []byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
	mqtt.OnACLCheck, mqtt.OnPacketRead, mqtt.OnPublish, mqtt.OnPublished}

func (h *hooks) Provides(b byte) bool { return slices.Contains(provided, b) }

// OnConnect runs before authentication and before the broker looks for a
// session to take over. It closes the connection without an answer when the
// username is not UTF-8 (MQTT 3.1.1 [MQTT-1.5.3-1]; the broker checks the
// client ID and topics itself but reads the username as bytes), refuses what
// is not MQTT 3.1.1 (CONNACK 1) and a client ID other than the username's
// (CONNACK 2 "identifier rejected": the client, not its key, is wrong), and
// renames the client to its namespaced session ID. Usernames of no known
// shape are left to OnConnectAuthenticate.
func (h *hooks) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !utf8.Valid(pk.Connect.Username) {
		h.b.log().Debug("MQTT connection closed: the username is not UTF-8", "remote", cl.Net.Remote)
		return packets.ErrMalformedInvalidUTF8
	}
	if pk.ProtocolVersion != 4 {
		h.b.log().Debug("MQTT connection refused: only MQTT 3.1.1 is served", "remote", cl.Net.Remote, "protocolVersion", pk.ProtocolVersion)
		return h.b.refuse(cl, packets.ErrUnsupportedProtocolVersion)
	}
	id, err := parseUsername(string(pk.Connect.Username))
	if err != nil {
		return nil
	}
	if !id.matchesClientID(pk.Connect.ClientIdentifier) {
		h.b.log().Debug("MQTT connection refused: the client ID is not the username's", "remote", cl.Net.Remote,
			"kind", id.kind.String(), "id", id.id, "clientId", pk.Connect.ClientIdentifier)
		return h.b.refuse(cl, packets.ErrClientIdentifierNotValid)
	}
	cl.ID = id.sessionID()
	if hd := h.b.handler(id.kind); hd != nil {
		hd.configure(cl)
	}
	return nil
}

// OnConnectAuthenticate admits a CONNECT whose credentials its kind's
// handler accepts (DPS admits every well-formed CONNECT and answers bad
// credentials on the response topic, as Azure does). Returning false makes
// the broker answer CONNACK 5 "not authorized"; a store failure is answered
// CONNACK 3 "server unavailable" here instead.
func (h *hooks) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	log := h.b.log()
	id, err := parseUsername(string(pk.Connect.Username))
	if err != nil {
		log.Debug("MQTT connection refused", "remote", cl.Net.Remote, "clientId", pk.Connect.ClientIdentifier, "err", err)
		return false
	}
	hd := h.b.handler(id.kind)
	if hd == nil {
		log.Info("MQTT connection refused: this server does not serve hub devices", "remote", cl.Net.Remote, "deviceId", id.id)
		return false
	}
	ctx, cancel := context.WithTimeout(h.b.ctx, requestTimeout)
	defer cancel()
	err = hd.authenticate(ctx, id, string(pk.Connect.Password))
	switch {
	case err == nil:
		return true
	case fault.Is(err, fault.Unauthenticated):
		log.Debug("MQTT connection refused", "remote", cl.Net.Remote, "kind", id.kind.String(), "id", id.id, "err", err)
		return false
	}
	log.Error("MQTT connection failed", "remote", cl.Net.Remote, "kind", id.kind.String(), "id", id.id, "err", err)
	// The broker's own refusal would say 5; say 3 and close, so its
	// second CONNACK finds the connection closed.
	_ = h.b.mqtt.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
	cl.Stop(packets.ErrServerUnavailable)
	return false
}

// OnSessionEstablished records the admitted session; from here on the
// broker calls OnDisconnect when the connection ends.
func (h *hooks) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	id, err := parseUsername(string(pk.Connect.Username))
	hd := h.b.handler(id.kind)
	if err != nil || hd == nil { // cannot happen: OnConnectAuthenticate admitted it
		cl.Stop(errors.New("mqttapi: session of no kind"))
		return
	}
	s := &session{b: h.b, cl: cl, id: id, h: hd, password: string(pk.Connect.Password)}
	h.b.mu.Lock()
	h.b.sessions[cl] = s
	h.b.mu.Unlock()
	hd.started(s)
	h.b.srv.obs.Connection(id.kind.String(), 1)
	h.b.log().Debug("MQTT session started", "session", s)
}

func (h *hooks) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	h.b.mu.Lock()
	s := h.b.sessions[cl]
	delete(h.b.sessions, cl)
	h.b.mu.Unlock()
	if s != nil {
		h.b.srv.obs.Connection(s.id.kind.String(), -1)
		s.h.ended(s)
		h.b.log().Debug("MQTT session ended", "session", s, "err", err)
	}
}

// OnACLCheck applies the session kind's ACL. A refused SUBSCRIBE filter is
// answered 0x80 in the SUBACK. A refused PUBLISH is dropped at QoS 0; at
// QoS 1 the broker closes the connection, since MQTT 3.1.1 has no negative
// PUBACK (Azure IoT Hub closes connections that publish to topics it does
// not serve).
func (h *hooks) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	s := h.b.session(cl)
	if s == nil {
		return false
	}
	ok := s.h.maySubscribe(s, topic)
	if write {
		ok = s.h.mayPublish(s, topic)
	}
	if !ok {
		h.b.log().Debug("MQTT topic refused", "session", s, "topic", topic, "publish", write)
	}
	return ok
}

// OnPacketRead closes a connection that publishes at QoS 2, as Azure IoT Hub
// does (the broker would otherwise downgrade it and answer PUBACK where the
// client waits for PUBREC).
func (h *hooks) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 1 {
		h.b.log().Debug("MQTT connection closed: QoS 2 is not supported", "remote", cl.Net.Remote, "clientId", cl.ID)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnPublish takes every request out of the broker's fan-out: the packet is
// admitted by its handler, then acknowledged (PUBACK at QoS 1) but neither
// retained nor delivered to any subscriber. OnPublished then serves it. A
// publish the handler does not admit ends the connection unacknowledged.
func (h *hooks) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	s := h.b.session(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	if err := s.h.admit(h.b.ctx, s, pk); err != nil {
		if fault.Is(err, fault.Internal) || fault.Is(err, fault.Unavailable) {
			h.b.log().Error("MQTT publish failed; closing the connection", "session", s, "topic", pk.TopicName, "err", err)
		} else {
			h.b.log().Info("MQTT publish refused; closing the connection", "session", s, "topic", pk.TopicName, "err", err)
		}
		cl.Stop(err)
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// OnPublished serves a request after the broker acknowledged it, so the
// answer follows the PUBACK as in the captures. It runs on the connection's
// read loop: one connection's requests are answered in order.
func (h *hooks) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	s := h.b.session(cl)
	if s == nil || !pk.Ignore {
		return
	}
	ctx, cancel := context.WithTimeout(h.b.ctx, requestTimeout)
	defer cancel()
	s.h.serve(ctx, s, pk.TopicName, pk.Payload)
}
