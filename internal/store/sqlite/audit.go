package sqlite

import (
	"context"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/fault"
)

var _ audit.Store = (*DB)(nil)

// AppendAudit implements audit.Store.
func (db *DB) AppendAudit(ctx context.Context, entries []audit.Entry) error {
	bodies := make([]string, len(entries))
	for i, e := range entries {
		e.Seq = 0
		b, err := encode(e)
		if err != nil {
			return err
		}
		bodies[i] = b
	}
	return db.tx(ctx, func(tx *wtx) error {
		for i, e := range entries {
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (at, kind, subject_key, body) VALUES (?, ?, ?, ?)`,
				e.Time.UnixNano(), string(e.Kind), audit.SubjectKey(e.Subject), bodies[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// AuditEntries implements audit.Store. The query is assembled from fixed
// clauses, so each filter can use its index.
func (db *DB) AuditEntries(ctx context.Context, q audit.Query) ([]audit.Entry, error) {
	var where []string
	var args []any
	if q.Before > 0 {
		where, args = append(where, "seq < ?"), append(args, q.Before)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, q.Since.UnixNano())
	}
	if q.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, string(q.Kind))
	}
	if q.Subject != "" {
		where, args = append(where, "subject_key = ?"), append(args, audit.SubjectKey(q.Subject))
	}
	query := `SELECT seq, body FROM audit_log`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, max(q.Limit, 1))
	rows, err := db.reads.QueryContext(ctx, query, args...)
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
		e, err := decode[audit.Entry](body)
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

// PruneAudit implements audit.Store.
func (db *DB) PruneAudit(ctx context.Context, before time.Time, keep int) (int, error) {
	var n int64
	err := db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE at < ?`, before.UnixNano())
		if err != nil {
			return err
		}
		old, _ := res.RowsAffected()
		res, err = tx.ExecContext(ctx, `DELETE FROM audit_log WHERE seq <= (SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1 OFFSET ?)`, max(keep, 0))
		if err != nil {
			return err
		}
		over, _ := res.RowsAffected()
		n = old + over
		return nil
	})
	return int(n), err
}
