package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/pki"
)

// testCert is a server certificate for dps.usher.test, hub.usher.test and
// one name of its own that tells it apart, with the CA that signed it.
type testCert struct {
	tag  string
	ca   pki.PEM
	cert pki.PEM
}

func mustTestCert(t *testing.T, tag string) testCert {
	t.Helper()
	ca, err := pki.NewCA(pki.ECDSA, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.IssueServer(ca, []string{"dps.usher.test", "hub.usher.test", tag + ".usher.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return testCert{tag: tag, ca: ca, cert: cert}
}

// replaceFile writes data next to path and renames it over path, as
// certificate renewal tools do.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// tagOf is the distinguishing name of the certificate served at addr.
func tagOf(t *testing.T, addr string) string {
	t.Helper()
	leaf, err := dialLeaf(addr, &tls.Config{InsecureSkipVerify: true}) // which leaf, not whether it verifies
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	for _, n := range leaf.DNSNames {
		if tag, ok := strings.CutSuffix(n, ".usher.test"); ok && tag != "dps" && tag != "hub" {
			return tag
		}
	}
	return "serial:" + leaf.SerialNumber.String()
}

// waitServed waits until both listeners serve the certificate tagged want.
func waitServed(t *testing.T, s *testServer, want string, within time.Duration, logs *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, addr := range []string{s.Info.HTTPSAddr, s.Info.MQTTAddr} {
		for {
			got := tagOf(t, addr)
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s serves %s, want %s within %v; logs:\n%s", addr, got, want, within, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestServeReloadsTLSFiles serves --tls-cert/--tls-key, renews them by
// renaming new files over the old, and sees new connections on HTTPS and
// MQTT get the new certificate within the poll interval; a renewal with a
// mismatched key is logged and the previous certificate kept.
func TestServeReloadsTLSFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	a, b, c := mustTestCert(t, "a"), mustTestCert(t, "b"), mustTestCert(t, "c")
	replaceFile(t, certFile, a.cert.Cert)
	replaceFile(t, keyFile, a.cert.Key)
	const poll = 50 * time.Millisecond
	s, logs := startServerEnv(t, env{timeouts: timeouts{certPoll: poll}}, "--hostname", "dps.usher.test", "--hub-hostname", "hub.usher.test", "--tls-cert", certFile, "--tls-key", keyFile)
	waitServed(t, s, "a", 0, logs)

	// A verifying client trusting only a's CA.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(a.ca.Cert)
	if _, err := dialLeaf(s.Info.HTTPSAddr, &tls.Config{RootCAs: roots, ServerName: "dps.usher.test"}); err != nil {
		t.Fatalf("verified HTTPS dial: %v", err)
	}

	replaceFile(t, certFile, b.cert.Cert)
	replaceFile(t, keyFile, b.cert.Key)
	waitServed(t, s, "b", 5*time.Second, logs)
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}

	// c's certificate with a's key: refused, b kept.
	replaceFile(t, keyFile, a.cert.Key)
	replaceFile(t, certFile, c.cert.Cert)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "still serving the previous one") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning 5s after a mismatched pair was written; logs:\n%s", logs.String())
		}
		time.Sleep(poll)
	}
	waitServed(t, s, "b", 0, logs)
	if !strings.Contains(logs.String(), "private key does not match public key") {
		t.Errorf("the warning does not say why:\n%s", logs.String())
	}
	// The renewal completes.
	replaceFile(t, keyFile, c.cert.Key)
	waitServed(t, s, "c", 5*time.Second, logs)
}

// TestServeReloadsTLSOnHangup checks the SIGHUP path (the channel that
// stands in for the process's SIGHUP): with the poll interval out of reach,
// renewed --tls-cert files are served only after the hangup; generated
// material re-issued by pki on hangup is served too.
func TestServeReloadsTLSOnHangup(t *testing.T) {
	t.Run("files", func(t *testing.T) {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		a, b := mustTestCert(t, "a"), mustTestCert(t, "b")
		replaceFile(t, certFile, a.cert.Cert)
		replaceFile(t, keyFile, a.cert.Key)
		hangup := make(chan os.Signal, 1)
		s, logs := startServerEnv(t, env{timeouts: timeouts{certPoll: time.Hour}, hangup: hangup}, "--hostname", "dps.usher.test", "--hub-hostname", "hub.usher.test", "--tls-cert", certFile, "--tls-key", keyFile)
		replaceFile(t, certFile, b.cert.Cert)
		replaceFile(t, keyFile, b.cert.Key)
		waitServed(t, s, "a", 0, logs)
		hangup <- syscall.SIGHUP
		waitServed(t, s, "b", 5*time.Second, logs)
	})
	t.Run("generated", func(t *testing.T) {
		hangup := make(chan os.Signal, 1)
		s, logs := startServerEnv(t, env{hangup: hangup}, "--hostname", "dps.usher.test", "--hub-hostname", "hub.usher.test")
		before := tagOf(t, s.Info.HTTPSAddr)
		tlsDir := filepath.Join(s.DataDir, "tls")
		for _, f := range []string{pki.ServerFile, pki.ServerKeyFile} {
			if err := os.Remove(filepath.Join(tlsDir, f)); err != nil {
				t.Fatal(err)
			}
		}
		hangup <- syscall.SIGHUP
		deadline := time.Now().Add(5 * time.Second)
		for tagOf(t, s.Info.HTTPSAddr) == before {
			if time.Now().After(deadline) {
				t.Fatalf("still serving %s 5s after the hangup; logs:\n%s", before, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		after := tagOf(t, s.Info.HTTPSAddr)
		waitServed(t, s, after, 5*time.Second, logs)
		// The re-issued certificate chains to the same CA file.
		if _, err := dialLeaf(s.Info.MQTTAddr, &tls.Config{RootCAs: pool(t, s.Info.CAFile), ServerName: "hub.usher.test"}); err != nil {
			t.Errorf("verified MQTT dial after the reload: %v", err)
		}
	})
}
