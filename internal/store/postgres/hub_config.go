package postgres

import (
	"context"

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
	return db.configurations().list(ctx, `TRUE`, nil, limit)
}

// DeviceDeployment implements hub.ConfigurationStore.
func (db *DB) DeviceDeployment(ctx context.Context, deviceID string) (hub.DeviceDeployment, error) {
	return readOne[hub.DeviceDeployment](ctx, db, `SELECT body FROM hub_device_deployments WHERE device_id = $1`, deviceID)
}

// PutDeviceDeployment implements hub.ConfigurationStore.
func (db *DB) PutDeviceDeployment(ctx context.Context, d hub.DeviceDeployment) error {
	body, err := db.encode(d)
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO hub_device_deployments (device_id, body) VALUES ($1, $2)
		ON CONFLICT (device_id) DO UPDATE SET body = excluded.body`, d.DeviceID, body)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "put device deployment")
	}
	return nil
}

// DeleteDeviceDeployment implements hub.ConfigurationStore.
func (db *DB) DeleteDeviceDeployment(ctx context.Context, deviceID string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM hub_device_deployments WHERE device_id = $1`, deviceID); err != nil {
		return fault.Wrap(fault.Internal, err, "delete device deployment")
	}
	return nil
}
