package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/audit"
)

// auditLog appends entries singly and in a batch, reads them back newest
// first through every filter and by page, and prunes by age and by count.
func auditLog(t *testing.T, s Store) {
	as, ok := s.(audit.Store)
	if !ok {
		t.Fatalf("%T does not implement audit.Store", s)
	}
	entry := func(i int, k audit.Kind, subject string) audit.Entry {
		return audit.Entry{Time: t0.Add(time.Duration(i) * time.Minute), Kind: k, Action: audit.Create, Subject: subject,
			Actor: "owner", Transport: "https", Address: "192.0.2.7", TrackingID: fmt.Sprintf("track-%d", i), ETagAfter: fmt.Sprint("e", i)}
	}
	refused := audit.Entry{Time: t0.Add(3 * time.Minute), Kind: audit.Attestation, Action: audit.Refused, Subject: "Dev-1", Scope: "0ne00000001",
		Transport: "mqtt", Address: "2001:db8::1", TrackingID: "track-3", Reason: "signature does not match the individual enrollment's keys"}
	want := []audit.Entry{entry(0, audit.Enrollment, "dev-1"), entry(1, audit.Group, "sensors"), entry(2, audit.Policy, "reader"), refused}
	mustNil(t, as.AppendAudit(ctx(), want[:1]), "append one")
	mustNil(t, as.AppendAudit(ctx(), want[1:]), "append a batch")

	all, err := as.AuditEntries(ctx(), audit.Query{Limit: 10})
	mustNil(t, err, "all")
	if len(all) != len(want) {
		t.Fatalf("got %d entries, want %d", len(all), len(want))
	}
	for i := range all {
		got, w := all[i], want[len(want)-1-i]
		if i > 0 && got.Seq >= all[i-1].Seq {
			t.Errorf("entry %d has seq %d after %d: not newest first", i, got.Seq, all[i-1].Seq)
		}
		got.Seq = 0
		if d := cmp.Diff(w, got); d != "" {
			t.Errorf("entry %d (-want +got):\n%s", i, d)
		}
	}
	seqOf := func(es []audit.Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.TrackingID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    audit.Query
		want []string
	}{
		{"kind", audit.Query{Kind: audit.Group}, []string{"track-1"}},
		{"subject any case", audit.Query{Subject: "DEV-1"}, []string{"track-3", "track-0"}},
		{"subject and kind", audit.Query{Subject: "dev-1", Kind: audit.Attestation}, []string{"track-3"}},
		{"since", audit.Query{Since: t0.Add(2 * time.Minute)}, []string{"track-3", "track-2"}},
		{"limit", audit.Query{Limit: 1}, []string{"track-3"}},
		{"page after the newest", audit.Query{Before: all[0].Seq, Limit: 2}, []string{"track-2", "track-1"}},
		{"nothing", audit.Query{Subject: "nobody"}, nil},
	} {
		if tc.q.Limit == 0 {
			tc.q.Limit = 10
		}
		got, err := as.AuditEntries(ctx(), tc.q)
		mustNil(t, err, tc.name)
		if d := cmp.Diff(tc.want, seqOf(got)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, d)
		}
	}

	// By age: entries before t0+1m go; by count: the newest 2 of the rest stay.
	n, err := as.PruneAudit(ctx(), t0.Add(time.Minute), 100)
	mustNil(t, err, "prune by age")
	if n != 1 {
		t.Errorf("pruning by age deleted %d, want 1", n)
	}
	n, err = as.PruneAudit(ctx(), t0, 2)
	mustNil(t, err, "prune by count")
	if n != 1 {
		t.Errorf("pruning by count deleted %d, want 1", n)
	}
	left, err := as.AuditEntries(ctx(), audit.Query{Limit: 10})
	mustNil(t, err, "after prune")
	if d := cmp.Diff([]string{"track-3", "track-2"}, seqOf(left)); d != "" {
		t.Errorf("after pruning (-want +got):\n%s", d)
	}
	n, err = as.PruneAudit(ctx(), t0, 2)
	mustNil(t, err, "prune again")
	if n != 0 {
		t.Errorf("pruning again deleted %d, want 0", n)
	}
	// Sequence numbers never go back, even after pruning.
	mustNil(t, as.AppendAudit(ctx(), []audit.Entry{entry(9, audit.Enrollment, "dev-9")}), "append after prune")
	newest, err := as.AuditEntries(ctx(), audit.Query{Limit: 1})
	mustNil(t, err, "newest")
	if len(newest) != 1 || newest[0].Seq <= all[0].Seq {
		t.Errorf("after pruning, a new entry got seq %v, not above %d", newest, all[0].Seq)
	}
}
