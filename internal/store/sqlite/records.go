package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/usher-iot/usher/internal/fault"
)

func asFault(err error, fe **fault.Error) bool { return errors.As(err, fe) }

// table stores JSON documents of type T keyed by a case-folded ID, with an
// etag column for conditional writes. Table names are constants of this
// package, never input.
type table[T any] struct {
	db    *DB
	name  string
	index indexer[T] // nil: the table has no secondary index
}

// indexer keeps a table's secondary indexes in step with its records, in
// the transaction of each write: columns beside the body, written by the
// same INSERT or UPDATE, and rows of side tables that reference the record
// with ON DELETE CASCADE, so a delete needs no help.
type indexer[T any] interface {
	columns() []string // the extra columns, constants of this package
	values(rec *T) []any
	// put writes the side-table rows of a record just inserted (created)
	// or updated.
	put(ctx context.Context, tx *wtx, key string, rec *T, created bool) error
}

// insertSQL and updateSQL are the statements of create and update, with
// the index columns when the table has them.
func (t table[T]) insertSQL() string {
	cols, marks := "id_key, etag, body", "?, ?, ?"
	if t.index != nil {
		for _, c := range t.index.columns() {
			cols, marks = cols+", "+c, marks+", ?"
		}
	}
	return `INSERT INTO ` + t.name + ` (` + cols + `) VALUES (` + marks + `) ON CONFLICT DO NOTHING`
}

func (t table[T]) updateSQL() string {
	set := "etag = ?, body = ?"
	if t.index != nil {
		for _, c := range t.index.columns() {
			set += ", " + c + " = ?"
		}
	}
	return `UPDATE ` + t.name + ` SET ` + set + ` WHERE id_key = ? AND (? = '' OR etag = ?)`
}

// indexValues returns the index columns' values of rec.
func (t table[T]) indexValues(rec *T) []any {
	if t.index == nil {
		return nil
	}
	return t.index.values(rec)
}

func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fault.Wrap(fault.Internal, err, "encode record")
	}
	return string(b), nil
}

func decode[T any](body string) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return v, fault.Wrap(fault.Internal, err, "decode stored record")
	}
	return v, nil
}

func (t table[T]) get(ctx context.Context, key string) (T, error) {
	var body string
	err := t.db.reads.QueryRowContext(ctx, `SELECT body FROM `+t.name+` WHERE id_key = ?`, key).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, fault.New(fault.NotFound, "not found")
	}
	if err != nil {
		var zero T
		return zero, fault.Wrap(fault.Internal, err, "read %s", t.name)
	}
	return decode[T](body)
}

func (t table[T]) create(ctx context.Context, key, etag string, rec T) error {
	body, err := encode(rec)
	if err != nil {
		return err
	}
	args := append([]any{key, etag, body}, t.indexValues(&rec)...)
	return t.db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, t.insertSQL(), args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fault.New(fault.Conflict, "exists")
		}
		if t.index != nil {
			return t.index.put(ctx, tx, key, &rec, true)
		}
		return nil
	})
}

func (t table[T]) update(ctx context.Context, key, etag, newETag string, rec T) error {
	body, err := encode(rec)
	if err != nil {
		return err
	}
	args := append(append([]any{newETag, body}, t.indexValues(&rec)...), key, etag, etag)
	return t.db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, t.updateSQL(), args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return t.missOrStale(ctx, tx, key)
		}
		if t.index != nil {
			return t.index.put(ctx, tx, key, &rec, false)
		}
		return nil
	})
}

func (t table[T]) delete(ctx context.Context, key, etag string) error {
	return t.db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+t.name+` WHERE id_key = ? AND (? = '' OR etag = ?)`, key, etag, etag)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return t.missOrStale(ctx, tx, key)
		}
		return nil
	})
}

// missOrStale explains why a conditional write touched no row.
func (t table[T]) missOrStale(ctx context.Context, tx *wtx, key string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name+` WHERE id_key = ?`, key).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fault.New(fault.NotFound, "not found")
	}
	return fault.New(fault.PreconditionFailed, "etag mismatch")
}

func (t table[T]) list(ctx context.Context, where string, args []any, limit int) ([]T, error) {
	return t.query(ctx, `SELECT body FROM `+t.name+` WHERE `+where+` ORDER BY id_key LIMIT ?`, append(args, limit)...)
}

// query runs q, which selects one body column, and decodes each row.
func (t table[T]) query(ctx context.Context, q string, args ...any) ([]T, error) {
	rows, err := t.db.reads.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "list %s", t.name)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "list %s", t.name)
		}
		rec, err := decode[T](body)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "list %s", t.name)
	}
	return out, nil
}
