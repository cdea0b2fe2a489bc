package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/usher-iot/usher/internal/store/sqlite"
	"github.com/usher-iot/usher/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "usher.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usher.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.InitSetting(context.Background(), "id_scope", "0ne00000001"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("reopen (migrations must be idempotent): %v", err)
	}
	defer db.Close()
	if v, err := db.Setting(context.Background(), "id_scope"); err != nil || v != "0ne00000001" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}
