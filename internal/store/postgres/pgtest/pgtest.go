// Package pgtest gives tests a fresh PostgreSQL schema of their own. The
// server is the one USHER_TEST_POSTGRES_URL names (default: the local
// trust-auth server's "test" database). When it refuses connections the
// helper starts the local cluster once (pg_ctlcluster, as CI's root can);
// if it is still unreachable the test fails, or is skipped when the
// developer set USHER_SKIP_POSTGRES=1 and CI is not set.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server tests use when USHER_TEST_POSTGRES_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var (
	startOnce sync.Once
	startOut  string
)

// ServerURL returns the PostgreSQL URL tests use, starting the local
// cluster if needed; it skips or fails tb when the server is unreachable.
func ServerURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("USHER_TEST_POSTGRES_URL")
	if u == "" {
		u = DefaultURL
	}
	if os.Getenv("USHER_SKIP_POSTGRES") == "1" && os.Getenv("CI") == "" {
		tb.Skip("USHER_SKIP_POSTGRES=1: PostgreSQL tests skipped")
	}
	err := ping(u)
	if err != nil {
		startOnce.Do(func() { startOut = startCluster() })
		err = ping(u)
	}
	if err != nil {
		tb.Fatalf("PostgreSQL at %s is unreachable: %v\n(tried to start it: %s)\nStart it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, point USHER_TEST_POSTGRES_URL elsewhere, or set USHER_SKIP_POSTGRES=1 outside CI.", u, err, startOut)
	}
	return u
}

func ping(u string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// startCluster runs pg_ctlcluster for each installed version's "main"
// cluster (pg_ctlcluster waits until the server accepts connections) and
// reports what happened.
func startCluster() string {
	versions, err := os.ReadDir("/etc/postgresql")
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, v := range versions {
		b, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", v.Name(), "main", "start").CombinedOutput()
		msg := strings.TrimSpace(string(b))
		if err != nil {
			msg += " (" + err.Error() + ")"
		}
		out = append(out, "pg_ctlcluster "+v.Name()+" main start: "+msg)
	}
	if len(out) == 0 {
		return "no cluster under /etc/postgresql"
	}
	return strings.Join(out, "; ")
}

// SchemaURL creates an empty schema usher_test_<random> on the test server
// and returns a URL whose connections use it (search_path), dropping the
// schema with everything in it when tb ends.
func SchemaURL(tb testing.TB) string {
	tb.Helper()
	base := ServerURL(tb)
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		tb.Fatal(err)
	}
	schema := "usher_test_" + hex.EncodeToString(r[:])
	exec := func(q string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, q)
		return err
	}
	if err := exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		if err := exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := withSearchPath(base, schema)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// withSearchPath adds options=-c search_path=schema to a postgres:// URL.
func withSearchPath(base, schema string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("options", strings.TrimSpace(q.Get("options")+" -c search_path="+schema))
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20") // libpq URLs take no '+' for space
	return u.String(), nil
}
