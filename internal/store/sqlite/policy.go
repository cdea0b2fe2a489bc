package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
)

var _ access.Store = (*DB)(nil)

// Policy implements access.Store.
func (db *DB) Policy(ctx context.Context, scope access.Scope, name string) (access.Policy, error) {
	var body string
	err := db.reads.QueryRowContext(ctx, `SELECT body FROM policies WHERE scope = ? AND name_key = ?`, string(scope), strings.ToLower(name)).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return access.Policy{}, fault.New(fault.NotFound, "policy %q does not exist", name)
	}
	if err != nil {
		return access.Policy{}, fault.Wrap(fault.Internal, err, "read policy")
	}
	return decode[access.Policy](body)
}

// Policies implements access.Store.
func (db *DB) Policies(ctx context.Context, scope access.Scope) ([]access.Policy, error) {
	rows, err := db.reads.QueryContext(ctx, `SELECT body FROM policies WHERE scope = ? ORDER BY name_key`, string(scope))
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "list policies")
	}
	defer rows.Close()
	var out []access.Policy
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "list policies")
		}
		p, err := decode[access.Policy](body)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, internal(rows.Err())
}

// CreatePolicy implements access.Store.
func (db *DB) CreatePolicy(ctx context.Context, p access.Policy) error {
	body, err := encode(p)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO policies (scope, name_key, body) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, string(p.Scope), strings.ToLower(p.Name), body)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fault.New(fault.Conflict, "policy %q already exists", p.Name)
		}
		return nil
	})
}

// UpdatePolicy implements access.Store.
func (db *DB) UpdatePolicy(ctx context.Context, p access.Policy) error {
	body, err := encode(p)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE policies SET body = ? WHERE scope = ? AND name_key = ?`, body, string(p.Scope), strings.ToLower(p.Name))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fault.New(fault.NotFound, "policy %q does not exist", p.Name)
		}
		return nil
	})
}

// DeletePolicy implements access.Store.
func (db *DB) DeletePolicy(ctx context.Context, scope access.Scope, name string) error {
	return db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM policies WHERE scope = ? AND name_key = ?`, string(scope), strings.ToLower(name))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fault.New(fault.NotFound, "policy %q does not exist", name)
		}
		return nil
	})
}
