package postgres

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
	"github.com/usher-iot/usher/internal/store/storetest"
)

// BenchmarkEnrollmentQuery pages enrollment queries over a store of
// storetest.BenchEnrollmentCount individual enrollments (default a
// million; set USHER_BENCH_ENROLLMENTS), see
// storetest.BenchEnrollmentQueries:
//
//	go test -run=NONE -bench=EnrollmentQuery -benchtime=200x -timeout=1h ./internal/store/postgres/
//
// The enrollments are loaded with COPY into a fresh schema of the test
// server (pgtest), dropped at the end, then ANALYZEd as autovacuum would
// after a large load.
func BenchmarkEnrollmentQuery(b *testing.B) {
	n := storetest.BenchEnrollmentCount(b, storetest.DefaultBenchEnrollments)
	ctx := context.Background()
	db, err := Open(ctx, pgtest.SchemaURL(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	start := time.Now()
	if err := copyEnrollments(ctx, db, n); err != nil {
		b.Fatal(err)
	}
	var size string
	if err := db.pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('enrollments') + pg_total_relation_size('enrollment_tags'))`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d enrollments in %v; tables with indexes: %s", n, time.Since(start).Round(time.Second), size)
	storetest.BenchEnrollmentQueries(b, db, n)
}

// copyEnrollments loads storetest.BenchEnrollment(0…n-1) with the rows
// CreateEnrollment writes (body, status column, tag rows), 10,000 per COPY.
func copyEnrollments(ctx context.Context, db *DB, n int) error {
	const chunk = 10_000
	for lo := 0; lo < n; lo += chunk {
		var recs, tags [][]any
		for i := lo; i < min(lo+chunk, n); i++ {
			e := storetest.BenchEnrollment(i)
			body, err := db.encode(e)
			if err != nil {
				return err
			}
			key := dps.IDKey(e.RegistrationID)
			recs = append(recs, append([]any{key, e.ETag, body}, enrollmentIndex{}.values(&e)...))
			for _, t := range dps.IndexedTags(&e) {
				tags = append(tags, []any{t.Name, t.Value, key})
			}
		}
		if _, err := db.pool.CopyFrom(ctx, pgx.Identifier{"enrollments"}, append([]string{"id_key", "etag", "body"}, enrollmentIndex{}.columns()...), pgx.CopyFromRows(recs)); err != nil {
			return err
		}
		if _, err := db.pool.CopyFrom(ctx, pgx.Identifier{"enrollment_tags"}, []string{"tag_name", "tag_value", "id_key"}, pgx.CopyFromRows(tags)); err != nil {
			return err
		}
	}
	_, err := db.pool.Exec(ctx, `ANALYZE enrollments; ANALYZE enrollment_tags`)
	return err
}

// TestEnrollmentIndexBackfill: after migration 0006 the store indexes the
// enrollments the database already holds, sealed or not, when a node next
// start (Open runs indexOlderEnrollments).
func TestEnrollmentIndexBackfill(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"ok/plain bodies", nil},
		{"ok/sealed bodies", bytes.Repeat([]byte{7}, SecretsKeySize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			url := pgtest.SchemaURL(t)
			db, err := Open(ctx, url, Options{SecretsKey: tc.key})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			storetest.EnrollmentIndexBackfill(t, db, func(t *testing.T) storetest.Store {
				// Back to the schema before 0006, the records kept.
				if _, err := db.pool.Exec(ctx, `DROP TABLE enrollment_tags;
					ALTER TABLE enrollments DROP COLUMN provisioning_status;
					DELETE FROM schema_migrations WHERE version = '0006_enrollment_index'`); err != nil {
					t.Fatal(err)
				}
				if err := db.migrate(ctx, ""); err != nil {
					t.Fatal(err)
				}
				var unindexed int
				if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM enrollments WHERE provisioning_status IS NULL`).Scan(&unindexed); err != nil || unindexed != 4 {
					t.Fatalf("after the migration: %d enrollments to index, %v; want 4", unindexed, err)
				}
				db.Close()
				if db, err = Open(ctx, url, Options{SecretsKey: tc.key}); err != nil {
					t.Fatal(err)
				}
				return db
			})
			var unindexed int
			if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM enrollments WHERE provisioning_status IS NULL`).Scan(&unindexed); err != nil || unindexed != 0 {
				t.Errorf("after a restart: %d enrollments left to index, %v", unindexed, err)
			}
		})
	}
}
