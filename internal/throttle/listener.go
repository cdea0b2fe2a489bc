package throttle

import (
	"net"
	"sync"
)

// LimitListener returns ln holding at most maxConns accepted connections at
// once: a connection accepted while maxConns are open is closed at once
// (before any TLS handshake, so it costs next to nothing) and onReject,
// when set, is called; the client sees the connection reset or closed and
// may retry. Unlike golang.org/x/net/netutil.LimitListener nothing waits in
// a queue for a free slot. maxConns ≤ 0 returns ln unchanged.
func LimitListener(ln net.Listener, maxConns int, onReject func()) net.Listener {
	if maxConns <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, maxConns), onReject: onReject}
}

type limitListener struct {
	net.Listener
	slots    chan struct{} // one element per open connection
	onReject func()
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset: leave no TIME_WAIT behind for a refused client
		}
		c.Close()
		if l.onReject != nil {
			l.onReject()
		}
	}
}

// limitedConn frees its slot on its first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
