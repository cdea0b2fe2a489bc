// Package pki creates the TLS material Usher serves with on first start: a
// private CA and a server certificate it signs (ECDSA P-256). Later starts
// reuse both; the server certificate is re-issued from the same CA when the
// host names change or it nears expiry. The CA file is what clients trust
// (NODE_EXTRA_CA_CERTS, an IoT Edge trust_bundle_cert, --ca-file).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

// Lifetimes of generated certificates.
const (
	caLifetime     = 20 * 365 * 24 * time.Hour
	serverLifetime = 825 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
)

// Material is the TLS material in a directory.
type Material struct {
	CAFile   string // PEM of the CA that signed the server certificate
	CertFile string // server certificate chain (leaf, then CA)
	KeyFile  string
	Reissued bool // the server certificate was (re)created by this call
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

// Ensure makes sure dir holds a CA and a server certificate for hostnames,
// creating dir (0700) and the files (keys 0600) as needed.
func Ensure(dir string, hostnames []string, now time.Time) (Material, error) {
	m := Material{
		CAFile:   filepath.Join(dir, CAFile),
		CertFile: filepath.Join(dir, ServerFile),
		KeyFile:  filepath.Join(dir, ServerKeyFile),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return m, fmt.Errorf("create TLS directory: %w", err)
	}
	ca, caKey, err := ensureCA(dir, now)
	if err != nil {
		return m, err
	}
	names := Names(hostnames)
	if current(m.CertFile, ca, names, now) {
		return m, nil
	}
	if err := issueServer(m, ca, caKey, names, now); err != nil {
		return m, err
	}
	m.Reissued = true
	return m, nil
}

func ensureCA(dir string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	if _, err := os.Stat(certPath); err == nil {
		return loadPair(certPath, keyPath)
	}
	der, key, err := createCA(now)
	if err != nil {
		return nil, nil, err
	}
	if err := writeKey(keyPath, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, 0o644, "CERTIFICATE", der); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func createCA(now time.Time) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Usher CA " + now.UTC().Format("2006-01-02T15:04:05Z"), Organization: []string{"Usher"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
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

func issueServer(m Material, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names []string, now time.Time) error {
	chain, keyPEM, err := issue(ca, caKey, names, now)
	if err != nil {
		return err
	}
	if err := writeFile(m.KeyFile, 0o600, keyPEM); err != nil {
		return err
	}
	return writeFile(m.CertFile, 0o644, chain)
}

// issue returns a server certificate chain (leaf, then CA) for names and
// its key, as PEM.
func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, names []string, now time.Time) (chain, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
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

func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("load CA: the CA key is not an ECDSA key")
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	return cert, key, err
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	b, err := keyToPEM(key)
	if err != nil {
		return err
	}
	return writeFile(path, 0o600, b)
}

func keyToPEM(key *ecdsa.PrivateKey) ([]byte, error) {
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
