package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

var _ hub.Store = (*DB)(nil)

func (db *DB) readOne(ctx context.Context, query string, args ...any) (string, error) {
	var body string
	err := db.reads.QueryRowContext(ctx, query, args...).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fault.New(fault.NotFound, "not found")
	}
	if err != nil {
		return "", fault.Wrap(fault.Internal, err, "read")
	}
	return body, nil
}

// Device implements hub.Store.
func (db *DB) Device(ctx context.Context, id string) (hub.Device, error) {
	body, err := db.readOne(ctx, `SELECT body FROM hub_devices WHERE device_id = ?`, id)
	if err != nil {
		return hub.Device{}, err
	}
	return decode[hub.Device](body)
}

// Module implements hub.Store.
func (db *DB) Module(ctx context.Context, deviceID, moduleID string) (hub.Module, error) {
	body, err := db.readOne(ctx, `SELECT body FROM hub_modules WHERE device_id = ? AND module_id = ?`, deviceID, moduleID)
	if err != nil {
		return hub.Module{}, err
	}
	return decode[hub.Module](body)
}

// Twin implements hub.Store.
func (db *DB) Twin(ctx context.Context, deviceID, moduleID string) (hub.Twin, error) {
	body, err := db.readOne(ctx, `SELECT body FROM hub_twins WHERE device_id = ? AND module_id = ?`, deviceID, moduleID)
	if err != nil {
		return hub.Twin{}, err
	}
	return decode[hub.Twin](body)
}

// CreateIdentity implements hub.Store.
func (db *DB) CreateIdentity(ctx context.Context, id hub.Identity) error {
	return db.tx(ctx, func(tx *wtx) error {
		body, err := encode(id.Device)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO hub_devices (device_id, etag, body) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, id.Device.ID, id.Device.ETag, body)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fault.New(fault.Conflict, "device exists")
		}
		if err := putTwin(ctx, tx, id.Twin); err != nil {
			return err
		}
		return addModules(ctx, tx, id.Modules, id.ModuleTwins)
	})
}

// UpdateIdentity implements hub.Store.
func (db *DB) UpdateIdentity(ctx context.Context, d hub.Device, etag string, twin *hub.Twin, modules []hub.Module, moduleTwins []hub.Twin) error {
	body, err := encode(d)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE hub_devices SET etag = ?, body = ? WHERE device_id = ? AND (? = '' OR etag = ?)`, d.ETag, body, d.ID, etag, etag)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var c int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM hub_devices WHERE device_id = ?`, d.ID).Scan(&c); err != nil {
				return err
			}
			if c == 0 {
				return fault.New(fault.NotFound, "not found")
			}
			return fault.New(fault.PreconditionFailed, "etag mismatch")
		}
		if twin != nil {
			if err := putTwin(ctx, tx, *twin); err != nil {
				return err
			}
		}
		return addModules(ctx, tx, modules, moduleTwins)
	})
}

func putTwin(ctx context.Context, tx *wtx, t hub.Twin) error {
	body, err := encode(t)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO hub_twins (device_id, module_id, etag, body) VALUES (?, ?, ?, ?)
		ON CONFLICT (device_id, module_id) DO UPDATE SET etag = excluded.etag, body = excluded.body`, t.DeviceID, t.ModuleID, t.ETag, body)
	return err
}

// addModules creates the modules (and their twins) that do not exist yet.
func addModules(ctx context.Context, tx *wtx, modules []hub.Module, twins []hub.Twin) error {
	for i, m := range modules {
		body, err := encode(m)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO hub_modules (device_id, module_id, etag, body) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, m.DeviceID, m.ID, m.ETag, body)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 && i < len(twins) {
			if err := putTwin(ctx, tx, twins[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// UpdateTwin implements hub.Store.
func (db *DB) UpdateTwin(ctx context.Context, t hub.Twin, etag string) error {
	body, err := encode(t)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE hub_twins SET etag = ?, body = ? WHERE device_id = ? AND module_id = ? AND (? = '' OR etag = ?)`, t.ETag, body, t.DeviceID, t.ModuleID, etag, etag)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var c int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM hub_twins WHERE device_id = ? AND module_id = ?`, t.DeviceID, t.ModuleID).Scan(&c); err != nil {
				return err
			}
			if c == 0 {
				return fault.New(fault.NotFound, "not found")
			}
			return fault.New(fault.PreconditionFailed, "etag mismatch")
		}
		return nil
	})
}

// TwinRecords implements hub.Store.
func (db *DB) TwinRecords(ctx context.Context, modules bool, after hub.TwinKey, limit int) ([]hub.TwinRecord, error) {
	q := `SELECT t.body, d.body FROM hub_twins t JOIN hub_devices d ON d.device_id = t.device_id
		WHERE (t.module_id = '') = ? AND (t.device_id > ? OR (t.device_id = ? AND t.module_id > ?))
		ORDER BY t.device_id, t.module_id LIMIT ?`
	rows, err := db.reads.QueryContext(ctx, q, !modules, after.DeviceID, after.DeviceID, after.ModuleID, limit)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "list twins")
	}
	defer rows.Close()
	var out []hub.TwinRecord
	for rows.Next() {
		var tb, dbody string
		if err := rows.Scan(&tb, &dbody); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "list twins")
		}
		t, err := decode[hub.Twin](tb)
		if err != nil {
			return nil, err
		}
		d, err := decode[hub.Device](dbody)
		if err != nil {
			return nil, err
		}
		out = append(out, hub.TwinRecord{Twin: t, Device: d})
	}
	return out, internal(rows.Err())
}
