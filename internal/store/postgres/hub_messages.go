package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

// appendLock is the pg_advisory_xact_lock key that serialises appends to
// hub_messages ("usher-m" in ASCII).
const appendLock = 0x75736865722d6d

// AppendMessage implements hub.MessageStore. An identity sequence never
// reuses a number, but concurrent inserts may commit out of order, and a
// reader following by seq would then skip the late one. Appends therefore
// take an advisory lock, on every node, so numbers are committed in the
// order they are drawn. Numbers may have gaps (a rolled-back insert keeps
// its number), so trimming counts rows rather than subtracting.
func (db *DB) AppendMessage(ctx context.Context, m hub.Message, keep int) error {
	body := m.Body
	if body == nil {
		body = []byte{}
	}
	m.Seq, m.Body = 0, nil
	meta, err := db.encode(m)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(appendLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO hub_messages (device_id, module_id, meta, body) VALUES ($1, $2, $3, $4)`, m.DeviceID, m.ModuleID, meta, body); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM hub_messages WHERE seq < (
			SELECT min(seq) FROM (SELECT seq FROM hub_messages ORDER BY seq DESC LIMIT $1) newest)`, max(keep, 1))
		return err
	})
}

// Messages implements hub.MessageStore.
func (db *DB) Messages(ctx context.Context, afterSeq int64, limit int) ([]hub.Message, error) {
	rows, err := db.pool.Query(ctx, `SELECT seq, meta, body FROM hub_messages WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, limit)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read messages")
	}
	defer rows.Close()
	var out []hub.Message
	for rows.Next() {
		var seq int64
		var meta string
		var body []byte
		if err := rows.Scan(&seq, &meta, &body); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "read messages")
		}
		m, err := decode[hub.Message](db, meta)
		if err != nil {
			return nil, err
		}
		m.Seq, m.Body = seq, body
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "read messages")
	}
	return out, nil
}
