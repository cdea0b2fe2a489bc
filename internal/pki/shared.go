package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"time"
)

// PEM is TLS material held in memory rather than in a directory: what
// several nodes sharing one store keep in it, so that one certificate
// serves them all (docs/decisions/0012-multi-node.md).
type PEM struct {
	Cert []byte `json:"cert"` // a CA certificate, or a server chain (leaf, then CA)
	Key  []byte `json:"key"`
}

// NewCA creates a CA of algorithm alg as Ensure does for a directory.
func NewCA(alg Algorithm, now time.Time) (PEM, error) {
	der, key, err := createCA(alg, now)
	if err != nil {
		return PEM{}, err
	}
	k, err := keyToPEM(key)
	if err != nil {
		return PEM{}, err
	}
	return PEM{Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Key: k}, nil
}

// IssueServer issues a server certificate for hostnames (see Names) signed
// by ca, with a key of the CA's algorithm.
func IssueServer(ca PEM, hostnames []string, now time.Time) (PEM, error) {
	cert, key, err := parseCA(ca)
	if err != nil {
		return PEM{}, err
	}
	chain, k, err := issue(cert, key, Names(hostnames), now)
	return PEM{Cert: chain, Key: k}, err
}

// Current reports whether server was signed by ca, covers exactly
// hostnames (see Names) and is not near expiry.
func Current(server, ca PEM, hostnames []string, now time.Time) bool {
	cert, _, err := parseCA(ca)
	return err == nil && currentPEM(server.Cert, cert, Names(hostnames), now)
}

// Bundle is the CA file's content for cas: their certificates, in order.
func Bundle(cas ...PEM) []byte {
	var out []byte
	for _, ca := range cas {
		out = append(out, ca.Cert...)
	}
	return out
}

func parseCA(ca PEM) (*x509.Certificate, crypto.Signer, error) {
	return parseCAPEM(ca.Cert, ca.Key)
}
