package sqlite

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/store/schema"
)

// Snapshot writes a consistent copy of the database to path, which must
// not exist, with VACUUM INTO on a read connection: one read transaction,
// so the copy is the database as of one commit, and in WAL mode writers go
// on meanwhile (only checkpoints wait past the snapshot). The copy is
// compact (no free pages) and needs no WAL file beside it.
func (db *DB) Snapshot(ctx context.Context, path string) error {
	if _, err := db.read.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fault.Wrap(fault.Internal, err, "snapshot the database")
	}
	return nil
}

// FileReport is what Check finds in a database file.
type FileReport struct {
	Migrations []string     // applied schema migrations, in order
	Tables     []TableCount // every table but schema_migrations, by name
}

// TableCount is one table's row count.
type TableCount struct {
	Name string
	Rows int64
}

// Check opens the database file at path without migrating it, runs
// PRAGMA integrity_check, and reports its migrations and row counts.
// Errors: fault.Invalid when the file is not an intact Usher database.
func Check(ctx context.Context, path string) (FileReport, error) {
	var rep FileReport
	if _, err := os.Stat(path); err != nil {
		return rep, fault.Wrap(fault.Invalid, err, "database file")
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode()
	conn, err := sql.Open("sqlite", dsn)
	if err != nil {
		return rep, fault.Wrap(fault.Internal, err, "open database")
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	rows, err := conn.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return rep, fault.Wrap(fault.Invalid, err, "integrity check of %s failed (not a readable SQLite database)", path)
	}
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return rep, fault.Wrap(fault.Internal, err, "integrity check")
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return rep, fault.Wrap(fault.Invalid, err, "integrity check of %s failed", path)
	}
	rows.Close()
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], "…")
		}
		return rep, fault.New(fault.Invalid, "integrity check of %s failed: %s", path, strings.Join(problems, "; "))
	}
	if rep.Migrations, err = column(ctx, conn, `SELECT version FROM schema_migrations ORDER BY version`); err != nil {
		return rep, fault.Wrap(fault.Invalid, err, "%s is not an Usher database (no schema_migrations)", path)
	}
	names, err := column(ctx, conn, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY name`)
	if err != nil {
		return rep, fault.Wrap(fault.Internal, err, "list tables")
	}
	for _, name := range names {
		var n int64
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM "`+strings.ReplaceAll(name, `"`, `""`)+`"`).Scan(&n); err != nil {
			return rep, fault.Wrap(fault.Internal, err, "count %s", name)
		}
		rep.Tables = append(rep.Tables, TableCount{Name: name, Rows: n})
	}
	return rep, nil
}

func column(ctx context.Context, conn *sql.DB, q string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Migrations lists the schema migrations this build knows, in order.
func Migrations() []string {
	ms, _ := schema.Migrations(migrations, "migrations") // a valid constant pattern
	return schema.Versions(ms)
}
