package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/instance"
)

var _ instance.Store = (*DB)(nil)

// Setting returns the value stored under key, fault.NotFound when unset.
func (db *DB) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := db.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fault.New(fault.NotFound, "setting %q is not set", key)
	}
	if err != nil {
		return "", fault.Wrap(fault.Internal, err, "read setting")
	}
	return db.secrets.open(v)
}

// InitSetting stores value under key unless a value is there already, and
// returns the value that is stored afterwards (first writer wins, across
// nodes too: the losing INSERT waits for the winner's commit).
func (db *DB) InitSetting(ctx context.Context, key, value string) (string, error) {
	for {
		var out string
		err := db.pool.QueryRow(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING value`, key, db.secrets.seal(value)).Scan(&out)
		if err == nil {
			return db.secrets.open(out)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return "", fault.Wrap(fault.Internal, err, "init setting")
		}
		// Someone else's value is there. A new statement sees it; it is
		// gone again only if deleted meanwhile, which nothing does, but
		// then the loop inserts.
		out, err = db.Setting(ctx, key)
		if !fault.Is(err, fault.NotFound) {
			return out, err
		}
		if err := ctx.Err(); err != nil {
			return "", fault.Wrap(fault.Unavailable, err, "init setting")
		}
	}
}

// PutSetting stores value under key, replacing any value.
func (db *DB) PutSetting(ctx context.Context, key, value string) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, db.secrets.seal(value))
	if err != nil {
		return fault.Wrap(fault.Internal, err, "put setting")
	}
	return nil
}
