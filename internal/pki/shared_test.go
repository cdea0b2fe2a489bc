package pki

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestSharedMaterial(t *testing.T) {
	for _, alg := range []Algorithm{ECDSA, RSA} {
		t.Run(alg.String(), func(t *testing.T) {
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			ca, err := NewCA(alg, now)
			if err != nil {
				t.Fatal(err)
			}
			names := []string{"hub.usher.test"}
			server, err := IssueServer(ca, names, now)
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.X509KeyPair(server.Cert, server.Key)
			if err != nil {
				t.Fatalf("issued pair does not load: %v", err)
			}
			if got := pair.Leaf.PublicKeyAlgorithm; got != map[Algorithm]x509.PublicKeyAlgorithm{ECDSA: x509.ECDSA, RSA: x509.RSA}[alg] {
				t.Errorf("leaf key is %v, want %v", got, alg)
			}
			cases := []struct {
				name  string
				names []string
				now   time.Time
				want  bool
			}{
				{"ok/same names", names, now, true},
				{"stale/other names", []string{"other.usher.test"}, now, false},
				{"stale/near expiry", names, now.Add(serverLifetime - renewBefore/2), false},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					if got := Current(server, ca, c.names, c.now); got != c.want {
						t.Errorf("Current = %v, want %v", got, c.want)
					}
				})
			}
			other, err := NewCA(alg, now)
			if err != nil {
				t.Fatal(err)
			}
			if Current(server, other, names, now) {
				t.Errorf("Current accepts a certificate another CA signed")
			}
		})
	}
}
