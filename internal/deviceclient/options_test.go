package deviceclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
)

func TestRegisterCallerDialerAndTLSConfig(t *testing.T) {
	f := newFakeDPS(t, step{202, "1", assigning(testOp)}, step{200, "", assignedBody("dev1")})
	opts := f.options("dev1")
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	opts.RootCAs = nil // TLSConfig replaces it
	opts.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "example.com", MinVersion: tls.VersionTLS13}
	var dials atomic.Int32
	opts.Dialer = &net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9)},
		Control: func(string, string, syscall.RawConn) error {
			dials.Add(1)
			return nil
		},
	}
	if _, err := Register(context.Background(), opts); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("the caller's dialer opened %d connections, want 1", got)
	}
}

func TestRegisterSharedHTTPClient(t *testing.T) {
	f := newFakeDPS(t,
		step{202, "1", assigning(testOp)}, step{200, "", assignedBody("dev1")},
		step{202, "1", assigning(testOp)}, step{200, "", assignedBody("dev2")})
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	for _, id := range []string{"dev1", "dev2"} {
		opts := f.options(id)
		opts.HTTPClient = &http.Client{Transport: tr}
		if _, err := Register(context.Background(), opts); err != nil {
			t.Fatalf("Register %s: %v", id, err)
		}
	}
	if got := f.conns.Load(); got != 1 {
		t.Errorf("two registrations over a shared client opened %d connections, want 1", got)
	}
}
