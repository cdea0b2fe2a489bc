package postgres

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/store/schema"
)

// Tables are the tables Export writes and Import loads, in load order (a
// table after those it references); RuntimeTables are left out. A test
// checks both lists against the migrated schema, so a new table cannot be
// forgotten.
var Tables = []string{
	"meta", "policies",
	"enrollments", "enrollment_tags", "enrollment_groups", "registrations", "operations",
	"hub_devices", "hub_modules", "hub_twins", "hub_configurations", "hub_device_deployments", "hub_messages",
	"audit_log",
}

// RuntimeTables hold what running nodes share about themselves, not
// records: relay messages a minute old at most (bus_messages) and who is
// connected to which live node (hub_nodes, hub_presence). A backup leaves
// them out; a restored installation starts with nobody connected.
var RuntimeTables = []string{"bus_messages", "hub_nodes", "hub_presence"}

// identities are the identity columns whose sequences Import moves past
// the loaded rows.
var identities = map[string]string{"hub_messages": "seq", "audit_log": "seq"}

// TableCount is one table's row count.
type TableCount struct {
	Name string
	Rows int64
}

// ExportReport says what Export wrote.
type ExportReport struct {
	Migrations []string     // applied schema migrations, in order
	Tables     []TableCount // in Tables order
}

// Migrations lists the schema migrations this build knows, in order.
func Migrations() []string {
	ms, _ := schema.Migrations(migrations, "migrations") // a valid constant pattern
	return schema.Versions(ms)
}

// Export writes every table of Tables, in PostgreSQL's COPY text format, to
// the writer open returns for it (closing it after), all in one REPEATABLE
// READ READ ONLY transaction: the export is the database as of one moment
// while nodes go on writing, and blocks none of them. Values are written
// as stored, so sealed bodies stay sealed (restoring them needs the same
// secrets key).
func (db *DB) Export(ctx context.Context, open func(table string) (io.WriteCloser, error)) (ExportReport, error) {
	var rep ExportReport
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return rep, internal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return rep, internal(err)
	}
	if rep.Migrations, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return rep, internal(err)
	}
	for _, t := range Tables {
		w, err := open(t)
		if err != nil {
			return rep, err
		}
		tag, err := tx.Conn().PgConn().CopyTo(ctx, w, `COPY `+t+` TO STDOUT`)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return rep, fault.Wrap(fault.Internal, err, "export %s", t)
		}
		rep.Tables = append(rep.Tables, TableCount{Name: t, Rows: tag.RowsAffected()})
	}
	return rep, nil
}

// Loader loads one table's rows, in the COPY text format Export writes,
// and returns how many it loaded.
type Loader func(table string, r io.Reader) (int64, error)

// loaded reports whether counts has table.
func loaded(counts []TableCount, table string) bool {
	return slices.ContainsFunc(counts, func(c TableCount) bool { return c.Name == table })
}

// Import loads an export into this store in one transaction: fill calls
// load once per table, in Tables order; tables it skips stay empty. When
// fill and the loads succeed the identity sequences are moved past the
// loaded rows and everything commits; otherwise nothing does. Errors:
// fault.Conflict when any of Usher's tables already has rows (restore needs
// an empty database), fault.Invalid for an unknown or repeated table or
// rows that do not load.
func (db *DB) Import(ctx context.Context, fill func(load Loader) error) ([]TableCount, error) {
	var counts []TableCount
	err := db.tx(ctx, func(tx pgx.Tx) error {
		for _, t := range Tables {
			// An older schema (MigrateUpTo) may not have every table yet.
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				continue
			}
			var used bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t+`)`).Scan(&used); err != nil {
				return err
			}
			if used {
				return fault.New(fault.Conflict, "the database already holds Usher data (table %s has rows); restore needs an empty database or schema", t)
			}
		}
		next := 0
		load := func(table string, r io.Reader) (int64, error) {
			i := slices.Index(Tables, table)
			switch {
			case i < 0:
				return 0, fault.New(fault.Invalid, "table %q is not one of Usher's", table)
			case i < next:
				return 0, fault.New(fault.Invalid, "table %s comes out of order or twice", table)
			}
			next = i + 1
			tag, err := tx.Conn().PgConn().CopyFrom(ctx, r, `COPY `+table+` FROM STDIN`)
			if err != nil {
				return 0, fault.Wrap(fault.Invalid, err, "load %s", table)
			}
			counts = append(counts, TableCount{Name: table, Rows: tag.RowsAffected()})
			return tag.RowsAffected(), nil
		}
		if err := fill(load); err != nil {
			return err
		}
		for _, t := range Tables {
			col, ok := identities[t]
			if !ok || !loaded(counts, t) { // a table not loaded keeps its fresh sequence
				continue
			}
			q := fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE(MAX(%s), 0) + 1, false) FROM %s`, t, col, col, t)
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	return counts, err
}
