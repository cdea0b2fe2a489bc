package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// Baseline is the bare TLS handshake rate of this machine with the
// target's certificate and client configuration.
type Baseline struct {
	Handshakes          int     `json:"handshakes"`
	Errors              int     `json:"errors"`
	DurationSeconds     float64 `json:"durationSeconds"`
	HandshakesPerSecond float64 `json:"handshakesPerSecond"`
	TLSVersion          string  `json:"tlsVersion"`
	Curve               string  `json:"curve"`
	SessionResumption   bool    `json:"sessionResumption"`
	// Certificate says where the server certificate came from: the data
	// directory's, or a generated ECDSA P-256 one.
	Certificate string `json:"certificate"`
	FirstError  string `json:"firstError,omitempty"`
}

// BaselineOptions configure MeasureBaseline.
type BaselineOptions struct {
	// Cert is the server's certificate and key; nil generates an ECDSA
	// P-256 certificate for the client's ServerName (then trusted by the
	// client in place of its RootCAs).
	Cert *tls.Certificate
	// Client is the client configuration, used as is (cloned).
	Client *tls.Config
	// Count handshakes at Concurrency, each on a fresh connection dialled
	// as the registrations are.
	Count, Concurrency int
	Progress           func(Snapshot)
}

// MeasureBaseline runs a minimal TLS server on loopback (it completes the
// handshake and closes) and opens Count fresh connections to it.
func MeasureBaseline(ctx context.Context, o BaselineOptions) (Baseline, error) {
	client := o.Client.Clone()
	b := Baseline{Certificate: "target's", SessionResumption: client.ClientSessionCache != nil}
	cert := o.Cert
	if cert == nil {
		gen, pool, err := generateCert(client.ServerName)
		if err != nil {
			return b, err
		}
		cert, client.RootCAs, b.Certificate = gen, pool, "generated ECDSA P-256"
	}
	srv := &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return b, fmt.Errorf("baseline server: %w", err)
	}
	var served sync.WaitGroup
	served.Go(func() { serveHandshakes(ln, srv) })
	defer func() {
		ln.Close()
		served.Wait()
	}()

	addr := ln.Addr().String()
	dialers := NewDialers(addr, true)
	var once sync.Once
	out := Run(ctx, Load{
		Total: o.Count, Concurrency: o.Concurrency, Progress: o.Progress,
		Do: func(ctx context.Context, i int) error {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			raw, err := dialers.Dialer(i).DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			conn := tls.Client(raw, client)
			defer conn.Close()
			if err := conn.HandshakeContext(ctx); err != nil {
				return err
			}
			once.Do(func() {
				st := conn.ConnectionState()
				b.TLSVersion, b.Curve = tls.VersionName(st.Version), st.CurveID.String()
			})
			return nil
		},
	})
	b.Handshakes, b.Errors, b.FirstError = out.Succeeded, out.Errors(), out.FirstError
	b.DurationSeconds, b.HandshakesPerSecond = out.Duration.Seconds(), out.PerSecond()
	if out.Succeeded == 0 {
		return b, fmt.Errorf("baseline: no handshake succeeded: %s", out.FirstError)
	}
	return b, nil
}

// serveHandshakes completes the handshake of every connection and closes
// it, until ln is closed.
func serveHandshakes(ln net.Listener, conf *tls.Config) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		conns.Go(func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			_ = tls.Server(c, conf).Handshake()
		})
	}
}

// generateCert makes a self-signed ECDSA P-256 certificate for name, as
// `usher serve` would, and the pool that trusts it.
func generateCert(name string) (*tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if name == "" {
		name = "localhost"
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
