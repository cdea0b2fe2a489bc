package pki

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// mustEnsure is Ensure that fails the test on error.
func mustEnsure(t *testing.T, dir string, names []string, now time.Time) Material {
	t.Helper()
	m, err := Ensure(dir, names, now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// certsIn parses every certificate of a PEM file.
func certsIn(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return out
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEnsureFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	m := mustEnsure(t, dir, []string{"dps.usher.test"}, t0)
	if !m.Reissued {
		t.Errorf("first start did not report issuing")
	}
	roots := certsIn(t, m.CAFile)
	if len(roots) != 2 || roots[0].PublicKeyAlgorithm != x509.ECDSA || roots[1].PublicKeyAlgorithm != x509.RSA || !roots[0].IsCA || !roots[1].IsCA {
		t.Fatalf("the CA file holds %d certificates, want the ECDSA root then the RSA root", len(roots))
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(readFile(t, m.CAFile))
	for _, c := range []struct {
		file string
		alg  x509.PublicKeyAlgorithm
		root *x509.Certificate
	}{{m.CertFile, x509.ECDSA, roots[0]}, {m.RSACertFile, x509.RSA, roots[1]}} {
		chain := certsIn(t, c.file)
		leaf := chain[0]
		if leaf.PublicKeyAlgorithm != c.alg || len(chain) != 2 || !chain[1].Equal(c.root) {
			t.Errorf("%s: leaf %v with %d certificates, want %v then its root", c.file, leaf.PublicKeyAlgorithm, len(chain), c.alg)
		}
		if k, ok := leaf.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() != 2048 {
			t.Errorf("the RSA leaf has %d bits, want 2048", k.N.BitLen())
		}
		for _, name := range []string{"dps.usher.test", "localhost", "127.0.0.1"} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
				t.Errorf("%s for %s: %v", c.file, name, err)
			}
		}
	}
	if _, err := m.Certificates(); err != nil {
		t.Errorf("Certificates: %v", err)
	}
	checkModes(t, dir)
}

// checkModes checks that dir is 0700, every key in it 0600 and every
// certificate 0644.
func checkModes(t *testing.T, dir string) {
	t.Helper()
	want := map[string]os.FileMode{
		".": 0o700, CAFile: 0o644, CAKeyFile: 0o600, ServerFile: 0o644, ServerKeyFile: 0o600,
		RSACAFile: 0o644, RSACAKeyFile: 0o600, RSAServerFile: 0o644, RSAServerKeyFile: 0o600,
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want)-1 {
		t.Errorf("the TLS directory holds %d files, want %d", len(entries), len(want)-1)
	}
	for name, mode := range want {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if got := st.Mode().Perm(); got != mode {
			t.Errorf("%s has mode %o, want %o", name, got, mode)
		}
	}
}

func TestEnsureLaterStarts(t *testing.T) {
	dir := t.TempDir()
	names := []string{"dps.usher.test"}
	first := mustEnsure(t, dir, names, t0)
	files := []string{CAFile, CAKeyFile, ServerFile, ServerKeyFile, RSACAFile, RSACAKeyFile, RSAServerFile, RSAServerKeyFile}
	snapshot := func() map[string][]byte {
		s := map[string][]byte{}
		for _, f := range files {
			s[f] = readFile(t, filepath.Join(dir, f))
		}
		return s
	}
	before := snapshot()

	t.Run("same names reuse everything", func(t *testing.T) {
		m := mustEnsure(t, dir, names, t0.Add(24*time.Hour))
		if m.Reissued {
			t.Errorf("a restart with the same names re-issued")
		}
		for f, b := range snapshot() {
			if !bytes.Equal(b, before[f]) {
				t.Errorf("%s changed", f)
			}
		}
	})
	t.Run("new names re-issue both server certificates from the same CAs", func(t *testing.T) {
		m := mustEnsure(t, dir, []string{"dps.usher.test", "hub.usher.test"}, t0.Add(48*time.Hour))
		if !m.Reissued {
			t.Errorf("Reissued is false")
		}
		after := snapshot()
		for _, f := range []string{CAFile, CAKeyFile, RSACAFile, RSACAKeyFile} {
			if !bytes.Equal(after[f], before[f]) {
				t.Errorf("%s changed", f)
			}
		}
		for _, f := range []string{ServerFile, RSAServerFile} {
			leaf := certsIn(t, filepath.Join(dir, f))[0]
			if err := leaf.VerifyHostname("hub.usher.test"); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		if first.CAFile != m.CAFile {
			t.Errorf("the CA file moved from %s to %s", first.CAFile, m.CAFile)
		}
	})
	t.Run("near expiry re-issues", func(t *testing.T) {
		if m := mustEnsure(t, dir, []string{"dps.usher.test", "hub.usher.test"}, t0.Add(serverLifetime-renewBefore/2)); !m.Reissued {
			t.Errorf("a certificate near expiry was kept")
		}
	})
}

// TestEnsureAddsRSAToAnECDSADirectory starts on a directory written before
// the RSA pair existed: the ECDSA CA and certificate stay, the RSA pair is
// added and the CA file gains the RSA root.
func TestEnsureAddsRSAToAnECDSADirectory(t *testing.T) {
	dir := t.TempDir()
	names := []string{"dps.usher.test"}
	der, caKey, err := createCA(ECDSA, t0)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	chain, leafKey, err := issue(ca, caKey, Names(names), t0)
	if err != nil {
		t.Fatal(err)
	}
	caKeyPEM, _ := keyToPEM(caKey)
	oldCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, content := range map[string][]byte{CAFile: oldCA, CAKeyFile: caKeyPEM, ServerFile: chain, ServerKeyFile: leafKey} {
		mode := os.FileMode(0o644)
		if name == CAKeyFile || name == ServerKeyFile {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), content, mode); err != nil {
			t.Fatal(err)
		}
	}
	// Modes loosened by a copy are tightened again.
	for _, p := range []string{dir, filepath.Join(dir, CAKeyFile)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	m := mustEnsure(t, dir, names, t0.Add(time.Hour))
	if !bytes.Equal(readFile(t, m.CertFile), chain) {
		t.Errorf("the ECDSA server certificate was re-issued")
	}
	roots := certsIn(t, m.CAFile)
	if len(roots) != 2 || !roots[0].Equal(ca) || roots[1].PublicKeyAlgorithm != x509.RSA {
		t.Fatalf("the CA file holds %d certificates, want the old ECDSA root then an RSA root", len(roots))
	}
	if leaf := certsIn(t, m.RSACertFile)[0]; leaf.CheckSignatureFrom(roots[1]) != nil {
		t.Errorf("the RSA server certificate is not signed by the RSA root")
	}
	checkModes(t, dir)
	// And the next start changes nothing.
	before := readFile(t, m.CAFile)
	if m := mustEnsure(t, dir, names, t0.Add(2*time.Hour)); m.Reissued || !bytes.Equal(readFile(t, m.CAFile), before) {
		t.Errorf("the start after the upgrade changed the material")
	}
}

func TestEnsureRefusesAKeyWithoutItsCertificate(t *testing.T) {
	dir := t.TempDir()
	mustEnsure(t, dir, nil, t0)
	other := t.TempDir()
	mustEnsure(t, other, nil, t0)
	// The CA file of another directory does not hold this CA key's root.
	if err := os.WriteFile(filepath.Join(dir, CAFile), readFile(t, filepath.Join(other, CAFile)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, nil, t0); err == nil {
		t.Errorf("Ensure accepted a CA file without the CA key's certificate")
	}
}

// handshake runs a TLS handshake between conf and client over a pipe and
// returns the server certificate the client saw.
func handshake(t *testing.T, conf, client *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(a, conf)
		done <- s.Handshake()
		s.Close()
	}()
	c := tls.Client(b, client)
	err := c.Handshake()
	if err != nil {
		b.Close()
		<-done
		return nil, err
	}
	if serr := <-done; serr != nil {
		return nil, serr
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

// insecureSuites are TLS 1.2 suites a weak client may offer alone.
var (
	cbcSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA}
	rc4Suites    = []uint16{tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_RSA_WITH_RC4_128_SHA}
	tripleDES    = []uint16{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}
	rsaKexSuites = []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}
	rsaGCMSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}
)

// TestServerConfig checks which clients ServerConfig serves, and with which
// certificate. Each refused client is first shown to connect to a
// permissive server with the same certificates, so the refusal is the
// configuration's doing, not the client's.
func TestServerConfig(t *testing.T) {
	dir := t.TempDir()
	m := mustEnsure(t, dir, []string{"dps.usher.test"}, time.Now())
	certs, err := m.Certificates()
	if err != nil {
		t.Fatal(err)
	}
	conf := ServerConfig(certs)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(readFile(t, m.CAFile))
	client := func(min, max uint16, suites []uint16) *tls.Config {
		return &tls.Config{RootCAs: pool, ServerName: "dps.usher.test", MinVersion: min, MaxVersion: max, CipherSuites: suites}
	}
	var all []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		all = append(all, s.ID)
	}
	permissive := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS10, CipherSuites: all}

	for _, tc := range []struct {
		name   string
		client *tls.Config
		want   x509.PublicKeyAlgorithm // 0: refused
	}{
		{"ECDSA/default client", client(0, 0, nil), x509.ECDSA},
		{"ECDSA/TLS 1.2 default suites", client(tls.VersionTLS12, tls.VersionTLS12, nil), x509.ECDSA},
		{"RSA/TLS 1.2 with ECDHE-RSA-AES-GCM only", client(tls.VersionTLS12, tls.VersionTLS12, rsaGCMSuites), x509.RSA},
		{"RSA/TLS 1.2 with ECDHE-RSA-CHACHA20 only", client(tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}), x509.RSA},
		{"refused/TLS 1.1", client(tls.VersionTLS11, tls.VersionTLS11, nil), 0},
		{"refused/TLS 1.0", client(tls.VersionTLS10, tls.VersionTLS10, nil), 0},
		{"refused/TLS 1.2 CBC only", client(tls.VersionTLS12, tls.VersionTLS12, cbcSuites), 0},
		{"refused/TLS 1.2 RC4 only", client(tls.VersionTLS12, tls.VersionTLS12, rc4Suites), 0},
		{"refused/TLS 1.2 3DES only", client(tls.VersionTLS12, tls.VersionTLS12, tripleDES), 0},
		{"refused/TLS 1.2 RSA key exchange only", client(tls.VersionTLS12, tls.VersionTLS12, rsaKexSuites), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf, err := handshake(t, conf, tc.client)
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("the handshake succeeded with a %v certificate", leaf.PublicKeyAlgorithm)
				}
				if _, perr := handshake(t, permissive, tc.client); perr != nil {
					t.Fatalf("the client does not connect to a permissive server either (%v): the case proves nothing", perr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if leaf.PublicKeyAlgorithm != tc.want {
				t.Errorf("served a %v certificate, want %v", leaf.PublicKeyAlgorithm, tc.want)
			}
		})
	}
}
