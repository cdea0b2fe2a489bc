package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/fault"
)

var _ audit.Store = (*DB)(nil)

// AppendAudit implements audit.Store. Bodies are sealed like every other
// record when the store has a secrets key; entries hold no key material,
// but they name devices and addresses.
func (db *DB) AppendAudit(ctx context.Context, entries []audit.Entry) error {
	bodies := make([]string, len(entries))
	for i, e := range entries {
		e.Seq = 0
		b, err := db.encode(e)
		if err != nil {
			return err
		}
		bodies[i] = b
	}
	if len(entries) == 1 {
		e := entries[0]
		_, err := db.pool.Exec(ctx, `INSERT INTO audit_log (at, kind, subject_key, body) VALUES ($1, $2, $3, $4)`,
			e.Time.UnixNano(), string(e.Kind), audit.SubjectKey(e.Subject), bodies[0])
		return internal(err)
	}
	return db.tx(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		for i, e := range entries {
			b.Queue(`INSERT INTO audit_log (at, kind, subject_key, body) VALUES ($1, $2, $3, $4)`,
				e.Time.UnixNano(), string(e.Kind), audit.SubjectKey(e.Subject), bodies[i])
		}
		return tx.SendBatch(ctx, &b).Close()
	})
}

// AuditEntries implements audit.Store. The query is assembled from fixed
// clauses, so each filter can use its index.
func (db *DB) AuditEntries(ctx context.Context, q audit.Query) ([]audit.Entry, error) {
	var where []string
	var args []any
	add := func(clause string, v any) {
		args = append(args, v)
		where = append(where, clause+" $"+strconv.Itoa(len(args)))
	}
	if q.Before > 0 {
		add("seq <", q.Before)
	}
	if !q.Since.IsZero() {
		add("at >=", q.Since.UnixNano())
	}
	if q.Kind != "" {
		add("kind =", string(q.Kind))
	}
	if q.Subject != "" {
		add("subject_key =", audit.SubjectKey(q.Subject))
	}
	query := `SELECT seq, body FROM audit_log`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, max(q.Limit, 1))
	query += ` ORDER BY seq DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read audit log")
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var seq int64
		var body string
		if err := rows.Scan(&seq, &body); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "read audit log")
		}
		e, err := decode[audit.Entry](db, body)
		if err != nil {
			return nil, err
		}
		e.Seq = seq
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read audit log")
	}
	return out, nil
}

// PruneAudit implements audit.Store. Nodes sharing the database may prune
// at the same time; both deletes are idempotent.
func (db *DB) PruneAudit(ctx context.Context, before time.Time, keep int) (int, error) {
	var n int64
	err := db.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE at < $1`, before.UnixNano())
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `DELETE FROM audit_log WHERE seq <= (SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1 OFFSET $1)`, max(keep, 0))
		if err != nil {
			return err
		}
		n += tag.RowsAffected()
		return nil
	})
	return int(n), err
}
