package mqttapi

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/dps"
)

func TestNewRefusesIncompleteOptions(t *testing.T) {
	reg := dps.NewRegistrar(nil, dps.RegistrarOptions{})
	withCert := &tls.Config{Certificates: []tls.Certificate{{}}}
	tests := []struct {
		name string
		opts Options
	}{
		{"err/no TLS", Options{Registrar: reg}},
		{"err/TLS without a certificate", Options{Registrar: reg, TLS: &tls.Config{}}},
		{"err/no registrar", Options{TLS: withCert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}

func TestServeReturnsWhenTheListenerFails(t *testing.T) {
	e, ln := newUnstartedEnv(t)
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(context.Background(), ln) }()
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestServeStopsClosesConnections(t *testing.T) {
	e, ln := newUnstartedEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	const regID = "stopping-dev"
	c := e.dialRaw(t)
	if rc := c.connect(regID, e.username(regID), e.token(t, e.idScope, regID, e.enrollDevice(t, regID, dps.Enabled), time.Now().Add(time.Hour)), 0); rc != 0 {
		t.Fatalf("CONNACK = %d", rc)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := c.read(5*time.Second, 4); err == nil {
		t.Error("the connection is still open")
	}
	if conn, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		conn.Close()
		t.Error("the listener still accepts")
	}
}
