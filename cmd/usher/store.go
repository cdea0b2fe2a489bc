package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/instance"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

// store is everything the server needs from a backend; both
// internal/store/sqlite and internal/store/postgres provide it.
type store interface {
	dps.Store
	access.Store
	instance.Store
	hub.Store
	audit.Store
	Close() error
}

var (
	_ store = (*sqlite.DB)(nil)
	_ store = (*postgres.DB)(nil)
)

// The values of --store.
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
)

// openStore opens the store cfg names: SQLite in the data directory
// (created if needed), or the PostgreSQL database at --postgres-url. The
// data directory holds the TLS material either way.
func openStore(ctx context.Context, cfg Config, getenv func(string) string) (store, error) {
	switch cfg.Store {
	case storePostgres:
		key, err := secretsKey(cfg.SecretsKeyFile, getenv)
		if err != nil {
			return nil, err
		}
		db, err := postgres.Open(ctx, cfg.PostgresURL, postgres.Options{SecretsKey: key})
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL store: %w", err)
		}
		return db, nil
	default: // Validate admits only sqlite besides postgres
		return openDataDir(ctx, cfg.DataDir)
	}
}

// storeLocation says where an existing server keeps its data, for the
// commands that read it directly (info, policy, hub messages, and the
// service CLIs when no connection string is given).
type storeLocation struct {
	Kind        string // storeSQLite or storePostgres
	DataDir     string
	PostgresURL string
	SecretsKey  []byte // PostgreSQL's secrets key, nil when none is given
	keyErr      error  // why the secrets key could not be read
}

// storeFlags are --store and --postgres-url on the commands that read a
// server's store; unset, they fall back to USHER_STORE and
// USHER_POSTGRES_URL, then to SQLite.
type storeFlags struct {
	kind           string
	postgresURL    string
	secretsKeyFile string
}

func (f *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.kind, "store", "", "store of the server to read: sqlite (in --data-dir) or postgres (env USHER_STORE; default sqlite)")
	fs.StringVar(&f.postgresURL, "postgres-url", "", "PostgreSQL URL of a --store postgres server (env USHER_POSTGRES_URL)")
	fs.StringVar(&f.secretsKeyFile, "secrets-key-file", "", "the server's secrets key file, for a --store postgres server started with one (env USHER_SECRETS_KEY_FILE, or the key in USHER_SECRETS_KEY)")
}

// locate resolves the store flags and a data directory flag.
func (f storeFlags) locate(dataDir string, e *env) storeLocation {
	loc := storeLocation{Kind: f.kind, DataDir: dataDirOr(dataDir, e), PostgresURL: f.postgresURL}
	if loc.Kind == "" {
		loc.Kind = e.getenv("USHER_STORE")
	}
	if loc.Kind == "" {
		loc.Kind = storeSQLite
	}
	if loc.PostgresURL == "" {
		loc.PostgresURL = e.getenv("USHER_POSTGRES_URL")
	}
	keyFile := f.secretsKeyFile
	if keyFile == "" {
		keyFile = e.getenv("USHER_SECRETS_KEY_FILE")
	}
	loc.SecretsKey, loc.keyErr = secretsKey(keyFile, e.getenv)
	return loc
}

// openLocated opens the store of a server that has already started once,
// creating nothing in a data directory.
func openLocated(ctx context.Context, loc storeLocation) (store, error) {
	switch loc.Kind {
	case storeSQLite:
		return openExisting(ctx, loc.DataDir)
	case storePostgres:
		if loc.PostgresURL == "" {
			return nil, fmt.Errorf("--store postgres needs --postgres-url (or USHER_POSTGRES_URL)")
		}
		if loc.keyErr != nil {
			return nil, loc.keyErr
		}
		db, err := postgres.Open(ctx, loc.PostgresURL, postgres.Options{SecretsKey: loc.SecretsKey})
		if err != nil {
			return nil, fmt.Errorf("PostgreSQL store: %w", err)
		}
		return db, nil
	default:
		return nil, fmt.Errorf("store %q is not sqlite or postgres", loc.Kind)
	}
}

// secretsKey reads the PostgreSQL secrets key: the file's content when
// file is set, else USHER_SECRETS_KEY; nil when neither is. The key is
// base64 (standard, padded or not) of postgres.SecretsKeySize bytes, e.g.
// from `head -c 32 /dev/urandom | base64`.
func secretsKey(file string, getenv func(string) string) ([]byte, error) {
	text, from := getenv("USHER_SECRETS_KEY"), "USHER_SECRETS_KEY"
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("secrets key: %w", err)
		}
		text, from = string(b), file
	}
	text = strings.TrimRight(strings.TrimSpace(text), "=")
	if text == "" {
		if file != "" {
			return nil, fmt.Errorf("secrets key file %s is empty", file)
		}
		return nil, nil
	}
	key, err := base64.RawStdEncoding.DecodeString(text)
	if err != nil || len(key) != postgres.SecretsKeySize {
		return nil, fmt.Errorf("secrets key in %s: want base64 of %d bytes", from, postgres.SecretsKeySize)
	}
	return key, nil
}
