package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/store/storetest"
)

// BenchmarkEnrollmentQuery pages enrollment queries over a store of
// storetest.BenchEnrollmentCount individual enrollments (default a
// million; set USHER_BENCH_ENROLLMENTS), see
// storetest.BenchEnrollmentQueries:
//
//	go test -run=NONE -bench=EnrollmentQuery -benchtime=200x -timeout=1h ./internal/store/sqlite/
//
// The database is built once per count and kept in the temporary
// directory (usher-bench-enrollments-v1-<n>.db), so later runs skip the
// build; delete the file to rebuild it.
func BenchmarkEnrollmentQuery(b *testing.B) {
	n := storetest.BenchEnrollmentCount(b, storetest.DefaultBenchEnrollments)
	db := openBenchStore(b, n)
	storetest.BenchEnrollmentQueries(b, db, n)
}

// openBenchStore opens the cached benchmark database of n enrollments,
// building it first if needed.
func openBenchStore(b *testing.B, n int) *DB {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("usher-bench-enrollments-v1-%d.db", n))
	if _, err := os.Stat(path); err != nil {
		tmp := path + ".building"
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(tmp + suffix)
		}
		start := time.Now()
		db, err := Open(ctx, tmp)
		if err != nil {
			b.Fatal(err)
		}
		if err := bulkCreateEnrollments(ctx, db, n); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %d enrollments in %v", n, time.Since(start).Round(time.Second))
	}
	if fi, err := os.Stat(path); err == nil {
		b.Logf("database %s: %.0f MiB", path, float64(fi.Size())/(1<<20))
	}
	db, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// bulkCreateEnrollments writes storetest.BenchEnrollment(0…n-1) through
// the store's own statements and index upkeep (as CreateEnrollment does),
// 10,000 to a transaction.
func bulkCreateEnrollments(ctx context.Context, db *DB, n int) error {
	const perTx = 10_000
	t := db.enrollments()
	for lo := 0; lo < n; lo += perTx {
		err := db.tx(ctx, func(tx *wtx) error {
			for i := lo; i < min(lo+perTx, n); i++ {
				e := storetest.BenchEnrollment(i)
				body, err := encode(e)
				if err != nil {
					return err
				}
				key := dps.IDKey(e.RegistrationID)
				if _, err := tx.ExecContext(ctx, t.insertSQL(), append([]any{key, e.ETag, body}, t.indexValues(&e)...)...); err != nil {
					return err
				}
				if err := t.index.put(ctx, tx, key, &e, true); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// TestEnrollmentIndexBackfill: migration 0006 indexes the enrollments a
// database already holds (json_extract and json_each over the bodies).
func TestEnrollmentIndexBackfill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "usher.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	storetest.EnrollmentIndexBackfill(t, db, func(t *testing.T) storetest.Store {
		// Back to the schema before 0006, the records kept.
		if _, err := db.write.ExecContext(ctx, `DROP TABLE enrollment_tags; DROP INDEX enrollments_by_status;
			ALTER TABLE enrollments DROP COLUMN provisioning_status;
			DELETE FROM schema_migrations WHERE version = '0006_enrollment_index'`); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if db, err = Open(ctx, path); err != nil {
			t.Fatal(err)
		}
		return db
	})
}
