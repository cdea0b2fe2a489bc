package mqttapi

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/hub"
)

func TestNewRefusesIncompleteOptions(t *testing.T) {
	reg := dps.NewRegistrar(nil, dps.RegistrarOptions{})
	hubSvc := hub.NewService(nil, hub.Options{HostName: hubHost})
	withCert := &tls.Config{Certificates: []tls.Certificate{{}}}
	tests := []struct {
		name string
		opts Options
	}{
		{"err/no TLS", Options{Registrar: reg}},
		{"err/TLS without a certificate", Options{Registrar: reg, TLS: &tls.Config{}}},
		{"err/no registrar", Options{TLS: withCert}},
		{"err/hub without its bus", Options{TLS: withCert, Registrar: reg, Hub: hubSvc}},
		{"err/bus without a hub", Options{TLS: withCert, Registrar: reg, Bus: hub.NewBus()}},
		{"err/webhook without a hub", Options{TLS: withCert, Registrar: reg, MessageWebhook: "https://hook.example/x"}},
		{"err/webhook is not http", Options{TLS: withCert, Registrar: reg, Hub: hubSvc, Bus: hub.NewBus(), MessageWebhook: "ftp://hook.example/x"}},
		{"err/webhook is not a URL", Options{TLS: withCert, Registrar: reg, Hub: hubSvc, Bus: hub.NewBus(), MessageWebhook: "hook.example"}},
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
