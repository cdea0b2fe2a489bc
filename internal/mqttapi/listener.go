package mqttapi

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// listener is the broker's network listener: it wraps each accepted
// connection in TLS, gives it the connect timeout to complete the handshake and
// CONNECT and the write timeout on every write, and owns the goroutine that
// serves it. Close ends them all.
type listener struct {
	ln      net.Listener
	tls     *tls.Config
	connect time.Duration // for the TLS handshake and CONNECT
	write   time.Duration // for each write
	log     *slog.Logger
	failed  chan error // Accept's error, unless Close caused it

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // connection goroutines
	served chan struct{}  // closed when Serve returns
}

var _ listeners.Listener = (*listener)(nil)

func newListener(ln net.Listener, conf *tls.Config, connect, write time.Duration, log *slog.Logger) *listener {
	return &listener{ln: ln, tls: conf, connect: connect, write: write, log: log, failed: make(chan error, 1), conns: map[net.Conn]struct{}{}, served: make(chan struct{})}
}

// listenerID names the one listener in the broker's client records.
const listenerID = "mqtts"

func (l *listener) ID() string                { return listenerID }
func (l *listener) Address() string           { return l.ln.Addr().String() }
func (l *listener) Protocol() string          { return "mqtts" }
func (l *listener) Init(_ *slog.Logger) error { return nil }

// Serve accepts connections until the listener is closed. Other Accept
// errors (out of file descriptors) are retried with a growing pause, as
// net/http does.
func (l *listener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	var pause time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			switch {
			case closed:
				return
			case errors.Is(err, net.ErrClosed):
				l.failed <- err
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.log.Warn("MQTT accept failed; retrying", "err", err, "in", pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		_ = c.SetDeadline(time.Now().Add(l.connect))
		tc := tls.Server(writeDeadlineConn{Conn: c, timeout: l.write}, l.tls)
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[tc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			if err := establish(listenerID, tc); err != nil {
				l.log.Debug("MQTT connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
			tc.Close()
			l.mu.Lock()
			delete(l.conns, tc)
			l.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every connection (a plain close: MQTT 3.1.1
// servers send no DISCONNECT), and waits for the connection goroutines to
// end; each removes its client from the broker as it ends. The broker's
// closeClients is not called: Clients.GetByListener takes its read lock
// twice and deadlocks against a client removing itself at the same moment,
// and closing the connections does all it would.
func (l *listener) Close(listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	l.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	<-l.served
	l.wg.Wait()
}

// writeDeadlineConn sets a fresh write deadline before every write, so a
// write to a peer that stopped reading fails after timeout instead of
// blocking for ever (the broker's keepalive handling resets deadlines with
// SetDeadline, so one set at accept would not last). TLS then refuses
// further writes and the broker drops the client.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c writeDeadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
