package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
)

// PutOperation implements dps.Store.
// Both writes travel in one batch, which PostgreSQL runs as one implicit
// transaction: one round trip, all or nothing.
func (db *DB) PutOperation(ctx context.Context, op dps.Operation, record *dps.Registration) error {
	body, err := db.encode(op)
	if err != nil {
		return err
	}
	var b pgx.Batch
	if record != nil {
		recBody, err := db.encode(*record)
		if err != nil {
			return err
		}
		b.Queue(putRegistrationSQL, dps.IDKey(record.RegistrationID), dps.IDKey(record.GroupID), record.ETag, recBody)
	}
	b.Queue(`INSERT INTO operations (operation_id, created_unix, body) VALUES ($1, $2, $3)
		ON CONFLICT (operation_id) DO UPDATE SET body = excluded.body`, op.ID, op.Created.Unix(), body)
	if err := db.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fault.Wrap(fault.Internal, err, "put operation")
	}
	return nil
}

// Operation implements dps.Store.
func (db *DB) Operation(ctx context.Context, id string) (dps.Operation, error) {
	return readOne[dps.Operation](ctx, db, `SELECT body FROM operations WHERE operation_id = $1`, id)
}

// DeleteOperationsBefore implements dps.Store.
func (db *DB) DeleteOperationsBefore(ctx context.Context, t time.Time) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM operations WHERE created_unix < $1`, t.Unix())
	if err != nil {
		return 0, fault.Wrap(fault.Internal, err, "delete operations")
	}
	return int(tag.RowsAffected()), nil
}
