package sqlite

import (
	"context"

	"github.com/usher-iot/usher/internal/dps"
)

var _ dps.Store = (*DB)(nil)

func (db *DB) enrollments() table[dps.Enrollment] {
	return table[dps.Enrollment]{db: db, name: "enrollments", index: enrollmentIndex{}}
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
	return db.enrollments().list(ctx, `id_key > ?`, []any{after}, limit)
}

// EnrollmentsWhere implements dps.Store. A tag filter walks
// enrollment_tags in (tag_name, tag_value, id_key) order and a status filter
// walks enrollments_by_status, so a page reads only the rows it returns
// (migrations/0006_enrollment_index.sql).
func (db *DB) EnrollmentsWhere(ctx context.Context, f dps.ListFilter) ([]dps.Enrollment, error) {
	t := db.enrollments()
	switch {
	case f.Tag != nil && f.Status != "":
		return t.query(ctx, `SELECT e.body FROM enrollment_tags t JOIN enrollments e ON e.id_key = t.id_key
			WHERE t.tag_name = ? AND t.tag_value = ? AND t.id_key > ? AND e.provisioning_status = ?
			ORDER BY t.id_key LIMIT ?`, f.Tag.Name, f.Tag.Value, f.After, string(f.Status), f.Limit)
	case f.Tag != nil:
		return t.query(ctx, `SELECT e.body FROM enrollment_tags t JOIN enrollments e ON e.id_key = t.id_key
			WHERE t.tag_name = ? AND t.tag_value = ? AND t.id_key > ?
			ORDER BY t.id_key LIMIT ?`, f.Tag.Name, f.Tag.Value, f.After, f.Limit)
	case f.Status != "":
		return t.query(ctx, `SELECT body FROM enrollments INDEXED BY enrollments_by_status
			WHERE provisioning_status = ? AND id_key > ? ORDER BY id_key LIMIT ?`, string(f.Status), f.After, f.Limit)
	}
	return db.Enrollments(ctx, f.After, f.Limit)
}

// enrollmentIndex keeps the provisioning_status column and the
// enrollment_tags rows of an enrollment (dps.IndexedTags).
type enrollmentIndex struct{}

func (enrollmentIndex) columns() []string { return []string{"provisioning_status"} }

func (enrollmentIndex) values(e *dps.Enrollment) []any {
	return []any{string(e.ProvisioningStatus)}
}

func (enrollmentIndex) put(ctx context.Context, tx *wtx, key string, e *dps.Enrollment, created bool) error {
	if !created {
		if _, err := tx.ExecContext(ctx, `DELETE FROM enrollment_tags WHERE id_key = ?`, key); err != nil {
			return err
		}
	}
	for _, tag := range dps.IndexedTags(e) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO enrollment_tags (tag_name, tag_value, id_key) VALUES (?, ?, ?)`, tag.Name, tag.Value, key); err != nil {
			return err
		}
	}
	return nil
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
	return db.groups().list(ctx, `id_key > ?`, []any{after}, limit)
}
