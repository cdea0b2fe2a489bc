package postgres

import (
	"context"
	"strings"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
)

var _ access.Store = (*DB)(nil)

// Policy implements access.Store.
func (db *DB) Policy(ctx context.Context, scope access.Scope, name string) (access.Policy, error) {
	p, err := readOne[access.Policy](ctx, db, `SELECT body FROM policies WHERE scope = $1 AND name_key = $2`, string(scope), strings.ToLower(name))
	if fault.Is(err, fault.NotFound) {
		return access.Policy{}, fault.New(fault.NotFound, "policy %q does not exist", name)
	}
	return p, err
}

// Policies implements access.Store.
func (db *DB) Policies(ctx context.Context, scope access.Scope) ([]access.Policy, error) {
	return listBodies[access.Policy](ctx, db, `SELECT body FROM policies WHERE scope = $1 ORDER BY name_key`, string(scope))
}

// CreatePolicy implements access.Store.
func (db *DB) CreatePolicy(ctx context.Context, p access.Policy) error {
	body, err := db.encode(p)
	if err != nil {
		return err
	}
	tag, err := db.pool.Exec(ctx, `INSERT INTO policies (scope, name_key, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, string(p.Scope), strings.ToLower(p.Name), body)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "create policy")
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.Conflict, "policy %q already exists", p.Name)
	}
	return nil
}

// UpdatePolicy implements access.Store.
func (db *DB) UpdatePolicy(ctx context.Context, p access.Policy) error {
	body, err := db.encode(p)
	if err != nil {
		return err
	}
	tag, err := db.pool.Exec(ctx, `UPDATE policies SET body = $1 WHERE scope = $2 AND name_key = $3`, body, string(p.Scope), strings.ToLower(p.Name))
	if err != nil {
		return fault.Wrap(fault.Internal, err, "update policy")
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.NotFound, "policy %q does not exist", p.Name)
	}
	return nil
}

// DeletePolicy implements access.Store.
func (db *DB) DeletePolicy(ctx context.Context, scope access.Scope, name string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM policies WHERE scope = $1 AND name_key = $2`, string(scope), strings.ToLower(name))
	if err != nil {
		return fault.Wrap(fault.Internal, err, "delete policy")
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.NotFound, "policy %q does not exist", name)
	}
	return nil
}
