package mqttapi

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/usher-iot/usher/internal/dps"
)

// Limits.
const (
	// MaxPayloadBytes is the largest request payload accepted: DPS's 96 KB
	// per message (dps-protocol.md §4.2), the same as the HTTPS body limit.
	MaxPayloadBytes = 96 << 10
	// maxPacketBytes bounds a whole packet: a payload plus its topic and
	// headers. A larger packet closes the connection (MQTT 3.1.1 cannot say
	// why).
	maxPacketBytes = MaxPayloadBytes + 4<<10
	// connectTimeout bounds the TLS handshake and the CONNECT packet. After
	// CONNECT the client's keepalive rules; keepalive 0 (the C SDK) means
	// no deadline at all.
	connectTimeout = 30 * time.Second
	// requestTimeout bounds the work for one CONNECT or request.
	requestTimeout = 30 * time.Second
	// maxInflight bounds the unacknowledged QoS 1 answers per connection.
	maxInflight = 64
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
}

// Server is the MQTT surface. It holds configuration only; each Serve runs
// its own broker.
type Server struct {
	log *slog.Logger
	tls *tls.Config
	dps *dpsHandler
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
	conf := opts.TLS.Clone()
	conf.NextProtos = nil
	return &Server{
		log: log,
		tls: conf,
		dps: &dpsHandler{reg: opts.Registrar, retryAfter: min(max(opts.RetryAfter, 1), 300), now: now, log: log},
	}, nil
}

// Serve accepts TCP connections on ln, speaks TLS on them itself, and serves
// MQTT until ctx ends; then it closes ln and every connection and returns
// nil once all their goroutines have ended. It returns an error when ln
// fails. ln is closed when Serve returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return newBroker(ctx, s).run(ln)
}

// run serves ln until the broker's context ends or ln fails.
func (b *broker) run(ln net.Listener) error {
	defer b.cancel()
	l := newListener(ln, b.srv.tls, b.log())
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
// per-client queues since answers bypass the fan-out.
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
	caps.MaximumSessionExpiryInterval = 0
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
