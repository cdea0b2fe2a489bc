package postgres

import (
	"context"

	"github.com/usher-iot/usher/internal/dps"
)

var _ dps.Store = (*DB)(nil)

func (db *DB) enrollments() table[dps.Enrollment] {
	return table[dps.Enrollment]{db: db, name: "enrollments"}
}

func (db *DB) groups() table[dps.Group] {
	return table[dps.Group]{db: db, name: "enrollment_groups"}
}

// Enrollment implements dps.Store.
func (db *DB) Enrollment(ctx context.Context, id string) (dps.Enrollment, error) {
	return db.enrollments().get(ctx, dps.IDKey(id))
}

// CreateEnrollment implements dps.Store.
func (db *DB) CreateEnrollment(ctx context.Context, e dps.Enrollment) error {
	return db.enrollments().create(ctx, dps.IDKey(e.RegistrationID), e.ETag, e)
}

// UpdateEnrollment implements dps.Store.
func (db *DB) UpdateEnrollment(ctx context.Context, e dps.Enrollment, etag string) error {
	return db.enrollments().update(ctx, dps.IDKey(e.RegistrationID), etag, e.ETag, e)
}

// DeleteEnrollment implements dps.Store.
func (db *DB) DeleteEnrollment(ctx context.Context, id, etag string) error {
	return db.enrollments().delete(ctx, dps.IDKey(id), etag)
}

// Enrollments implements dps.Store.
func (db *DB) Enrollments(ctx context.Context, after string, limit int) ([]dps.Enrollment, error) {
	return db.enrollments().list(ctx, `id_key > $1`, []any{after}, limit)
}

// Group implements dps.Store.
func (db *DB) Group(ctx context.Context, id string) (dps.Group, error) {
	return db.groups().get(ctx, dps.IDKey(id))
}

// CreateGroup implements dps.Store.
func (db *DB) CreateGroup(ctx context.Context, g dps.Group) error {
	return db.groups().create(ctx, dps.IDKey(g.ID), g.ETag, g)
}

// UpdateGroup implements dps.Store.
func (db *DB) UpdateGroup(ctx context.Context, g dps.Group, etag string) error {
	return db.groups().update(ctx, dps.IDKey(g.ID), etag, g.ETag, g)
}

// DeleteGroup implements dps.Store.
func (db *DB) DeleteGroup(ctx context.Context, id, etag string) error {
	return db.groups().delete(ctx, dps.IDKey(id), etag)
}

// Groups implements dps.Store.
func (db *DB) Groups(ctx context.Context, after string, limit int) ([]dps.Group, error) {
	return db.groups().list(ctx, `id_key > $1`, []any{after}, limit)
}
