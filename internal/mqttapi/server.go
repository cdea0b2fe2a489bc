package mqttapi

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/throttle"
)

// Limits.
const (
	// MaxPayloadBytes is the largest DPS request payload accepted: DPS's
	// 96 KB per message (dps-protocol.md §4.2), the same as the HTTPS body
	// limit. Hub telemetry may be up to hub.MaxMessageBytes.
	MaxPayloadBytes = 96 << 10
	// maxPacketBytes bounds a whole packet: the largest payload (hub
	// telemetry) plus its topic and headers. A larger packet closes the
	// connection (MQTT 3.1.1 cannot say why).
	maxPacketBytes = hub.MaxMessageBytes + 4<<10
	// defaultConnectTimeout bounds the TLS handshake and the CONNECT packet
	// unless Options.ConnectTimeout says otherwise. After CONNECT the
	// client's keepalive rules; keepalive 0 (the C SDK) means no deadline
	// at all.
	defaultConnectTimeout = 30 * time.Second
	// defaultWriteTimeout bounds each write to a client unless
	// Options.WriteTimeout says otherwise: a client that stops reading
	// (its receive window full) is disconnected instead of holding a
	// goroutine and its queue of answers for ever.
	defaultWriteTimeout = 30 * time.Second
	// requestTimeout bounds the work for one CONNECT or request.
	requestTimeout = 30 * time.Second
	// maxInflight bounds the unacknowledged QoS 1 answers per connection.
	maxInflight = 64
	// hubSessionExpiry is how long the broker keeps the subscriptions of a
	// hub device that connected with clean session false after it
	// disconnects (DPS sessions are always clean). Sessions live in memory
	// only: a restart forgets them, and CONNACK says so.
	hubSessionExpiry = 30 * time.Minute
	// defaultHubTokenSkew is the clock skew allowed on hub device tokens.
	defaultHubTokenSkew = 5 * time.Minute
)

// Options configure the MQTT server.
type Options struct {
	Logger *slog.Logger
	// TLS is the server's TLS configuration (required). Serve wraps the
	// plain listener it is given with a copy that negotiates no ALPN
	// protocol, so MQTT clients offering one are not refused.
	TLS *tls.Config
	// Registrar answers DPS registrations (required).
	Registrar *dps.Registrar
	// RetryAfter is the poll delay in seconds put in 202 answers; 1 when 0,
	// at most 300 (the C SDK clamps to 1–300).
	RetryAfter int
	Now        func() time.Time // time.Now when nil
	// Limits are the node's limits on DPS requests; none when nil.
	Limits *throttle.Limiter

	// Hub serves devices and modules of the built-in hub (hub-protocol.md
	// §6); without it hub CONNECTs are refused with CONNACK 5.
	Hub *hub.Service
	// Bus is the bus Hub was built with (hub.Options.Bus); required with
	// Hub. Connections attach to it for desired pushes, direct methods and
	// disconnects.
	Bus *hub.Bus
	// MessageLogSize is how many device-to-cloud messages the hub's log
	// keeps; hub.DefaultMessageLogSize when 0.
	MessageLogSize int
	// MessageWebhook, when set, is an http or https URL every
	// device-to-cloud message is POSTed to as JSON, best effort: a bounded
	// queue, 5 s per post, messages dropped with a warning when the
	// endpoint cannot keep up. Devices never wait for it.
	MessageWebhook string
	// HubTokenSkew is the clock skew allowed on hub device tokens, at
	// CONNECT and when deciding that a connection's token has expired;
	// 5 minutes when 0.
	HubTokenSkew time.Duration
	// ConnectTimeout is how long a new connection may take to complete
	// its TLS handshake and send CONNECT before it is closed; 30 seconds
	// when 0.
	ConnectTimeout time.Duration
	// WriteTimeout is how long one write to a client may block before the
	// connection is closed; 30 seconds when 0.
	WriteTimeout time.Duration
	// Metrics records registrations and connections; nothing when nil.
	Metrics Observer
}

// Observer records what the MQTT server served (*metrics.Metrics is one).
type Observer interface {
	// Registration records a device registration request that ended with
	// outcome (dps.RegistrationOutcome) after d.
	Registration(transport, outcome string, d time.Duration)
	// Connection adds delta to the count of admitted connections of kind
	// ("dps" or "hub").
	Connection(kind string, delta int)
}

type nopObserver struct{}

func (nopObserver) Registration(string, string, time.Duration) {}
func (nopObserver) Connection(string, int)                     {}

// Server is the MQTT surface. It holds configuration only; each Serve runs
// its own broker.
type Server struct {
	log     *slog.Logger
	tls     *tls.Config
	connect time.Duration // Options.ConnectTimeout
	write   time.Duration // Options.WriteTimeout
	dps     *dpsHandler
	hub     *hubHandler // nil when hub devices are not served
	webhook *webhook    // nil when messages are not forwarded
	obs     Observer
}

// New returns the MQTT server.
func New(opts Options) (*Server, error) {
	if opts.TLS == nil || len(opts.TLS.Certificates) == 0 && opts.TLS.GetCertificate == nil && opts.TLS.GetConfigForClient == nil {
		return nil, errors.New("mqttapi: a TLS configuration with a certificate is required")
	}
	if opts.Registrar == nil {
		return nil, errors.New("mqttapi: a registrar is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	obs := opts.Metrics
	if obs == nil {
		obs = nopObserver{}
	}
	conf := opts.TLS.Clone()
	conf.NextProtos = nil
	s := &Server{
		log:     log,
		tls:     conf,
		connect: cmp.Or(max(opts.ConnectTimeout, 0), defaultConnectTimeout),
		write:   cmp.Or(max(opts.WriteTimeout, 0), defaultWriteTimeout),
		dps:     &dpsHandler{reg: opts.Registrar, retryAfter: min(max(opts.RetryAfter, 1), 300), limits: opts.Limits, now: now, log: log, obs: obs},
		obs:     obs,
	}
	if opts.Hub == nil {
		if opts.Bus != nil || opts.MessageWebhook != "" {
			return nil, errors.New("mqttapi: a bus or a message webhook needs a hub")
		}
		return s, nil
	}
	if opts.Bus == nil {
		return nil, errors.New("mqttapi: a hub needs its bus")
	}
	s.hub = &hubHandler{hub: opts.Hub, bus: opts.Bus, keep: opts.MessageLogSize, skew: opts.HubTokenSkew, now: now, log: log}
	if s.hub.keep < 1 {
		s.hub.keep = hub.DefaultMessageLogSize
	}
	if s.hub.skew <= 0 {
		s.hub.skew = defaultHubTokenSkew
	}
	if opts.MessageWebhook != "" {
		w, err := newWebhook(opts.MessageWebhook, log)
		if err != nil {
			return nil, err
		}
		s.webhook, s.hub.webhook = w, w
	}
	return s, nil
}

// Serve accepts TCP connections on ln, speaks TLS on them itself, and serves
// MQTT until ctx ends; then it closes ln and every connection and returns
// nil once all their goroutines have ended. It returns an error when ln
// fails. ln is closed when Serve returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return newBroker(ctx, s).run(ln)
}

// run serves ln until the broker's context ends or ln fails, with the
// message webhook's workers beside it.
func (b *broker) run(ln net.Listener) error {
	var workers sync.WaitGroup
	defer workers.Wait() // after the cancel below, on every return
	defer b.cancel()
	if w := b.srv.webhook; w != nil {
		workers.Go(func() { w.run(b.ctx) })
	}
	l := newListener(ln, b.srv.tls, b.srv.connect, b.srv.write, b.log())
	if err := b.mqtt.AddListener(l); err != nil {
		ln.Close()
		return err
	}
	if err := b.mqtt.Serve(); err != nil { // fails only for configured stores, which there are none of
		ln.Close()
		return err
	}
	var err error
	select {
	case <-b.ctx.Done():
	case err = <-l.failed:
		b.log().Error("MQTT listener failed", "err", err)
	}
	b.cancel() // ends the requests being served before the clients are closed
	_ = b.mqtt.Close()
	return err
}

// newMochi returns the embedded broker, configured as an Azure endpoint
// rather than a general broker: MQTT 3.1.1 only, QoS 0 and 1 (Azure grants
// at most 1), no retained messages, no shared subscriptions, small
// per-client queues since answers bypass the fan-out, persistent (clean
// session false) hub sessions kept for hubSessionExpiry.
func newMochi(log *slog.Logger) *mqtt.Server {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MinimumProtocolVersion = 4
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	caps.SharedSubAvailable = 0
	caps.SubIDAvailable = 0
	caps.TopicAliasMaximum = 0
	caps.MaximumPacketSize = maxPacketBytes
	caps.MaximumInflight = maxInflight
	caps.MaximumClientWritesPending = 16
	caps.MaximumSessionExpiryInterval = uint32(hubSessionExpiry / time.Second)
	return mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(quiet{log.Handler()}),
		// $SYS topics are published to nobody (the ACL allows no one to
		// subscribe) but cost a stop-the-world memory read each time.
		SysTopicResendInterval: int64((24 * time.Hour).Seconds()),
	})
}

// quiet hands the broker's own log records on one level lower: its
// per-connection chatter (keepalive 0 warnings for every C SDK device,
// refused packets) is debug detail for Usher, its errors stay errors.
type quiet struct{ slog.Handler }

func demote(l slog.Level) slog.Level {
	if l < slog.LevelError {
		return slog.LevelDebug
	}
	return l
}

func (q quiet) Enabled(ctx context.Context, l slog.Level) bool {
	return q.Handler.Enabled(ctx, demote(l))
}

func (q quiet) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return q.Handler.Handle(ctx, r)
}

func (q quiet) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quiet{q.Handler.WithAttrs(attrs)}
}

func (q quiet) WithGroup(name string) slog.Handler { return quiet{q.Handler.WithGroup(name)} }
