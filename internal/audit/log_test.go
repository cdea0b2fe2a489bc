package audit_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func subjects(t *testing.T, l *audit.Log) []string {
	t.Helper()
	es, err := l.Entries(context.Background(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Subject)
	}
	return out
}

// TestPruneByAgeAndCount: entries older than MaxAge go, then all but the
// newest MaxEntries.
func TestPruneByAgeAndCount(t *testing.T) {
	l := audit.New(openStore(t), audit.Options{Now: func() time.Time { return now }, MaxAge: time.Hour, MaxEntries: 2})
	ctx := context.Background()
	for _, e := range []struct {
		subject string
		age     time.Duration
	}{{"3h-old", 3 * time.Hour}, {"2h-old", 2 * time.Hour}, {"30m-old", 30 * time.Minute}, {"20m-old", 20 * time.Minute}, {"10m-old", 10 * time.Minute}} {
		if err := l.Record(ctx, audit.Entry{Time: now.Add(-e.age), Kind: audit.Enrollment, Action: audit.Create, Subject: e.subject}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := l.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("Prune deleted %d, want 3 (two by age, one by count)", n)
	}
	if d := cmp.Diff([]string{"10m-old", "20m-old"}, subjects(t, l)); d != "" {
		t.Errorf("left after pruning (-want +got):\n%s", d)
	}
}

// TestRunPrunesThenWritesRefusalsUntilStopped: Run prunes at once, writes
// queued refusals, and writes what is still queued when stopped.
func TestRunPrunesThenWritesRefusalsUntilStopped(t *testing.T) {
	db := openStore(t)
	l := audit.New(db, audit.Options{Now: func() time.Time { return now }, MaxAge: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	if err := l.Record(ctx, audit.Entry{Time: now.Add(-2 * time.Hour), Kind: audit.Policy, Action: audit.Delete, Subject: "ancient"}); err != nil {
		t.Fatal(err)
	}
	origin := dps.WithOrigin(ctx, dps.Origin{Transport: "mqtt", Address: "192.0.2.1", TrackingID: "t-1"})
	l.Refused(origin, dps.Refusal{IDScope: "0ne0000000A", RegistrationID: "dev-1", Reason: "token expired at 2026-11-25T11:00:00Z", Time: now})
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for !cmp.Equal(subjects(t, l), []string{"dev-1"}) {
		if time.Now().After(deadline) {
			t.Fatalf("entries = %v, want the refusal only (the old entry pruned)", subjects(t, l))
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.Refused(origin, dps.Refusal{IDScope: "0ne0000000A", RegistrationID: "dev-2", Reason: "unknown ID scope x", Time: now})
	cancel()
	<-done
	if d := cmp.Diff([]string{"dev-2", "dev-1"}, subjects(t, l)); d != "" {
		t.Errorf("after Run stopped (-want +got):\n%s", d)
	}
	es, _ := l.Entries(context.Background(), audit.Query{Subject: "DEV-1"})
	want := audit.Entry{Seq: es[0].Seq, Time: now, Kind: audit.Attestation, Action: audit.Refused, Subject: "dev-1", Scope: "0ne0000000A",
		Transport: "mqtt", Address: "192.0.2.1", TrackingID: "t-1", Reason: "token expired at 2026-11-25T11:00:00Z"}
	if d := cmp.Diff(want, es[0]); d != "" {
		t.Errorf("refusal entry (-want +got):\n%s", d)
	}
}

// TestChangedTakesWhoFromTheOrigin: a change names the policy of the
// request's origin, and caller-chosen text is bounded.
func TestChangedTakesWhoFromTheOrigin(t *testing.T) {
	l := audit.New(openStore(t), audit.Options{Now: func() time.Time { return now }})
	ctx := dps.WithOrigin(context.Background(), dps.Origin{Transport: "https", Address: "2001:db8::2", Actor: "provisioningserviceowner", TrackingID: "t-9"})
	l.Changed(ctx, dps.Change{Kind: dps.KindGroup, ID: "sensors", Action: "update", ETagBefore: "a", ETagAfter: "b"})
	long := strings.Repeat("é", 400)
	l.Changed(ctx, dps.Change{Kind: dps.KindEnrollment, ID: long, Action: "delete", ETagBefore: "c"})
	es, err := l.Entries(ctx, audit.Query{})
	if err != nil || len(es) != 2 {
		t.Fatalf("entries: %v, %v", es, err)
	}
	want := audit.Entry{Seq: es[1].Seq, Time: now, Kind: audit.Group, Action: audit.Update, Subject: "sensors", Actor: "provisioningserviceowner",
		Transport: "https", Address: "2001:db8::2", TrackingID: "t-9", ETagBefore: "a", ETagAfter: "b"}
	if d := cmp.Diff(want, es[1]); d != "" {
		t.Errorf("group change (-want +got):\n%s", d)
	}
	if s := es[0].Subject; len(s) > 256 || !strings.HasSuffix(s, "…") || !strings.HasPrefix(s, "éé") {
		t.Errorf("a %d-byte subject was stored as %d bytes: %q", len(long), len(s), s)
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]audit.Kind{"enrollment": audit.Enrollment, "Enrollment-Group": audit.Group, "groups": audit.Group,
		"POLICY": audit.Policy, "attestation": audit.Attestation, "device": audit.Device, "Modules": audit.Module, "twin": audit.Twin,
		"configuration": audit.Configuration, "deployments": audit.Configuration} {
		if got, ok := audit.ParseKind(in); !ok || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"registration", "", "devicee"} {
		if _, ok := audit.ParseKind(bad); ok {
			t.Errorf("ParseKind(%q) accepted", bad)
		}
	}
}
