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
	db   *DB
	name string
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
	return t.db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO `+t.name+` (id_key, etag, body) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, key, etag, body)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fault.New(fault.Conflict, "exists")
		}
		return nil
	})
}

func (t table[T]) update(ctx context.Context, key, etag, newETag string, rec T) error {
	body, err := encode(rec)
	if err != nil {
		return err
	}
	return t.db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE `+t.name+` SET etag = ?, body = ? WHERE id_key = ? AND (? = '' OR etag = ?)`, newETag, body, key, etag, etag)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return t.missOrStale(ctx, tx, key)
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
	rows, err := t.db.reads.QueryContext(ctx, `SELECT body FROM `+t.name+` WHERE `+where+` ORDER BY id_key LIMIT ?`, append(args, limit)...)
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
