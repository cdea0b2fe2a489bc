package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

// TestSnapshotWhileWriting takes a snapshot while writers commit settings
// in order (n before n+1): the copy passes the integrity check and holds a
// gap-free prefix of them, so it is the database as of one commit.
func TestSnapshotWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var written atomic.Int64
	stop, enough := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() {
			if written.Load() < 200 {
				close(enough) // failed early: let the test go on and report it
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.PutSetting(ctx, fmt.Sprintf("k%06d", i), "v"); err != nil {
				t.Error(err)
				return
			}
			if written.Add(1) == 200 {
				close(enough)
			}
		}
	}()
	<-enough
	snap := filepath.Join(dir, "snap.db")
	if err := db.Snapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()

	rep, err := sqlite.Check(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sqlite.Migrations(), rep.Migrations); diff != "" {
		t.Errorf("migrations (-want +got):\n%s", diff)
	}
	var meta int64 = -1
	for _, tc := range rep.Tables {
		if tc.Name == "meta" {
			meta = tc.Rows
		}
	}
	if meta < 200 || meta > written.Load() {
		t.Fatalf("snapshot holds %d settings; want between 200 and %d", meta, written.Load())
	}
	copyDB, err := sqlite.Open(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer copyDB.Close()
	for i := int64(0); i < meta; i++ {
		if _, err := copyDB.Setting(ctx, fmt.Sprintf("k%06d", i)); err != nil {
			t.Fatalf("setting %d of %d missing from the snapshot: %v", i, meta, err)
		}
	}

	if err := db.Snapshot(ctx, snap); err == nil {
		t.Error("Snapshot over an existing file succeeded")
	}
}

func TestCheckRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte("this is not a database at all, not even close; padding padding padding padding padding padding"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "good.db"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		if err := db.PutSetting(ctx, fmt.Sprintf("key-%d", i), fmt.Sprintf("a value long enough to fill pages %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(dir, "snap.db")
	if err := db.Snapshot(ctx, good); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// Scribble over the middle of an index page area: the b-tree breaks.
	for i := len(b) / 2; i < len(b)/2+512; i++ {
		b[i] = 0xAA
	}
	damaged := filepath.Join(dir, "damaged.db")
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path string }{
		{"refused/missing file", filepath.Join(dir, "nothing.db")},
		{"refused/not a database", junk},
		{"refused/damaged pages", damaged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := sqlite.Check(ctx, tc.path); !fault.Is(err, fault.Invalid) {
				t.Errorf("Check = %v, want fault.Invalid", err)
			}
		})
	}
}
