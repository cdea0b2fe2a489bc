package sqlite

import (
	"context"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

// AppendMessage implements hub.MessageStore. AUTOINCREMENT numbers are
// contiguous here (one writer; a rolled-back insert rolls its number back
// too), so the newest keep messages are exactly those after seq-keep.
func (db *DB) AppendMessage(ctx context.Context, m hub.Message, keep int) error {
	body := m.Body
	if body == nil {
		body = []byte{}
	}
	m.Seq, m.Body = 0, nil
	meta, err := encode(m)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO hub_messages (device_id, module_id, meta, body) VALUES (?, ?, ?, ?)`, m.DeviceID, m.ModuleID, meta, body)
		if err != nil {
			return err
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM hub_messages WHERE seq <= ?`, seq-int64(max(keep, 1)))
		return err
	})
}

// Messages implements hub.MessageStore.
func (db *DB) Messages(ctx context.Context, afterSeq int64, limit int) ([]hub.Message, error) {
	rows, err := db.reads.QueryContext(ctx, `SELECT seq, meta, body FROM hub_messages WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, limit)
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
		m, err := decode[hub.Message](meta)
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
