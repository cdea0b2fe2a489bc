package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

// TestSnapshotWhileWriting takes a snapshot of a database of some size
// while a writer commits settings in order (n before n+1): the writer goes
// on committing while the snapshot is taken, and the copy passes the
// integrity check and holds a gap-free prefix of the settings, so it is the
// database as of one commit.
func TestSnapshotWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fill(t, db, 10000)
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
	before := written.Load()
	if err := db.Snapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	during := written.Load() - before
	close(stop)
	wg.Wait()

	rep, err := sqlite.Check(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sqlite.Migrations(), rep.Migrations); diff != "" {
		t.Errorf("migrations (-want +got):\n%s", diff)
	}
	t.Logf("%d settings committed while the snapshot was taken", during)
	if during == 0 {
		t.Error("no write committed while the snapshot was taken: it blocks writers")
	}
	var meta int64 = -1
	for _, tc := range rep.Tables {
		if tc.Name == "meta" {
			meta = tc.Rows
		}
	}
	meta -= 10000
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

// fill adds n policies of some size, many writers at once so they share
// commits.
func fill(t *testing.T, db *sqlite.DB, n int) {
	t.Helper()
	const writers = 32
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				if err := db.PutSetting(context.Background(), fmt.Sprintf("fill-%06d", i), strings.Repeat("x", 300)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
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
