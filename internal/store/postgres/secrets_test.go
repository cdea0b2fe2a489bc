package postgres_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
	"github.com/usher-iot/usher/internal/store/storetest"
)

var testKey = bytes.Repeat([]byte{7}, postgres.SecretsKeySize)

func mustOpenSealed(tb testing.TB, url string, key []byte) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), url, postgres.Options{SecretsKey: key})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestConformanceSealed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return mustOpenSealed(t, pgtest.SchemaURL(t), testKey)
	})
}

// dump returns every policy body and setting value as the database holds
// them: what a dump shows.
func dump(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var out strings.Builder
	for _, q := range []string{`SELECT body FROM policies`, `SELECT value FROM meta`} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out.WriteString(s + "\n")
		}
		rows.Close()
	}
	return out.String()
}

func TestSecretsSealedAtRest(t *testing.T) {
	url := pgtest.SchemaURL(t)
	ctx := context.Background()
	db := mustOpenSealed(t, url, testKey)
	p, err := access.NewPolicy(access.Hub, "sealed", access.ServiceConnect)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := db.InitSetting(ctx, "tls_ca", "PRIVATE-KEY-PEM"); err != nil {
		t.Fatal(err)
	}
	raw := dump(t, url)
	for _, secret := range []string{p.PrimaryKey, p.SecondaryKey, "PRIVATE-KEY-PEM"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the database holds %q in clear", secret)
		}
	}
	if got, err := db.Policy(ctx, access.Hub, "sealed"); err != nil || got.PrimaryKey != p.PrimaryKey {
		t.Errorf("Policy with the key = %+v, %v; want the stored key back", got, err)
	}
	if v, err := db.Setting(ctx, "tls_ca"); err != nil || v != "PRIVATE-KEY-PEM" {
		t.Errorf("Setting with the key = %q, %v", v, err)
	}
	cases := []struct {
		name string
		key  []byte
	}{
		{"500/no key", nil},
		{"500/another key", bytes.Repeat([]byte{8}, postgres.SecretsKeySize)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			other := mustOpenSealed(t, url, c.key)
			if _, err := other.Policy(ctx, access.Hub, "sealed"); !fault.Is(err, fault.Internal) {
				t.Errorf("Policy = %v, want fault.Internal", err)
			}
		})
	}
	t.Run("ok/plaintext written without a key reads with one", func(t *testing.T) {
		plain := mustOpen(t, url)
		if err := plain.PutSetting(ctx, "plain", "v"); err != nil {
			t.Fatal(err)
		}
		if v, err := db.Setting(ctx, "plain"); err != nil || v != "v" {
			t.Errorf("Setting = %q, %v", v, err)
		}
	})
	t.Run("invalid/short key", func(t *testing.T) {
		if _, err := postgres.Open(ctx, url, postgres.Options{SecretsKey: []byte("short")}); !fault.Is(err, fault.Invalid) {
			t.Errorf("Open = %v, want fault.Invalid", err)
		}
	})
}
