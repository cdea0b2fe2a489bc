package main

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/pki"
)

// dialLeaf connects to addr with conf and returns the server's leaf.
func dialLeaf(addr string, conf *tls.Config) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// TestServeTLS connects to both listeners with what clients offer: a
// default client gets the ECDSA chain; a TLS 1.2 client with only
// ECDHE-RSA AES-GCM suites, and a TLS 1.3 client with only RSA-PSS
// signatures (openssl), get the RSA-2048 chain, and both verify against
// the CA file; TLS 1.1 and CBC-only TLS 1.2 clients are refused.
func TestServeTLS(t *testing.T) {
	s := startServer(t, "--hostname", "dps.usher.test", "--hub-hostname", "hub.usher.test")
	roots := pool(t, s.Info.CAFile)
	client := func(min, max uint16, suites ...uint16) *tls.Config {
		return &tls.Config{RootCAs: roots, ServerName: "dps.usher.test", MinVersion: min, MaxVersion: max, CipherSuites: suites}
	}
	for _, l := range []struct{ name, addr string }{{"https", s.Info.HTTPSAddr}, {"mqtt", s.Info.MQTTAddr}} {
		for _, tc := range []struct {
			name   string
			client *tls.Config
			want   x509.PublicKeyAlgorithm // 0: refused
		}{
			{"ECDSA/default client", client(0, 0), x509.ECDSA},
			{"RSA/TLS 1.2 ECDHE-RSA AES-GCM only", client(tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384), x509.RSA},
			{"refused/TLS 1.1", client(tls.VersionTLS11, tls.VersionTLS11), 0},
			{"refused/TLS 1.2 CBC only", client(tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA), 0},
			{"refused/TLS 1.2 3DES only", client(tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA), 0},
		} {
			t.Run(l.name+"/"+tc.name, func(t *testing.T) {
				leaf, err := dialLeaf(l.addr, tc.client)
				if tc.want == 0 {
					if err == nil {
						t.Fatalf("connected and got a %v certificate", leaf.PublicKeyAlgorithm)
					}
					return
				}
				if err != nil {
					t.Fatal(err) // the chain is verified against the CA file
				}
				if leaf.PublicKeyAlgorithm != tc.want {
					t.Errorf("got a %v certificate, want %v", leaf.PublicKeyAlgorithm, tc.want)
				}
				if k, ok := leaf.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() != 2048 {
					t.Errorf("RSA key of %d bits, want 2048", k.N.BitLen())
				}
			})
		}
		t.Run(l.name+"/RSA/TLS 1.3 RSA-PSS only (openssl)", func(t *testing.T) {
			opensslRSAPSS(t, l.addr, s.Info.CAFile)
		})
	}
	t.Run("https/RSA client is served", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: client(tls.VersionTLS12, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)}}
		resp, err := c.Get("https://" + s.Info.HTTPSAddr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz = %d", resp.StatusCode)
		}
	})
}

// opensslRSAPSS connects with openssl s_client offering TLS 1.3 and only
// RSA-PSS signature schemes, which Go's client cannot restrict, and checks
// that the chain verifies against caFile with an RSA-2048 leaf.
func opensslRSAPSS(t *testing.T, addr, caFile string) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "s_client", "-connect", addr, "-servername", "dps.usher.test", "-tls1_3",
		"-sigalgs", "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512", "-CAfile", caFile, "-verify_return_error", "-verify_hostname", "dps.usher.test")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil || !strings.Contains(text, "Verify return code: 0 (ok)") {
		t.Fatalf("openssl s_client: %v\n%s", err, text)
	}
	for _, want := range []string{"Protocol: TLSv1.3", "Server public key is 2048 bit", "Peer signature type: RSA-PSS"} {
		if !strings.Contains(strings.ReplaceAll(text, "Protocol  :", "Protocol:"), want) {
			t.Errorf("openssl s_client output lacks %q:\n%s", want, text)
		}
	}
}

// TestServeAddsRSAToAnOldDataDir starts on a data directory as versions
// before the RSA chain left it (ECDSA material only): the server adds the
// RSA pair, keeps the ECDSA CA and certificate, and serves RSA clients.
func TestServeAddsRSAToAnOldDataDir(t *testing.T) {
	dir := t.TempDir()
	serveOnce(t, dir)
	tlsDir := filepath.Join(dir, "tls")
	caPEM := readTestFile(t, filepath.Join(tlsDir, pki.CAFile))
	block, _ := pem.Decode(caPEM)
	ecRoot := pem.EncodeToMemory(block)
	if err := os.WriteFile(filepath.Join(tlsDir, pki.CAFile), ecRoot, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{pki.RSACAFile, pki.RSACAKeyFile, pki.RSAServerFile, pki.RSAServerKeyFile} {
		if err := os.Remove(filepath.Join(tlsDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	ecLeaf := readTestFile(t, filepath.Join(tlsDir, pki.ServerFile))

	info := serveOnce(t, dir)
	after := readTestFile(t, info.CAFile)
	if !strings.HasPrefix(string(after), string(ecRoot)) || strings.Count(string(after), "BEGIN CERTIFICATE") != 2 {
		t.Errorf("the CA file is not the old ECDSA root followed by the new RSA root:\n%s", after)
	}
	if string(readTestFile(t, filepath.Join(tlsDir, pki.ServerFile))) != string(ecLeaf) {
		t.Errorf("the ECDSA server certificate was re-issued")
	}
	s := startServerIn(t, dir)
	leaf, err := dialLeaf(s.Info.HTTPSAddr, &tls.Config{RootCAs: pool(t, s.Info.CAFile), ServerName: "localhost", MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}})
	if err != nil || leaf.PublicKeyAlgorithm != x509.RSA {
		t.Fatalf("RSA client: %v %v", leaf, err)
	}
	// The old root alone still verifies default clients.
	old := x509.NewCertPool()
	old.AppendCertsFromPEM(ecRoot)
	if _, err := dialLeaf(s.Info.HTTPSAddr, &tls.Config{RootCAs: old, ServerName: "localhost"}); err != nil {
		t.Errorf("a client that trusts only the old ECDSA root: %v", err)
	}
}

// TestServeFileModes checks every file `usher serve` writes in its data
// directory: directories 0700, keys and the database (which holds the
// console secret and every device key) 0600, certificates 0644 at most;
// and that loosened modes are tightened at the next start.
func TestServeFileModes(t *testing.T) {
	dir := t.TempDir()
	s := startServerIn(t, dir)
	// Use the store so SQLite's -wal and -shm files exist.
	s.mustUsher(t, "enrollment", "create", "--enrollment-id", "modes")
	checkDataDirModes(t, dir)

	for _, p := range []string{dir, filepath.Join(dir, "tls"), filepath.Join(dir, "tls", pki.CAKeyFile), filepath.Join(dir, "tls", pki.RSAServerKeyFile)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	serveOnce(t, dir)
	checkDataDirModes(t, dir)
}

func checkDataDirModes(t *testing.T, dir string) {
	t.Helper()
	seen := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		name, mode := d.Name(), st.Mode().Perm()
		var want os.FileMode
		switch {
		case d.IsDir():
			want = 0o700
		case strings.HasSuffix(name, ".pem") && !strings.Contains(name, "key"):
			want = 0o644 // certificates are public
		default:
			want = 0o600 // keys, usher.db, usher.db-wal, usher.db-shm
		}
		if mode != want {
			t.Errorf("%s has mode %o, want %o", path, mode, want)
		}
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"usher.db", "tls/" + pki.CAKeyFile, "tls/" + pki.ServerKeyFile, "tls/" + pki.RSACAKeyFile, "tls/" + pki.RSAServerKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	t.Logf("%d entries checked", seen)
}

func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
