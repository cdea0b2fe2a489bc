package postgres

import (
	"context"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
)

func (db *DB) registrations() table[dps.Registration] {
	return table[dps.Registration]{db: db, name: "registrations"}
}

// Registration implements dps.Store.
func (db *DB) Registration(ctx context.Context, id string) (dps.Registration, error) {
	return db.registrations().get(ctx, dps.IDKey(id))
}

// PutRegistration implements dps.Store.
func (db *DB) PutRegistration(ctx context.Context, r dps.Registration) error {
	body, err := db.encode(r)
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, putRegistrationSQL, dps.IDKey(r.RegistrationID), dps.IDKey(r.GroupID), r.ETag, body)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "put registration")
	}
	return nil
}

const putRegistrationSQL = `INSERT INTO registrations (id_key, group_key, etag, body) VALUES ($1, $2, $3, $4)
	ON CONFLICT (id_key) DO UPDATE SET group_key = excluded.group_key, etag = excluded.etag, body = excluded.body`

// DeleteRegistration implements dps.Store.
func (db *DB) DeleteRegistration(ctx context.Context, id, etag string) error {
	return db.registrations().delete(ctx, dps.IDKey(id), etag)
}

// Registrations implements dps.Store.
func (db *DB) Registrations(ctx context.Context, groupID, after string, limit int) ([]dps.Registration, error) {
	return db.registrations().list(ctx, `group_key = $1 AND id_key > $2`, []any{dps.IDKey(groupID), after}, limit)
}
