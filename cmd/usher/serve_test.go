package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestServeFirstStart(t *testing.T) {
	s := startServer(t)
	t.Run("banner", func(t *testing.T) {
		for _, want := range []string{"ID scope:", s.Info.IDScope, "HTTPS:", "CA file:", "HostName=localhost;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey="} {
			if !strings.Contains(s.Banner, want) {
				t.Errorf("banner lacks %q:\n%s", want, s.Banner)
			}
		}
	})
	t.Run("id scope shape", func(t *testing.T) {
		if !regexp.MustCompile(`^0ne[0-9A-F]{8}$`).MatchString(s.Info.IDScope) {
			t.Errorf("ID scope %q is not 0ne + 8 upper-case hex digits", s.Info.IDScope)
		}
	})
	t.Run("info json keys", func(t *testing.T) {
		out := s.mustUsher(t, "info", "--json")
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"idScope", "hostName", "httpsAddr", "mqttAddr", "serviceConnectionString", "hubHostName", "hubConnectionString", "caFile"} {
			if v, _ := m[k].(string); v == "" {
				t.Errorf("usher info --json: %q is missing or empty in %s", k, out)
			}
		}
		if !strings.Contains(m["hubConnectionString"].(string), "SharedAccessKeyName=iothubowner;") {
			t.Errorf("hub connection string: %v", m["hubConnectionString"])
		}
	})
	t.Run("permissions", func(t *testing.T) {
		for path, want := range map[string]os.FileMode{
			s.DataDir:                            0o700,
			filepath.Join(s.DataDir, "usher.db"): 0o600,
			filepath.Join(s.DataDir, "tls", "ca-key.pem"):     0o600,
			filepath.Join(s.DataDir, "tls", "server-key.pem"): 0o600,
		} {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != want {
				t.Errorf("%s has mode %o, want %o", path, got, want)
			}
		}
	})
	t.Run("healthz over TLS with the generated CA", func(t *testing.T) {
		c := caClient(t, s.Info.CAFile)
		resp, err := c.Get("https://" + s.Info.HTTPSAddr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/healthz = %d", resp.StatusCode)
		}
	})
	t.Run("server certificate names", func(t *testing.T) {
		leaf := serverLeaf(t, s.DataDir)
		names := append([]string{}, leaf.DNSNames...)
		for _, ip := range leaf.IPAddresses {
			names = append(names, ip.String())
		}
		slices.Sort(names)
		if want := []string{"127.0.0.1", "::1", "localhost"}; !slices.Equal(names, want) {
			t.Errorf("SANs = %v, want %v", names, want)
		}
		if leaf.PublicKeyAlgorithm != x509.ECDSA {
			t.Errorf("server key is %v, want ECDSA P-256", leaf.PublicKeyAlgorithm)
		}
	})
}

func TestRestartReusesIdentityAndReissuesOnHostChange(t *testing.T) {
	dir := t.TempDir()
	first := serveOnce(t, dir)
	caBefore, _ := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	leafBefore := serverLeaf(t, dir)

	second := serveOnce(t, dir)
	if second.IDScope != first.IDScope || second.ServiceConnectionString != first.ServiceConnectionString || second.HubConnectionString != first.HubConnectionString {
		t.Errorf("a restart changed the identity:\nfirst  %+v\nsecond %+v", first, second)
	}
	if !serverLeaf(t, dir).Equal(leafBefore) {
		t.Errorf("a restart with the same host names re-issued the server certificate")
	}

	third := serveOnce(t, dir, "--hostname", "usher.example.test", "--hostname", "10.1.2.3", "--hub-hostname", "hub.example.test")
	caAfter, _ := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	if string(caAfter) != string(caBefore) {
		t.Errorf("changing host names replaced the CA")
	}
	leaf := serverLeaf(t, dir)
	if leaf.Equal(leafBefore) {
		t.Fatalf("changing host names did not re-issue the server certificate")
	}
	if err := leaf.VerifyHostname("usher.example.test"); err != nil {
		t.Errorf("new certificate: %v", err)
	}
	if err := leaf.VerifyHostname("hub.example.test"); err != nil {
		t.Errorf("the certificate must cover --hub-hostname: %v", err)
	}
	if err := leaf.VerifyHostname("10.1.2.3"); err != nil {
		t.Errorf("new certificate: %v", err)
	}
	if third.HostName != "usher.example.test" || !strings.HasPrefix(third.ServiceConnectionString, "HostName=usher.example.test;") {
		t.Errorf("the first --hostname must be announced: %+v", third)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caAfter)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("re-issued certificate does not chain to the same CA: %v", err)
	}
}

// serveOnce starts the server on dir, reads info, and stops it.
func serveOnce(t *testing.T, dir string, extra ...string) Info {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	args := append([]string{"serve", "--data-dir", dir, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, extra...)
	out, done := startRun(ctx, args, noEnv)
	if _, err := readBanner(out); err != nil {
		t.Fatalf("serve: %v", err)
	}
	info, err := readInfo(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve ended with %v", err)
	}
	return info
}

func TestTLSBringYourOwn(t *testing.T) {
	// Generate a certificate with the server's own PKI in another directory
	// and serve it with --tls-cert/--tls-key.
	other := serveOnce(t, t.TempDir(), "--hostname", "byo.example.test")
	tlsDir := filepath.Dir(other.CAFile)
	s := startServer(t, "--tls-cert", filepath.Join(tlsDir, "server.pem"), "--tls-key", filepath.Join(tlsDir, "server-key.pem"))
	conn, err := tls.Dial("tcp", s.Info.HTTPSAddr, &tls.Config{RootCAs: pool(t, other.CAFile), ServerName: "byo.example.test"})
	if err != nil {
		t.Fatalf("the server does not serve the given certificate: %v", err)
	}
	conn.Close()
	if s.Info.CAFile != "" {
		t.Errorf("with --tls-cert, caFile should be empty (the operator's CA applies), got %q", s.Info.CAFile)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "tls")); !os.IsNotExist(err) {
		t.Errorf("with --tls-cert no TLS material should be generated (%v)", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	out, done := startRun(ctx, []string{"serve", "--data-dir", dir, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, noEnv)
	if _, err := readBanner(out); err != nil {
		t.Fatal(err)
	}
	info, _ := readInfo(context.Background(), dir)
	c := caClient(t, info.CAFile)
	resp, err := c.Get("https://" + info.HTTPSAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel() // what SIGINT/SIGTERM do through signal.NotifyContext
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop")
	}
	if _, err := net.DialTimeout("tcp", info.HTTPSAddr, time.Second); err == nil {
		t.Errorf("the listener is still open after shutdown")
	}
}

func caClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(t, caFile), ServerName: "localhost"}}}
}

func pool(t *testing.T, caFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return p
}

func serverLeaf(t *testing.T, dataDir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "tls", "server.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
