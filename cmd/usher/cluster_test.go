package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/pki"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
)

func TestDeploymentPassOncePerInterval(t *testing.T) {
	db, err := openDataDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := hub.NewService(db, hub.Options{HostName: "hub.usher.test"})
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	locked := func(context.Context, func(context.Context) error) (bool, error) { return false, nil }
	cases := []struct {
		name      string
		at        time.Time
		exclusive exclusiveRunner
		want      bool
	}{
		{"ran/first pass", t0, exclusiveFor(db), true},
		{"skipped/another node ran one a minute ago", t0.Add(time.Minute), exclusiveFor(db), false},
		{"skipped/another node holds the lock", t0.Add(deploymentInterval), locked, false},
		{"ran/an interval later", t0.Add(deploymentInterval), exclusiveFor(db), true},
	}
	for _, c := range cases {
		ran, err := deploymentPass(ctx, h, db, c.exclusive, func() time.Time { return c.at })
		if err != nil || ran != c.want {
			t.Errorf("%s: deploymentPass = %v, %v; want %v, nil", c.name, ran, err, c.want)
		}
	}
}

func TestSharedTLSFirstNodeWins(t *testing.T) {
	db, err := postgres.Open(context.Background(), pgtest.SchemaURL(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Hostnames: []string{"hub.usher.test"}, HubHost: "hub.usher.test"}
	now := time.Now()
	ctx := context.Background()
	// A store from before the RSA pair: only the ECDSA CA and certificate.
	ecCA, err := pki.NewCA(pki.ECDSA, now)
	if err != nil {
		t.Fatal(err)
	}
	ecServer, err := pki.IssueServer(ecCA, []string{"hub.usher.test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	for key, p := range map[string]pki.PEM{settingTLSCA: ecCA, settingTLSServer: ecServer} {
		if _, err := initPEM(ctx, db, key, func() (pki.PEM, error) { return p, nil }); err != nil {
			t.Fatal(err)
		}
	}
	var nodes [][]tls.Certificate
	for i := range 2 {
		cfg.DataDir = t.TempDir()
		conf, caFile, err := sharedTLS(ctx, db, cfg, now, log)
		if err != nil || caFile == "" {
			t.Fatalf("sharedTLS = %q, %v", caFile, err)
		}
		nodes = append(nodes, conf.Certificates)
		if len(conf.Certificates) != 2 || conf.Certificates[0].Leaf.PublicKeyAlgorithm != x509.ECDSA || conf.Certificates[1].Leaf.PublicKeyAlgorithm != x509.RSA {
			t.Fatalf("node %d serves %d certificates, want ECDSA then RSA", i, len(conf.Certificates))
		}
		if conf.MinVersion != tls.VersionTLS12 || len(conf.CipherSuites) == 0 {
			t.Errorf("node %d: MinVersion %x, %d cipher suites", i, conf.MinVersion, len(conf.CipherSuites))
		}
		roots := pool(t, caFile)
		for _, c := range conf.Certificates {
			if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "hub.usher.test"}); err != nil {
				t.Errorf("node %d: the %v certificate does not verify against its CA file: %v", i, c.Leaf.PublicKeyAlgorithm, err)
			}
		}
	}
	if !nodes[0][0].Leaf.Equal(mustLeaf(t, ecServer)) {
		t.Errorf("the stored ECDSA certificate was replaced")
	}
	for i := range 2 {
		if string(nodes[0][i].Certificate[0]) != string(nodes[1][i].Certificate[0]) {
			t.Errorf("the second node issued its own certificate %d instead of loading the first's", i)
		}
	}
}

func mustLeaf(t *testing.T, p pki.PEM) *x509.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

func TestSecretsKey(t *testing.T) {
	dir := t.TempDir()
	good := "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=" // 32 bytes of 7
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name    string
		file    string
		env     string
		wantLen int
		wantErr bool
	}{
		{"ok/none", "", "", 0, false},
		{"ok/env", "", good, 32, false},
		{"ok/file with newline wins over env", write("k", good+"\n"), "garbage", 32, false},
		{"invalid/short", "", "c2hvcnQ=", 0, true},
		{"invalid/not base64", "", "!!!", 0, true},
		{"invalid/empty file", write("empty", ""), "", 0, true},
		{"invalid/missing file", filepath.Join(dir, "nope"), "", 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, err := secretsKey(c.file, func(k string) string {
				if k == "USHER_SECRETS_KEY" {
					return c.env
				}
				return ""
			})
			if (err != nil) != c.wantErr || len(key) != c.wantLen {
				t.Errorf("secretsKey = %d bytes, %v; want %d bytes, error %v", len(key), err, c.wantLen, c.wantErr)
			}
		})
	}
}
