// Package sqlite is Usher's embedded store: one SQLite file (pure-Go driver,
// no cgo) in WAL mode, schema migrations embedded in the binary. Writes go
// through a single connection so conditional updates are serialised; reads
// use a pool.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"net/url"
	"runtime"
	"sync"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/store/schema"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the SQLite store. It implements dps.Store, access.Store and
// instance.Store.
type DB struct {
	write  *sql.DB // one connection: every write is serialised
	read   *sql.DB
	writes *stmtCache
	reads  reader

	reqs     chan writeReq // to the group-commit writer (writer.go)
	stop     chan struct{} // closed by Close
	stopped  chan struct{} // closed when the writer has returned
	stopOnce sync.Once
}

// Open opens (creating if needed) the database file at path and applies
// pending migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + url.Values{
		"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)"},
		"_txlock": {"immediate"},
	}.Encode()
	write, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "open database")
	}
	write.SetMaxOpenConns(1)
	read, err := sql.Open("sqlite", dsn)
	if err != nil {
		write.Close()
		return nil, fault.Wrap(fault.Internal, err, "open database")
	}
	read.SetMaxOpenConns(max(4, runtime.NumCPU()*2))
	db := &DB{write: write, read: read, writes: newStmtCache(write), reads: reader{newStmtCache(read)},
		reqs: make(chan writeReq), stop: make(chan struct{}), stopped: make(chan struct{})}
	go db.writer(db.stop, db.stopped)
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close releases the database.
func (db *DB) Close() error {
	db.stopOnce.Do(func() { close(db.stop) })
	<-db.stopped
	db.writes.close()
	db.reads.c.close()
	return errorsJoin(db.read.Close(), db.write.Close())
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY)`); err != nil {
		return fault.Wrap(fault.Internal, err, "create migrations table")
	}
	ms, err := schema.Migrations(migrations, "migrations")
	if err != nil {
		return fault.Wrap(fault.Internal, err, "list migrations")
	}
	for _, m := range ms {
		if err := db.apply(ctx, m.Path, m.Version); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) apply(ctx context.Context, name, version string) error {
	body, err := migrations.ReadFile(name)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "read migration %s", version)
	}
	return db.tx(ctx, func(tx *wtx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.tx.ExecContext(ctx, string(body)); err != nil { // several statements: never prepared
			return fmt.Errorf("migration %s: %w", version, err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, version)
		return err
	})
}

func internal(err error) error {
	var fe *fault.Error
	if err == nil || asFault(err, &fe) {
		return err
	}
	return fault.Wrap(fault.Internal, err, "database error")
}
