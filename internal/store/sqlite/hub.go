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

// Devices implements hub.Store.
func (db *DB) Devices(ctx context.Context, after string, limit int) ([]hub.Device, error) {
	return listBodies[hub.Device](ctx, db, `SELECT body FROM hub_devices WHERE device_id > ? ORDER BY device_id LIMIT ?`, after, limit)
}

// Modules implements hub.Store.
func (db *DB) Modules(ctx context.Context, deviceID string) ([]hub.Module, error) {
	return listBodies[hub.Module](ctx, db, `SELECT body FROM hub_modules WHERE device_id = ? ORDER BY module_id`, deviceID)
}

// listBodies runs a query selecting one body column and decodes each row.
func listBodies[T any](ctx context.Context, db *DB, q string, args ...any) ([]T, error) {
	rows, err := db.reads.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "list")
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, fault.Wrap(fault.Internal, err, "list")
		}
		v, err := decode[T](body)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, internal(rows.Err())
}

// DeleteDevice implements hub.Store.
func (db *DB) DeleteDevice(ctx context.Context, id, etag string) error {
	return db.tx(ctx, func(tx *wtx) error {
		if err := deleteWhereETag(ctx, tx, `DELETE FROM hub_devices WHERE device_id = ? AND (? = '' OR etag = ?)`,
			`SELECT count(*) FROM hub_devices WHERE device_id = ?`, etag, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM hub_modules WHERE device_id = ?`, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM hub_twins WHERE device_id = ?`, id)
		return err
	})
}

// CreateModule implements hub.Store.
func (db *DB) CreateModule(ctx context.Context, m hub.Module, twin hub.Twin) error {
	body, err := encode(m)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *wtx) error {
		var c int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM hub_devices WHERE device_id = ?`, m.DeviceID).Scan(&c); err != nil {
			return err
		}
		if c == 0 {
			return fault.New(fault.NotFound, "device not found")
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO hub_modules (device_id, module_id, etag, body) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, m.DeviceID, m.ID, m.ETag, body)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fault.New(fault.Conflict, "module exists")
		}
		return putTwin(ctx, tx, twin)
	})
}

// UpdateModule implements hub.Store.
func (db *DB) UpdateModule(ctx context.Context, m hub.Module, etag string) error {
	body, err := encode(m)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE hub_modules SET etag = ?, body = ? WHERE device_id = ? AND module_id = ? AND (? = '' OR etag = ?)`,
			m.ETag, body, m.DeviceID, m.ID, etag, etag)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return absentOrStale(ctx, tx, `SELECT count(*) FROM hub_modules WHERE device_id = ? AND module_id = ?`, m.DeviceID, m.ID)
		}
		return nil
	})
}

// DeleteModule implements hub.Store.
func (db *DB) DeleteModule(ctx context.Context, deviceID, moduleID, etag string) error {
	return db.tx(ctx, func(tx *wtx) error {
		if err := deleteWhereETag(ctx, tx, `DELETE FROM hub_modules WHERE device_id = ? AND module_id = ? AND (? = '' OR etag = ?)`,
			`SELECT count(*) FROM hub_modules WHERE device_id = ? AND module_id = ?`, etag, deviceID, moduleID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM hub_twins WHERE device_id = ? AND module_id = ?`, deviceID, moduleID)
		return err
	})
}

// deleteWhereETag runs del with the key args followed by etag twice; when
// it deletes nothing, count (with the key args) tells NotFound from
// PreconditionFailed.
func deleteWhereETag(ctx context.Context, tx *wtx, del, count, etag string, key ...any) error {
	res, err := tx.ExecContext(ctx, del, append(key, etag, etag)...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return absentOrStale(ctx, tx, count, key...)
	}
	return nil
}

// absentOrStale explains a conditional write that touched no row: the row
// does not exist (NotFound) or its etag differs (PreconditionFailed).
func absentOrStale(ctx context.Context, tx *wtx, count string, key ...any) error {
	var c int
	if err := tx.QueryRowContext(ctx, count, key...).Scan(&c); err != nil {
		return err
	}
	if c == 0 {
		return fault.New(fault.NotFound, "not found")
	}
	return fault.New(fault.PreconditionFailed, "etag mismatch")
}
