package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/fault"
)

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
	// or updated; the record's row is locked by tx.
	put(ctx context.Context, tx pgx.Tx, key string, rec *T, created bool) error
}

// encode returns v's JSON, sealed when the store has a secrets key.
func (db *DB) encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fault.Wrap(fault.Internal, err, "encode record")
	}
	return db.secrets.seal(string(b)), nil
}

// decode opens (when sealed) and decodes a stored body.
func decode[T any](db *DB, stored string) (T, error) {
	var v T
	body, err := db.secrets.open(stored)
	if err != nil {
		return v, err
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return v, fault.Wrap(fault.Internal, err, "decode stored record")
	}
	return v, nil
}

// readOne runs a query selecting one body column of at most one row and
// decodes it; no row is fault.NotFound.
func readOne[T any](ctx context.Context, db *DB, q string, args ...any) (T, error) {
	var body string
	err := db.pool.QueryRow(ctx, q, args...).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		var zero T
		return zero, fault.New(fault.NotFound, "not found")
	}
	if err != nil {
		var zero T
		return zero, fault.Wrap(fault.Internal, err, "read")
	}
	return decode[T](db, body)
}

// listBodies runs a query selecting one body column and decodes each row.
func listBodies[T any](ctx context.Context, db *DB, q string, args ...any) ([]T, error) {
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "list")
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "list")
		}
		v, err := decode[T](db, body)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "list")
	}
	return out, nil
}

// conditionalExec runs q, a statement of the form
//
//	WITH changed AS (UPDATE|DELETE … RETURNING 1)
//	SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM <table> WHERE <key>)
//
// and turns its two flags into nil, NotFound or PreconditionFailed. The
// write and the explanation of a miss are one statement, one round trip.
func conditionalExec(ctx context.Context, db *DB, q string, args ...any) error {
	var changed, exists bool
	if err := db.pool.QueryRow(ctx, q, args...).Scan(&changed, &exists); err != nil {
		return fault.Wrap(fault.Internal, err, "conditional write")
	}
	return conditional(changed, exists)
}

func (t table[T]) get(ctx context.Context, key string) (T, error) {
	return readOne[T](ctx, t.db, `SELECT body FROM `+t.name+` WHERE id_key = $1`, key)
}

func (t table[T]) create(ctx context.Context, key, etag string, rec T) error {
	body, err := t.db.encode(rec)
	if err != nil {
		return err
	}
	if t.index != nil {
		return t.createIndexed(ctx, key, etag, body, &rec)
	}
	tag, err := t.db.pool.Exec(ctx, `INSERT INTO `+t.name+` (id_key, etag, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, key, etag, body)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "insert into %s", t.name)
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.Conflict, "exists")
	}
	return nil
}

// createIndexed inserts a record and its index rows in one transaction.
func (t table[T]) createIndexed(ctx context.Context, key, etag, body string, rec *T) error {
	var cols, marks string
	for i, c := range t.index.columns() {
		cols += ", " + c
		marks += ", $" + strconv.Itoa(4+i)
	}
	args := append([]any{key, etag, body}, t.index.values(rec)...)
	return t.db.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO `+t.name+` (id_key, etag, body`+cols+`) VALUES ($1, $2, $3`+marks+`) ON CONFLICT DO NOTHING`, args...)
		if err != nil {
			return fault.Wrap(fault.Internal, err, "insert into %s", t.name)
		}
		if tag.RowsAffected() == 0 {
			return fault.New(fault.Conflict, "exists")
		}
		return t.index.put(ctx, tx, key, rec, true)
	})
}

func (t table[T]) update(ctx context.Context, key, etag, newETag string, rec T) error {
	body, err := t.db.encode(rec)
	if err != nil {
		return err
	}
	if t.index != nil {
		return t.updateIndexed(ctx, key, etag, newETag, body, &rec)
	}
	return conditionalExec(ctx, t.db, `WITH changed AS (
			UPDATE `+t.name+` SET etag = $1, body = $2 WHERE id_key = $3 AND ($4 = '' OR etag = $4) RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM `+t.name+` WHERE id_key = $3)`,
		newETag, body, key, etag)
}

// updateIndexed is update for a table with an index: the conditional
// update, then the index rows, in one transaction. The update locks the
// row, so writers of one record keep its index rows in turn, and each
// statement of a READ COMMITTED transaction sees what the previous writer
// committed.
func (t table[T]) updateIndexed(ctx context.Context, key, etag, newETag, body string, rec *T) error {
	var set string
	for i, c := range t.index.columns() {
		set += ", " + c + " = $" + strconv.Itoa(5+i)
	}
	args := append([]any{newETag, body, key, etag}, t.index.values(rec)...)
	return t.db.tx(ctx, func(tx pgx.Tx) error {
		var changed, exists bool
		err := tx.QueryRow(ctx, `WITH changed AS (
				UPDATE `+t.name+` SET etag = $1, body = $2`+set+` WHERE id_key = $3 AND ($4 = '' OR etag = $4) RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM `+t.name+` WHERE id_key = $3)`, args...).Scan(&changed, &exists)
		if err != nil {
			return fault.Wrap(fault.Internal, err, "conditional write")
		}
		if err := conditional(changed, exists); err != nil {
			return err
		}
		return t.index.put(ctx, tx, key, rec, false)
	})
}

func (t table[T]) delete(ctx context.Context, key, etag string) error {
	return conditionalExec(ctx, t.db, `WITH changed AS (
			DELETE FROM `+t.name+` WHERE id_key = $1 AND ($2 = '' OR etag = $2) RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM `+t.name+` WHERE id_key = $1)`,
		key, etag)
}

func (t table[T]) list(ctx context.Context, where string, args []any, limit int) ([]T, error) {
	n := len(args) + 1
	return listBodies[T](ctx, t.db, `SELECT body FROM `+t.name+` WHERE `+where+` ORDER BY id_key LIMIT $`+strconv.Itoa(n), append(args, limit)...)
}
