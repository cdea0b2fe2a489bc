package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/usher-iot/usher/internal/fault"
)

// Setting returns the value stored under key, fault.NotFound when unset.
func (db *DB) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := db.reads.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fault.New(fault.NotFound, "setting %q is not set", key)
	}
	if err != nil {
		return "", fault.Wrap(fault.Internal, err, "read setting")
	}
	return v, nil
}

// InitSetting stores value under key unless a value is there already, and
// returns the value that is stored afterwards (first writer wins).
func (db *DB) InitSetting(ctx context.Context, key, value string) (string, error) {
	var out string
	err := db.tx(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING`, key, value); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&out)
	})
	return out, err
}

// PutSetting stores value under key, replacing any value.
func (db *DB) PutSetting(ctx context.Context, key, value string) error {
	return db.tx(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}
