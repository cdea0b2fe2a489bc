// Package pki creates the TLS material Usher serves with on first start:
// two private CAs, each with a server certificate it signs, one ECDSA P-256
// and one RSA-2048, so that clients that only speak RSA (older embedded TLS
// stacks) connect too; the TLS stack picks the one a client supports
// (ServerConfig). Later starts reuse them; a server certificate is
// re-issued from the same CA when the host names change or it nears
// expiry, and a directory made before the RSA pair existed gets it added.
// The CA file holds both roots and is what clients trust
// (NODE_EXTRA_CA_CERTS, an IoT Edge trust_bundle_cert, --ca-file). Keys are
// written 0600 in a 0700 directory.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// File names inside the TLS directory.
const (
	CAFile           = "ca.pem"         // the CAs clients trust: the ECDSA root, then the RSA root
	CAKeyFile        = "ca-key.pem"     // the ECDSA CA's key
	ServerFile       = "server.pem"     // ECDSA server chain (leaf, then CA)
	ServerKeyFile    = "server-key.pem" // its key
	RSACAFile        = "ca-rsa.pem"     // the RSA CA alone
	RSACAKeyFile     = "ca-rsa-key.pem"
	RSAServerFile    = "server-rsa.pem"
	RSAServerKeyFile = "server-rsa-key.pem"
)

// Lifetimes of generated certificates.
const (
	caLifetime     = 20 * 365 * 24 * time.Hour
	serverLifetime = 825 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
)

// rsaBits is the size of generated RSA keys.
const rsaBits = 2048

// Algorithm is the key algorithm of a CA and the server certificates it
// issues.
type Algorithm int

// Algorithms of generated material.
const (
	ECDSA Algorithm = iota // P-256
	RSA                    // 2048 bits
)

func (a Algorithm) String() string {
	if a == RSA {
		return "RSA-2048"
	}
	return "ECDSA P-256"
}

// Material is the TLS material in a directory.
type Material struct {
	CAFile      string // PEM of both CAs, what clients trust
	CertFile    string // ECDSA server certificate chain (leaf, then CA)
	KeyFile     string
	RSACertFile string // RSA server certificate chain (leaf, then CA)
	RSAKeyFile  string
	Reissued    bool // a server certificate was (re)created by this call
}

// Certificates loads the server certificates, ECDSA first: the order
// ServerConfig wants.
func (m Material) Certificates() ([]tls.Certificate, error) {
	var out []tls.Certificate
	for _, f := range [][2]string{{m.CertFile, m.KeyFile}, {m.RSACertFile, m.RSAKeyFile}} {
		c, err := tls.LoadX509KeyPair(f[0], f[1])
		if err != nil {
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Names returns the names a server certificate must cover: the host names
// given, plus localhost, 127.0.0.1 and ::1, de-duplicated and sorted.
func Names(hostnames []string) []string {
	set := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	for _, h := range hostnames {
		set[strings.ToLower(strings.TrimSpace(h))] = true
	}
	delete(set, "")
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Ensure makes sure dir holds both CAs, the CA file with both roots and a
// server certificate of each algorithm for hostnames, creating dir (0700)
// and the files (keys 0600) as needed.
func Ensure(dir string, hostnames []string, now time.Time) (Material, error) {
	m := Material{
		CAFile:      filepath.Join(dir, CAFile),
		CertFile:    filepath.Join(dir, ServerFile),
		KeyFile:     filepath.Join(dir, ServerKeyFile),
		RSACertFile: filepath.Join(dir, RSAServerFile),
		RSAKeyFile:  filepath.Join(dir, RSAServerKeyFile),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return m, fmt.Errorf("create TLS directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return m, fmt.Errorf("TLS directory: %w", err)
	}
	// The ECDSA CA's certificate lives in the CA file (the only file
	// there was before the RSA pair), the RSA CA's in its own.
	ecCA, ecKey, err := ensureCA(m.CAFile, filepath.Join(dir, CAKeyFile), ECDSA, now)
	if err != nil {
		return m, err
	}
	rsaCA, rsaKey, err := ensureCA(filepath.Join(dir, RSACAFile), filepath.Join(dir, RSACAKeyFile), RSA, now)
	if err != nil {
		return m, err
	}
	if err := writeBundle(m.CAFile, ecCA, rsaCA); err != nil {
		return m, err
	}
	// Keys copied in from elsewhere may have lost their modes.
	for _, f := range []string{CAKeyFile, RSACAKeyFile, ServerKeyFile, RSAServerKeyFile} {
		if err := os.Chmod(filepath.Join(dir, f), 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return m, fmt.Errorf("TLS key: %w", err)
		}
	}
	names := Names(hostnames)
	for _, s := range []struct {
		ca            *x509.Certificate
		key           crypto.Signer
		cert, keyFile string
	}{{ecCA, ecKey, m.CertFile, m.KeyFile}, {rsaCA, rsaKey, m.RSACertFile, m.RSAKeyFile}} {
		if current(s.cert, s.ca, names, now) {
			continue
		}
		chain, keyPEM, err := issue(s.ca, s.key, names, now)
		if err != nil {
			return m, err
		}
		if err := writeFile(s.keyFile, 0o600, keyPEM); err != nil {
			return m, err
		}
		if err := writeFile(s.cert, 0o644, chain); err != nil {
			return m, err
		}
		m.Reissued = true
	}
	return m, nil
}

// ensureCA loads the CA whose key is at keyPath and whose certificate is
// one of those at certPath, or creates both when there is no key yet.
func ensureCA(certPath, keyPath string, alg Algorithm, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	if _, err := os.Stat(keyPath); err == nil {
		return loadCA(certPath, keyPath)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	der, key, err := createCA(alg, now)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := keyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	if err := writeFile(keyPath, 0o600, keyPEM); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, 0o644, "CERTIFICATE", der); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// loadCA reads a CA key and picks, among the certificates at certPath, the
// one of that key.
func loadCA(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	return parseCAPEM(certPEM, keyPEM)
}

func parseCAPEM(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	for rest := certPEM; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, nil, errors.New("load CA: no certificate of the CA key")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("load CA: %w", err)
		}
		if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(cert.PublicKey) {
			return cert, key, nil
		}
	}
}

// parseKey reads a PEM private key: PKCS #8 as Usher writes it, or the
// older SEC 1 and PKCS #1 forms.
func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("a %T key is neither ECDSA nor RSA", key)
}

// writeBundle writes both roots to path, ECDSA first, unless it holds
// exactly that already.
func writeBundle(path string, roots ...*x509.Certificate) error {
	var b bytes.Buffer
	for _, c := range roots {
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return err
		}
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b.Bytes()) {
		return nil
	}
	return writeFile(path, 0o644, b.Bytes())
}

func newKey(alg Algorithm) (crypto.Signer, error) {
	if alg == RSA {
		return rsa.GenerateKey(rand.Reader, rsaBits)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func algorithmOf(key crypto.Signer) Algorithm {
	if _, ok := key.(*rsa.PrivateKey); ok {
		return RSA
	}
	return ECDSA
}

func createCA(alg Algorithm, now time.Time) ([]byte, crypto.Signer, error) {
	key, err := newKey(alg)
	if err != nil {
		return nil, nil, err
	}
	name := "Usher CA "
	if alg == RSA {
		name = "Usher RSA CA "
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name + now.UTC().Format("2006-01-02T15:04:05Z"), Organization: []string{"Usher"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: %w", err)
	}
	return der, key, nil
}

// current reports whether the server certificate at path was signed by ca,
// covers exactly names and is not near expiry.
func current(path string, ca *x509.Certificate, names []string, now time.Time) bool {
	raw, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return currentPEM(raw, ca, names, now)
}

func currentPEM(raw []byte, ca *x509.Certificate, names []string, now time.Time) bool {
	block, _ := pem.Decode(raw)
	if block == nil {
		return false
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil || leaf.CheckSignatureFrom(ca) != nil || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	have := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		have = append(have, ip.String())
	}
	sort.Strings(have)
	return slices.Equal(have, names)
}

// issue returns a server certificate chain (leaf, then CA) for names and
// its key, as PEM.
// The leaf's key has the CA's algorithm.
func issue(ca *x509.Certificate, caKey crypto.Signer, names []string, now time.Time) (chain, keyPEM []byte, err error) {
	key, err := newKey(algorithmOf(caKey))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Usher"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create server certificate: %w", err)
	}
	keyPEM, err = keyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	chain = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})...)
	return chain, keyPEM, nil
}

func keyToPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func writePEM(path string, mode os.FileMode, typ string, der []byte) error {
	return writeFile(path, mode, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// writeFile writes atomically: a temporary file renamed over path.
func writeFile(path string, mode os.FileMode, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) // crypto/rand does not fail
	return n
}
