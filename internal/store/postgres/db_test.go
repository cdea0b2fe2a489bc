package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/store/postgres"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
	"github.com/usher-iot/usher/internal/store/storetest"
)

func mustOpen(tb testing.TB, url string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return mustOpen(t, pgtest.SchemaURL(t))
	})
}

func TestReopenKeepsData(t *testing.T) {
	url := pgtest.SchemaURL(t)
	db := mustOpen(t, url)
	if _, err := db.InitSetting(context.Background(), "id_scope", "0ne00000001"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, url)
	if v, err := db.Setting(context.Background(), "id_scope"); err != nil || v != "0ne00000001" {
		t.Fatalf("after reopen (migrations must be idempotent): %q, %v", v, err)
	}
}

// TestConcurrentStartMigratesOnce opens one schema from several "nodes" at
// once: the advisory lock lets one apply the migrations and the others
// find them applied, and every node then sees the same first setting.
func TestConcurrentStartMigratesOnce(t *testing.T) {
	url := pgtest.SchemaURL(t)
	const nodes = 4
	var wg sync.WaitGroup
	got := make([]string, nodes)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := postgres.Open(context.Background(), url, postgres.Options{})
			if err != nil {
				t.Errorf("node %d: open: %v", i, err)
				return
			}
			defer db.Close()
			v, err := db.InitSetting(context.Background(), "id_scope", string(rune('a'+i)))
			if err != nil {
				t.Errorf("node %d: init setting: %v", i, err)
			}
			got[i] = v
		}()
	}
	wg.Wait()
	for i := 1; i < nodes; i++ {
		if got[i] != got[0] {
			t.Fatalf("nodes disagree on the first writer: %q", got)
		}
	}
}

// TestMessageAppendsFromTwoNodes appends from two pools on one schema at
// once: every message is kept, once, under strictly growing numbers.
func TestMessageAppendsFromTwoNodes(t *testing.T) {
	url := pgtest.SchemaURL(t)
	nodes := []*postgres.DB{mustOpen(t, url), mustOpen(t, url)}
	const each = 40
	var wg sync.WaitGroup
	for n, db := range nodes {
		for i := range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := hub.Message{DeviceID: fmt.Sprintf("node%d", n), System: hub.SystemProperties{MessageID: fmt.Sprintf("%d-%d", n, i)}, Body: []byte("x")}
				if err := db.AppendMessage(context.Background(), m, 1000); err != nil {
					t.Errorf("append %d-%d: %v", n, i, err)
				}
			}()
		}
	}
	wg.Wait()
	got, err := nodes[0].Messages(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*each {
		t.Fatalf("log holds %d messages, want %d", len(got), 2*each)
	}
	seen := map[string]bool{}
	for i, m := range got {
		if i > 0 && m.Seq <= got[i-1].Seq {
			t.Fatalf("seq %d after %d, want increasing", m.Seq, got[i-1].Seq)
		}
		if seen[m.System.MessageID] {
			t.Fatalf("message %s twice", m.System.MessageID)
		}
		seen[m.System.MessageID] = true
	}
}
