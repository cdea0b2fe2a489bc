package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

func enrollment(id string) dps.Enrollment {
	return dps.Enrollment{RegistrationID: id, Settings: dps.Settings{ETag: "e-" + id,
		Attestation: dps.Attestation{Type: dps.SymmetricKey, PrimaryKey: "cA==", SecondaryKey: "cQ=="}}}
}

// Concurrent writers share commits; each one's failure stays its own.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 200
	for i := 0; i < n; i += 2 { // every even ID exists already: creating it again conflicts
		if err := db.CreateEnrollment(ctx, enrollment(fmt.Sprintf("dev-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = db.CreateEnrollment(ctx, enrollment(fmt.Sprintf("dev-%03d", i))) })
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i%2 == 0 && !fault.Is(err, fault.Conflict):
			t.Errorf("dev-%03d: err = %v, want a conflict", i, err)
		case i%2 == 1 && err != nil:
			t.Errorf("dev-%03d: err = %v, want success", i, err)
		}
	}
	list, err := db.Enrollments(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Errorf("%d enrollments stored, want %d", len(list), n)
	}
}

// A caller whose context has ended before its turn writes nothing.
func TestGroupCommitCancelledCallerWritesNothing(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.CreateEnrollment(ctx, enrollment("late")); err == nil {
		t.Fatal("write with a cancelled context succeeded")
	}
	if _, err := db.Enrollment(context.Background(), "late"); !fault.Is(err, fault.NotFound) {
		t.Errorf("enrollment after a cancelled write: %v, want NotFound", err)
	}
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.CreateEnrollment(context.Background(), enrollment("after")); err == nil {
		t.Error("write after Close succeeded")
	}
	db.Close() // a second Close is harmless
}
