package bench

import (
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Dialers hands out a dialer per connection. Against a loopback IPv4
// target it binds each connection to its own source address in 127.0.0.0/8
// (127.1.0.1, 127.1.0.2, …, 65,024 of them), so that many thousands of
// fresh connections do not exhaust the ephemeral ports of one
// source/destination pair. Fresh connections also set SO_REUSEADDR and
// close with linger 0 (a reset instead of TIME_WAIT): the benchmark then
// leaves no closed connections behind to block later ones.
type Dialers struct {
	spread bool
	fresh  bool
}

// NewDialers returns the dialers for connections to addr (host:port);
// fresh says connections are closed after each device.
func NewDialers(addr string, fresh bool) Dialers {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	spread := err == nil && ip.Is4() && ip.IsLoopback()
	if err != nil && host == "localhost" {
		spread = false // may resolve to ::1; leave the kernel to choose
	}
	return Dialers{spread: spread, fresh: fresh}
}

// Spread reports whether source addresses are spread over 127.0.0.0/8.
func (d Dialers) Spread() bool { return d.spread }

// Dialer is the dialer for connection i.
func (d Dialers) Dialer(i int) *net.Dialer {
	nd := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: -1}
	if d.spread {
		nd.LocalAddr = &net.TCPAddr{IP: SourceAddr(i)}
	}
	if d.fresh {
		nd.Control = freshSocket
	}
	return nd
}

// SourceAddr is the i-th loopback source address: 127.1.0.1 onwards,
// skipping .0 and .255 in the last octet, wrapping after 254×256.
func SourceAddr(i int) net.IP {
	n := i % (254 * 256)
	return net.IPv4(127, 1, byte(n/254), byte(1+n%254))
}

// freshSocket sets SO_REUSEADDR and linger 0 on a socket before it
// connects.
func freshSocket(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = setFreshOptions(fd) })
	if err != nil {
		return err
	}
	return serr
}
