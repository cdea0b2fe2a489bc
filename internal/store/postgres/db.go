// Package postgres is Usher's shared store for several nodes: PostgreSQL
// through pgx's connection pool. It stores the same JSON documents, keyed
// the same way, as internal/store/sqlite, and passes the same conformance
// suite (internal/store/storetest). Schema migrations are embedded in the
// binary, numbered as SQLite's are, and applied once under an advisory lock
// however many nodes start together (docs/decisions/0011-postgresql.md).
//
// Conditional writes are single statements, so they need no explicit
// transaction; pgx prepares and caches each statement per connection.
package postgres

import (
	"context"
	"embed"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/store/schema"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the pg_advisory_xact_lock key that serialises migrations
// across nodes ("usher" in ASCII).
const migrateLock = 0x7573686572

// DB is the PostgreSQL store. It implements dps.Store, access.Store,
// instance.Store and hub.Store.
type DB struct {
	pool    *pgxpool.Pool
	secrets *secrets // nil: plaintext
}

// Options tune Open.
type Options struct {
	// SecretsKey (SecretsKeySize bytes), when set, seals every record
	// body and setting written with AES-256-GCM; see secrets.go.
	SecretsKey []byte
	// MigrateUpTo, when set, stops the schema at that migration (one of
	// Migrations()) and skips the data fixes that need the latest schema:
	// a restore loads an older backup into the schema it was taken from,
	// then opens the store again normally to migrate it with its rows.
	MigrateUpTo string
}

// Open connects to the database at url (a postgres:// URL or key=value
// string, as libpq reads them) and applies pending migrations. The schema
// is the connection's search_path; set it with
// options=-c%20search_path%3Dname in the URL to use another schema.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	sec, err := newSecrets(opts.SecretsKey)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, err, "parse PostgreSQL URL")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "connect to PostgreSQL")
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fault.Wrap(fault.Unavailable, err, "connect to PostgreSQL")
	}
	db := &DB{pool: pool, secrets: sec}
	if opts.MigrateUpTo != "" && !slices.Contains(Migrations(), opts.MigrateUpTo) {
		pool.Close()
		return nil, fault.New(fault.Invalid, "migration %q is not one of this build's", opts.MigrateUpTo)
	}
	if err := db.migrate(ctx, opts.MigrateUpTo); err != nil {
		pool.Close()
		return nil, err
	}
	if opts.MigrateUpTo != "" {
		return db, nil
	}
	if err := db.indexOlderEnrollments(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Close releases the pool's connections.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// migrate applies every embedded migration not yet recorded in
// schema_migrations (up to and including upTo, when it is set), all in one
// transaction that first takes an advisory lock: a node that starts while
// another migrates waits, then finds the versions recorded and applies
// nothing.
func (db *DB) migrate(ctx context.Context, upTo string) error {
	ms, err := schema.Migrations(migrations, "migrations")
	if err != nil {
		return fault.Wrap(fault.Internal, err, "list migrations")
	}
	return db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY)`); err != nil {
			return err
		}
		for _, m := range ms {
			version := m.Version
			if upTo != "" && version > upTo {
				break
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&done); err != nil {
				return err
			}
			if done {
				continue
			}
			body, err := migrations.ReadFile(m.Path)
			if err != nil {
				return err
			}
			// No arguments: pgx sends the file with the simple protocol,
			// which accepts several statements.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fault.Wrap(fault.Internal, err, "migration %s", version)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
				return err
			}
		}
		return nil
	})
}

// tx runs fn in a transaction. A fault returned by fn passes through;
// other errors become fault.Internal.
func (db *DB) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return internal(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return internal(err)
	}
	return internal(tx.Commit(ctx))
}

// internal passes faults through and wraps any other error as
// fault.Internal.
func internal(err error) error {
	var fe *fault.Error
	if err == nil || errors.As(err, &fe) {
		return err
	}
	return fault.Wrap(fault.Internal, err, "database error")
}

// conditional reports the outcome of a conditional write: NotFound when
// the row did not exist, PreconditionFailed when its etag differed.
func conditional(changed, exists bool) error {
	switch {
	case changed:
		return nil
	case !exists:
		return fault.New(fault.NotFound, "not found")
	default:
		return fault.New(fault.PreconditionFailed, "etag mismatch")
	}
}

// Exclusive runs fn unless another session holds the advisory lock key,
// holding it while fn runs; ran reports whether fn ran. Nodes use it for
// periodic work one node should do at a time.
func (db *DB) Exclusive(ctx context.Context, key int64, fn func(context.Context) error) (ran bool, err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return false, fault.Wrap(fault.Unavailable, err, "acquire connection")
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return false, internal(err)
	}
	if !got {
		return false, nil
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key); uerr != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // closing the session drops the lock
		}
	}()
	return true, fn(ctx)
}
