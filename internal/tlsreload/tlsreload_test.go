package tlsreload

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/pki"
)

// pair is a server certificate for one host name and the CA that signed it.
type pair struct {
	name string
	ca   pki.PEM
	cert pki.PEM
}

func mustPair(t testing.TB, alg pki.Algorithm, name string) pair {
	t.Helper()
	ca, err := pki.NewCA(alg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.IssueServer(ca, []string{name}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return pair{name: name, ca: ca, cert: cert}
}

// write puts p's chain and key at certFile and keyFile by writing new files
// and renaming them over the old ones, as certbot and friends do.
func (p pair) write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{certFile, p.cert.Cert}, {keyFile, p.cert.Key}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// syncBuffer is a log sink safe for the watcher goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve runs a TLS listener on 127.0.0.1:0 with r's certificates and
// returns its address.
func serve(t testing.TB, r *Reloader) string {
	t.Helper()
	conf := pki.ServerConfig(nil)
	r.Apply(conf)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Read(make([]byte, 1))
			}()
		}
	}()
	return ln.Addr().String()
}

// served dials addr without verifying and returns the leaf's host name.
func served(t testing.TB, addr string, conf *tls.Config) string {
	t.Helper()
	if conf == nil {
		conf = &tls.Config{}
	}
	conf.InsecureSkipVerify = true // the test looks at which leaf it got
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, conf)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	for _, n := range leaf.DNSNames {
		if n != "localhost" { // pki adds it to every certificate
			return n
		}
	}
	t.Fatalf("leaf without a DNS name of its own: %v", leaf.DNSNames)
	return ""
}

func TestReload(t *testing.T) {
	a := mustPair(t, pki.ECDSA, "a.usher.test")
	b := mustPair(t, pki.ECDSA, "b.usher.test")
	other := mustPair(t, pki.ECDSA, "other.usher.test")
	for _, tc := range []struct {
		name     string
		next     func(t *testing.T, certFile, keyFile string)
		want     string // host name served afterwards
		wantErr  string // in Reload's error and the warning
		wantWarn bool
	}{
		{"ok/new pair", func(t *testing.T, c, k string) { b.write(t, c, k) }, "b.usher.test", "", false},
		{"kept/unparsable certificate", func(t *testing.T, c, k string) {
			b.write(t, c, k)
			if err := os.WriteFile(c, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "a.usher.test", "TLS certificate", true},
		{"kept/key of another certificate", func(t *testing.T, c, k string) {
			b.write(t, c, k)
			if err := os.WriteFile(k, other.cert.Key, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "a.usher.test", "private key does not match public key", true},
		{"kept/key file missing", func(t *testing.T, c, k string) {
			if err := os.Remove(k); err != nil {
				t.Fatal(err)
			}
		}, "a.usher.test", "no such file", true},
		{"kept/empty certificate file", func(t *testing.T, c, k string) {
			if err := os.WriteFile(c, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "a.usher.test", "TLS certificate", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			a.write(t, certFile, keyFile)
			logs := &syncBuffer{}
			r, err := New(FileLoader(certFile, keyFile), Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			addr := serve(t, r)
			if got := served(t, addr, nil); got != "a.usher.test" {
				t.Fatalf("before: served %s, want a.usher.test", got)
			}
			tc.next(t, certFile, keyFile)
			err = r.Reload()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Reload: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Reload error = %v, want one containing %q", err, tc.wantErr)
			}
			if got := served(t, addr, nil); got != tc.want {
				t.Errorf("after: served %s, want %s", got, tc.want)
			}
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "still serving the previous one")
			if warned != tc.wantWarn {
				t.Errorf("warning logged = %v, want %v; logs:\n%s", warned, tc.wantWarn, logs)
			}
		})
	}
}

func TestNewRefusesBadMaterial(t *testing.T) {
	dir := t.TempDir()
	a := mustPair(t, pki.ECDSA, "a.usher.test")
	b := mustPair(t, pki.ECDSA, "b.usher.test")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, a.cert.Cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, b.cert.Key, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		load Loader
		want string
	}{
		{"refused/mismatched key", FileLoader(certFile, keyFile), "private key does not match"},
		{"refused/missing file", FileLoader(filepath.Join(dir, "nope.crt"), keyFile), "no such file"},
		{"refused/no certificate", func() ([]tls.Certificate, error) { return nil, nil }, "no certificate"},
		{"refused/no key", func() ([]tls.Certificate, error) {
			return []tls.Certificate{{Certificate: [][]byte{{1}}}}, nil
		}, "without its chain or key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.load, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestWatch replaces the files by renaming new ones over them and expects
// new connections to get the new certificate within a few intervals; a
// bad pair written afterwards leaves it in place.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a := mustPair(t, pki.ECDSA, "a.usher.test")
	b := mustPair(t, pki.RSA, "b.usher.test")
	a.write(t, certFile, keyFile)
	logs := &syncBuffer{}
	const interval = 20 * time.Millisecond
	r, err := New(FileLoader(certFile, keyFile), Options{Files: []string{certFile, keyFile}, Interval: interval, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Watch(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := serve(t, r)

	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := served(t, addr, nil)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("served %s 5s after the change, want %s; logs:\n%s", got, want, logs)
			}
			time.Sleep(interval)
		}
	}
	waitFor("a.usher.test")
	b.write(t, certFile, keyFile)
	waitFor("b.usher.test")

	// A key that does not match: logged, b kept.
	if err := os.WriteFile(keyFile+".new", a.cert.Key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(keyFile+".new", keyFile); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "still serving the previous one") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning 5s after a mismatched key was written; logs:\n%s", logs)
		}
		time.Sleep(interval)
	}
	if got := served(t, addr, nil); got != "b.usher.test" {
		t.Errorf("after a bad key: served %s, want b.usher.test", got)
	}
	// The renewal completes: the matching certificate arrives.
	a.write(t, certFile, keyFile)
	waitFor("a.usher.test")
}

// TestGetCertificatePicksWhatTheClientSupports serves an ECDSA and an RSA
// certificate, as the generated TLS material does: a client that only
// takes RSA gets the RSA one, every other client the first.
func TestGetCertificatePicksWhatTheClientSupports(t *testing.T) {
	ec := mustPair(t, pki.ECDSA, "ec.usher.test")
	rsa := mustPair(t, pki.RSA, "rsa.usher.test")
	load := func() ([]tls.Certificate, error) {
		var out []tls.Certificate
		for _, p := range []pair{ec, rsa} {
			c, err := tls.X509KeyPair(p.cert.Cert, p.cert.Key)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
	r, err := New(load, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	for _, tc := range []struct {
		name   string
		client *tls.Config
		want   string
	}{
		{"ECDSA/default client", &tls.Config{}, "ec.usher.test"},
		{"RSA/TLS 1.2 ECDHE-RSA only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, "rsa.usher.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := served(t, addr, tc.client); got != tc.want {
				t.Errorf("served %s, want %s", got, tc.want)
			}
		})
	}
	if n := len(r.Certificates()); n != 2 {
		t.Errorf("Certificates() holds %d, want 2", n)
	}
	var roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(ec.ca.Cert)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "ec.usher.test"})
	if err != nil {
		t.Fatalf("verified dial: %v", err)
	}
	c.Close()
}

// TestRefresh reloads on its own at the Refresh interval: material a loader
// re-issues (or reads from a shared store) is picked up without a signal.
func TestRefresh(t *testing.T) {
	a := mustPair(t, pki.ECDSA, "a.usher.test")
	b := mustPair(t, pki.ECDSA, "b.usher.test")
	var mu sync.Mutex
	current := a
	load := func() ([]tls.Certificate, error) {
		mu.Lock()
		defer mu.Unlock()
		c, err := tls.X509KeyPair(current.cert.Cert, current.cert.Key)
		return []tls.Certificate{c}, err
	}
	logs := &syncBuffer{}
	r, err := New(load, Options{Refresh: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Watch(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := serve(t, r)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "changed=false") {
		if time.Now().After(deadline) {
			t.Fatalf("no unchanged reload logged at debug level; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "level=INFO") {
		t.Errorf("a reload that changed nothing was logged at info level:\n%s", logs)
	}
	mu.Lock()
	current = b
	mu.Unlock()
	for served(t, addr, nil) != "b.usher.test" {
		if time.Now().After(deadline) {
			t.Fatalf("still serving a 5s after the loader changed; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "level=INFO msg=\"TLS certificate reloaded\"") {
		t.Errorf("the change was not logged at info level:\n%s", logs)
	}
}
