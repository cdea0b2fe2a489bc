package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

var _ hub.ConfigurationStore = (*DB)(nil)

func (db *DB) configurations() table[hub.Configuration] {
	return table[hub.Configuration]{db: db, name: "hub_configurations"}
}

// Configuration implements hub.ConfigurationStore.
func (db *DB) Configuration(ctx context.Context, id string) (hub.Configuration, error) {
	return db.configurations().get(ctx, id)
}

// CreateConfiguration implements hub.ConfigurationStore.
func (db *DB) CreateConfiguration(ctx context.Context, c hub.Configuration) error {
	return db.configurations().create(ctx, c.ID, c.ETag, c)
}

// UpdateConfiguration implements hub.ConfigurationStore.
func (db *DB) UpdateConfiguration(ctx context.Context, c hub.Configuration, etag string) error {
	return db.configurations().update(ctx, c.ID, etag, c.ETag, c)
}

// DeleteConfiguration implements hub.ConfigurationStore.
func (db *DB) DeleteConfiguration(ctx context.Context, id, etag string) error {
	return db.configurations().delete(ctx, id, etag)
}

// Configurations implements hub.ConfigurationStore.
func (db *DB) Configurations(ctx context.Context, limit int) ([]hub.Configuration, error) {
	return db.configurations().list(ctx, `1 = 1`, nil, limit)
}

// DeviceDeployment implements hub.ConfigurationStore.
func (db *DB) DeviceDeployment(ctx context.Context, deviceID string) (hub.DeviceDeployment, error) {
	var body string
	err := db.reads.QueryRowContext(ctx, `SELECT body FROM hub_device_deployments WHERE device_id = ?`, deviceID).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return hub.DeviceDeployment{}, fault.New(fault.NotFound, "not found")
	}
	if err != nil {
		return hub.DeviceDeployment{}, fault.Wrap(fault.Internal, err, "read device deployment")
	}
	return decode[hub.DeviceDeployment](body)
}

// PutDeviceDeployment implements hub.ConfigurationStore.
func (db *DB) PutDeviceDeployment(ctx context.Context, d hub.DeviceDeployment) error {
	body, err := encode(d)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hub_device_deployments (device_id, body) VALUES (?, ?)
			ON CONFLICT (device_id) DO UPDATE SET body = excluded.body`, d.DeviceID, body)
		return err
	})
}

// DeleteDeviceDeployment implements hub.ConfigurationStore.
func (db *DB) DeleteDeviceDeployment(ctx context.Context, deviceID string) error {
	return db.tx(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM hub_device_deployments WHERE device_id = ?`, deviceID)
		return err
	})
}
