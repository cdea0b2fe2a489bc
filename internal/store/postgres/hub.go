package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

var _ hub.Store = (*DB)(nil)

// Device implements hub.Store.
func (db *DB) Device(ctx context.Context, id string) (hub.Device, error) {
	return readOne[hub.Device](ctx, db, `SELECT body FROM hub_devices WHERE device_id = $1`, id)
}

// Module implements hub.Store.
func (db *DB) Module(ctx context.Context, deviceID, moduleID string) (hub.Module, error) {
	return readOne[hub.Module](ctx, db, `SELECT body FROM hub_modules WHERE device_id = $1 AND module_id = $2`, deviceID, moduleID)
}

// Twin implements hub.Store.
func (db *DB) Twin(ctx context.Context, deviceID, moduleID string) (hub.Twin, error) {
	return readOne[hub.Twin](ctx, db, `SELECT body FROM hub_twins WHERE device_id = $1 AND module_id = $2`, deviceID, moduleID)
}

// CreateIdentity implements hub.Store.
func (db *DB) CreateIdentity(ctx context.Context, id hub.Identity) error {
	body, err := db.encode(id.Device)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO hub_devices (device_id, etag, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, id.Device.ID, id.Device.ETag, body)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fault.New(fault.Conflict, "device exists")
		}
		if err := db.putTwin(ctx, tx, id.Twin); err != nil {
			return err
		}
		return db.addModules(ctx, tx, id.Modules, id.ModuleTwins)
	})
}

// UpdateIdentity implements hub.Store.
func (db *DB) UpdateIdentity(ctx context.Context, d hub.Device, etag string, twin *hub.Twin, modules []hub.Module, moduleTwins []hub.Twin) error {
	body, err := db.encode(d)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx pgx.Tx) error {
		var changed, exists bool
		if err := tx.QueryRow(ctx, `WITH changed AS (
				UPDATE hub_devices SET etag = $1, body = $2 WHERE device_id = $3 AND ($4 = '' OR etag = $4) RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM hub_devices WHERE device_id = $3)`,
			d.ETag, body, d.ID, etag).Scan(&changed, &exists); err != nil {
			return err
		}
		if err := conditional(changed, exists); err != nil {
			return err
		}
		if twin != nil {
			if err := db.putTwin(ctx, tx, *twin); err != nil {
				return err
			}
		}
		return db.addModules(ctx, tx, modules, moduleTwins)
	})
}

func (db *DB) putTwin(ctx context.Context, tx pgx.Tx, t hub.Twin) error {
	body, err := db.encode(t)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO hub_twins (device_id, module_id, etag, body) VALUES ($1, $2, $3, $4)
		ON CONFLICT (device_id, module_id) DO UPDATE SET etag = excluded.etag, body = excluded.body`, t.DeviceID, t.ModuleID, t.ETag, body)
	return err
}

// addModules creates the modules (and their twins) that do not exist yet.
func (db *DB) addModules(ctx context.Context, tx pgx.Tx, modules []hub.Module, twins []hub.Twin) error {
	for i, m := range modules {
		body, err := db.encode(m)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO hub_modules (device_id, module_id, etag, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, m.DeviceID, m.ID, m.ETag, body)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 && i < len(twins) {
			if err := db.putTwin(ctx, tx, twins[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// UpdateTwin implements hub.Store.
func (db *DB) UpdateTwin(ctx context.Context, t hub.Twin, etag string) error {
	body, err := db.encode(t)
	if err != nil {
		return err
	}
	return conditionalExec(ctx, db, `WITH changed AS (
			UPDATE hub_twins SET etag = $1, body = $2 WHERE device_id = $3 AND module_id = $4 AND ($5 = '' OR etag = $5) RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM hub_twins WHERE device_id = $3 AND module_id = $4)`,
		t.ETag, body, t.DeviceID, t.ModuleID, etag)
}

// TwinRecords implements hub.Store.
func (db *DB) TwinRecords(ctx context.Context, modules bool, after hub.TwinKey, limit int) ([]hub.TwinRecord, error) {
	rows, err := db.pool.Query(ctx, `SELECT t.body, d.body FROM hub_twins t JOIN hub_devices d ON d.device_id = t.device_id
		WHERE (t.module_id = '') = $1 AND (t.device_id, t.module_id) > ($2, $3)
		ORDER BY t.device_id, t.module_id LIMIT $4`, !modules, after.DeviceID, after.ModuleID, limit)
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
		t, err := decode[hub.Twin](db, tb)
		if err != nil {
			return nil, err
		}
		d, err := decode[hub.Device](db, dbody)
		if err != nil {
			return nil, err
		}
		out = append(out, hub.TwinRecord{Twin: t, Device: d})
	}
	if err := rows.Err(); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "list twins")
	}
	return out, nil
}

// Devices implements hub.Store.
func (db *DB) Devices(ctx context.Context, after string, limit int) ([]hub.Device, error) {
	return listBodies[hub.Device](ctx, db, `SELECT body FROM hub_devices WHERE device_id > $1 ORDER BY device_id LIMIT $2`, after, limit)
}

// Modules implements hub.Store.
func (db *DB) Modules(ctx context.Context, deviceID string) ([]hub.Module, error) {
	return listBodies[hub.Module](ctx, db, `SELECT body FROM hub_modules WHERE device_id = $1 ORDER BY module_id`, deviceID)
}

// DeleteDevice implements hub.Store.
func (db *DB) DeleteDevice(ctx context.Context, id, etag string) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		var changed, exists bool
		if err := tx.QueryRow(ctx, `WITH changed AS (
				DELETE FROM hub_devices WHERE device_id = $1 AND ($2 = '' OR etag = $2) RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM hub_devices WHERE device_id = $1)`,
			id, etag).Scan(&changed, &exists); err != nil {
			return err
		}
		if err := conditional(changed, exists); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM hub_modules WHERE device_id = $1`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM hub_twins WHERE device_id = $1`, id)
		return err
	})
}

// CreateModule implements hub.Store.
func (db *DB) CreateModule(ctx context.Context, m hub.Module, twin hub.Twin) error {
	body, err := db.encode(m)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx pgx.Tx) error {
		// FOR SHARE keeps the device from being deleted until the module
		// and its twin are committed.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hub_devices WHERE device_id = $1 FOR SHARE)`, m.DeviceID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fault.New(fault.NotFound, "device not found")
		}
		tag, err := tx.Exec(ctx, `INSERT INTO hub_modules (device_id, module_id, etag, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, m.DeviceID, m.ID, m.ETag, body)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fault.New(fault.Conflict, "module exists")
		}
		return db.putTwin(ctx, tx, twin)
	})
}

// UpdateModule implements hub.Store.
func (db *DB) UpdateModule(ctx context.Context, m hub.Module, etag string) error {
	body, err := db.encode(m)
	if err != nil {
		return err
	}
	return conditionalExec(ctx, db, `WITH changed AS (
			UPDATE hub_modules SET etag = $1, body = $2 WHERE device_id = $3 AND module_id = $4 AND ($5 = '' OR etag = $5) RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM hub_modules WHERE device_id = $3 AND module_id = $4)`,
		m.ETag, body, m.DeviceID, m.ID, etag)
}

// DeleteModule implements hub.Store.
func (db *DB) DeleteModule(ctx context.Context, deviceID, moduleID, etag string) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		var changed, exists bool
		if err := tx.QueryRow(ctx, `WITH changed AS (
				DELETE FROM hub_modules WHERE device_id = $1 AND module_id = $2 AND ($3 = '' OR etag = $3) RETURNING 1)
			SELECT EXISTS (SELECT 1 FROM changed), EXISTS (SELECT 1 FROM hub_modules WHERE device_id = $1 AND module_id = $2)`,
			deviceID, moduleID, etag).Scan(&changed, &exists); err != nil {
			return err
		}
		if err := conditional(changed, exists); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM hub_twins WHERE device_id = $1 AND module_id = $2`, deviceID, moduleID)
		return err
	})
}
