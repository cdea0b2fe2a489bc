package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
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
	return db.enrollments().list(ctx, `id_key > $1`, []any{after}, limit)
}

// EnrollmentsWhere implements dps.Store. A tag filter walks
// enrollment_tags in (tag_name, tag_value, id_key) order and a status filter
// walks enrollments_by_status, so a page reads only the rows it returns
// (migrations/0006_enrollment_index.sql). Enrollments written before that
// migration are indexed when a node opens the store (indexOlderEnrollments).
//
// These statements are planned for their arguments on every call
// (QueryExecModeExec), not once for any: whether the status index or the
// primary key serves a status best depends on how common the status is,
// and a plan cached for "enabled" scans a million rows to page through a
// rare "disabled". A cursor bounds both sides of a join, since PostgreSQL
// does not carry t.id_key > $3 over to e.id_key.
func (db *DB) EnrollmentsWhere(ctx context.Context, f dps.ListFilter) ([]dps.Enrollment, error) {
	if f.Tag == nil && f.Status == "" {
		return db.Enrollments(ctx, f.After, f.Limit)
	}
	const planned = pgx.QueryExecModeExec
	switch {
	case f.Tag != nil && f.Status != "":
		return listBodies[dps.Enrollment](ctx, db, `SELECT e.body FROM enrollment_tags t JOIN enrollments e ON e.id_key = t.id_key
			WHERE t.tag_name = $1 AND t.tag_value = $2 AND t.id_key > $3 AND e.id_key > $3 AND e.provisioning_status = $4
			ORDER BY t.id_key LIMIT $5`, planned, f.Tag.Name, f.Tag.Value, f.After, string(f.Status), f.Limit)
	case f.Tag != nil:
		return listBodies[dps.Enrollment](ctx, db, `SELECT e.body FROM (
				SELECT id_key FROM enrollment_tags WHERE tag_name = $1 AND tag_value = $2 AND id_key > $3
				ORDER BY id_key LIMIT $4) t
			JOIN enrollments e ON e.id_key = t.id_key AND e.id_key > $3
			ORDER BY t.id_key`, planned, f.Tag.Name, f.Tag.Value, f.After, f.Limit)
	}
	return listBodies[dps.Enrollment](ctx, db, `SELECT body FROM enrollments
		WHERE provisioning_status = $1 AND id_key > $2 ORDER BY id_key LIMIT $3`, planned, string(f.Status), f.After, f.Limit)
}

// indexOlderEnrollments indexes the enrollments whose provisioning_status
// is NULL: those written before migration 0006, which could not index them
// in SQL because bodies may be sealed (secrets.go). Open runs it after the
// migrations; every write since sets the column, so on later starts it is
// one probe of an empty partial index. (During a rolling upgrade, records
// written by nodes still on an older release are indexed at the next start.)
// Each row is claimed by an update that requires the column to be still
// NULL, so concurrent callers (several nodes) index a row once, and a
// record rewritten since it was read keeps what its writer indexed. Every
// pass claims or skips each row it read, so the loop ends.
func (db *DB) indexOlderEnrollments(ctx context.Context) error {
	const batch = 500
	for {
		type older struct{ key, body string }
		rows, err := db.pool.Query(ctx, `SELECT id_key, body FROM enrollments
			WHERE provisioning_status IS NULL ORDER BY id_key LIMIT $1`, batch)
		if err != nil {
			return fault.Wrap(fault.Internal, err, "find enrollments to index")
		}
		todo, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (older, error) {
			var o older
			err := r.Scan(&o.key, &o.body)
			return o, err
		})
		if err != nil {
			return fault.Wrap(fault.Internal, err, "find enrollments to index")
		}
		if len(todo) == 0 {
			return nil
		}
		err = db.tx(ctx, func(tx pgx.Tx) error {
			for _, o := range todo {
				e, err := decode[dps.Enrollment](db, o.body)
				if err != nil {
					return err
				}
				tag, err := tx.Exec(ctx, `UPDATE enrollments SET provisioning_status = $1
					WHERE id_key = $2 AND provisioning_status IS NULL`, string(e.ProvisioningStatus), o.key)
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 1 {
					if err := (enrollmentIndex{}).put(ctx, tx, o.key, &e, false); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil || len(todo) < batch {
			return err
		}
	}
}

// enrollmentIndex keeps the provisioning_status column and the
// enrollment_tags rows of an enrollment (dps.IndexedTags).
type enrollmentIndex struct{}

func (enrollmentIndex) columns() []string { return []string{"provisioning_status"} }

func (enrollmentIndex) values(e *dps.Enrollment) []any {
	return []any{string(e.ProvisioningStatus)}
}

// put replaces the tag rows in one statement: it deletes those no longer
// there and inserts the new ones (the rows kept are skipped by ON CONFLICT).
func (enrollmentIndex) put(ctx context.Context, tx pgx.Tx, key string, e *dps.Enrollment, created bool) error {
	tags := dps.IndexedTags(e)
	if created && len(tags) == 0 {
		return nil
	}
	names, values := make([]string, len(tags)), make([]string, len(tags))
	for i, t := range tags {
		names[i], values[i] = t.Name, t.Value
	}
	_, err := tx.Exec(ctx, `WITH gone AS (
			DELETE FROM enrollment_tags WHERE id_key = $3
			AND (tag_name, tag_value) NOT IN (SELECT n, v FROM unnest($1::text[], $2::text[]) AS t(n, v)))
		INSERT INTO enrollment_tags (tag_name, tag_value, id_key)
		SELECT n, v, $3 FROM unnest($1::text[], $2::text[]) AS t(n, v)
		ON CONFLICT DO NOTHING`, names, values, key)
	return err
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
