package sqlite

import (
	"context"
	"time"

	"github.com/usher-iot/usher/internal/dps"
)

// PutOperation implements dps.Store.
func (db *DB) PutOperation(ctx context.Context, op dps.Operation, record *dps.Registration) error {
	body, err := encode(op)
	if err != nil {
		return err
	}
	var recBody string
	if record != nil {
		if recBody, err = encode(*record); err != nil {
			return err
		}
	}
	return db.tx(ctx, func(tx *wtx) error {
		if record != nil {
			if err := putRegistration(ctx, tx, *record, recBody); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO operations (operation_id, created_unix, body) VALUES (?, ?, ?)
			ON CONFLICT (operation_id) DO UPDATE SET body = excluded.body`, op.ID, op.Created.Unix(), body)
		return err
	})
}

// Operation implements dps.Store.
func (db *DB) Operation(ctx context.Context, id string) (dps.Operation, error) {
	body, err := db.readOne(ctx, `SELECT body FROM operations WHERE operation_id = ?`, id)
	if err != nil {
		return dps.Operation{}, err
	}
	return decode[dps.Operation](body)
}

// DeleteOperationsBefore implements dps.Store.
func (db *DB) DeleteOperationsBefore(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM operations WHERE created_unix < ?`, t.Unix())
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}
