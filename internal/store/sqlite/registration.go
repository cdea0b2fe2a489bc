package sqlite

import (
	"context"

	"github.com/usher-iot/usher/internal/dps"
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
	body, err := encode(r)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *wtx) error { return putRegistration(ctx, tx, r, body) })
}

func putRegistration(ctx context.Context, tx *wtx, r dps.Registration, body string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO registrations (id_key, group_key, etag, body) VALUES (?, ?, ?, ?)
		ON CONFLICT (id_key) DO UPDATE SET group_key = excluded.group_key, etag = excluded.etag, body = excluded.body`,
		dps.IDKey(r.RegistrationID), dps.IDKey(r.GroupID), r.ETag, body)
	return err
}

// DeleteRegistration implements dps.Store.
func (db *DB) DeleteRegistration(ctx context.Context, id, etag string) error {
	return db.registrations().delete(ctx, dps.IDKey(id), etag)
}

// Registrations implements dps.Store.
func (db *DB) Registrations(ctx context.Context, groupID, after string, limit int) ([]dps.Registration, error) {
	return db.registrations().list(ctx, `group_key = ? AND id_key > ?`, []any{dps.IDKey(groupID), after}, limit)
}
