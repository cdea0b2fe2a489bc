package storetest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
)

// enrollmentIndex checks the enrollment index (dps.ListFilter,
// docs/decisions/0013-enrollment-indexes.md): EnrollmentsWhere returns, in
// IDKey order, exactly the enrollments with the status and tag asked for,
// after every create, update and delete. The parts share one store; each
// part after the first uses its own ID prefix.
func enrollmentIndex(t *testing.T, s Store) {
	t.Run("filters and paging", func(t *testing.T) { enrollmentIndexFilters(t, s) })
	t.Run("kept by writes", func(t *testing.T) { enrollmentIndexWrites(t, s) })
	t.Run("kept by racing writes", func(t *testing.T) { enrollmentIndexRace(t, s) })
}

// indexedEnrollment is an enrollment with the given status and tags.
func indexedEnrollment(id string, status dps.ProvisioningStatus, tags map[string]any) dps.Enrollment {
	e := sampleEnrollment(id)
	e.ProvisioningStatus = status
	e.InitialTwin = &dps.InitialTwin{Tags: tags}
	if tags == nil {
		e.InitialTwin = nil
	}
	return e
}

// where lists every record f selects, Limit at a time, and returns the
// registration IDs that start with prefix.
func where(t *testing.T, s Store, prefix string, f dps.ListFilter) []string {
	t.Helper()
	if f.Limit == 0 {
		f.Limit = 2
	}
	var got []string
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("paging %+v does not end", f)
		}
		page, err := s.EnrollmentsWhere(ctx(), f)
		mustNil(t, err, fmt.Sprintf("list %+v", f))
		if len(page) > f.Limit {
			t.Fatalf("page of %d items, limit %d", len(page), f.Limit)
		}
		for _, e := range page {
			if strings.HasPrefix(e.RegistrationID, prefix) {
				got = append(got, e.RegistrationID)
			}
		}
		if len(page) < f.Limit {
			return got
		}
		f.After = dps.IDKey(page[len(page)-1].RegistrationID)
	}
}

func enrollmentIndexFilters(t *testing.T, s Store) {
	const on, off = dps.Enabled, dps.Disabled
	for _, e := range []dps.Enrollment{
		indexedEnrollment("a", on, map[string]any{"environment": "test", "site": "lab"}),
		indexedEnrollment("B", off, map[string]any{"environment": "test"}),
		indexedEnrollment("c", on, map[string]any{"environment": "prod"}),
		indexedEnrollment("D", off, map[string]any{"environment": "Test"}),
		indexedEnrollment("e", on, nil),
		indexedEnrollment("f", on, map[string]any{"environment": json.Number("1"), "nested": map[string]any{"environment": "test"}}),
		indexedEnrollment("g", off, map[string]any{"environment": "test", "site": "lab"}),
		indexedEnrollment("h", on, map[string]any{"environment": "test", "quote's": "caf\u00e9 \\ 'x'"}),
	} {
		mustNil(t, s.CreateEnrollment(ctx(), e), "create "+e.RegistrationID)
	}
	tag := func(name, value string) *dps.Tag { return &dps.Tag{Name: name, Value: value} }
	tests := []struct {
		name string
		f    dps.ListFilter
		want []string
	}{
		{"ok/no filter lists all", dps.ListFilter{}, []string{"a", "B", "c", "D", "e", "f", "g", "h"}},
		{"ok/status disabled", dps.ListFilter{Status: off}, []string{"B", "D", "g"}},
		{"ok/status enabled", dps.ListFilter{Status: on}, []string{"a", "c", "e", "f", "h"}},
		{"ok/status is case-sensitive", dps.ListFilter{Status: "Disabled"}, nil},
		{"ok/tag", dps.ListFilter{Tag: tag("environment", "test")}, []string{"a", "B", "g", "h"}},
		{"ok/tag value is case-sensitive", dps.ListFilter{Tag: tag("environment", "Test")}, []string{"D"}},
		{"ok/tag name is case-sensitive", dps.ListFilter{Tag: tag("Environment", "test")}, nil},
		{"ok/tag and status", dps.ListFilter{Tag: tag("environment", "test"), Status: off}, []string{"B", "g"}},
		{"ok/tag with quotes and escapes", dps.ListFilter{Tag: tag("quote's", "caf\u00e9 \\ 'x'")}, []string{"h"}},
		{"ok/only string values are indexed", dps.ListFilter{Tag: tag("environment", "1")}, nil},
		{"ok/only top-level tags are indexed", dps.ListFilter{Tag: tag("nested", "test")}, nil},
		{"ok/after cursor", dps.ListFilter{Tag: tag("environment", "test"), After: "b"}, []string{"g", "h"}},
		{"ok/after cursor past the end", dps.ListFilter{Status: off, After: "g"}, nil},
		{"ok/page of one", dps.ListFilter{Tag: tag("site", "lab"), Limit: 1}, []string{"a", "g"}},
		{"ok/page larger than the result", dps.ListFilter{Tag: tag("site", "lab"), Limit: 100}, []string{"a", "g"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, where(t, s, "", tc.f)); diff != "" {
				t.Errorf("EnrollmentsWhere(%+v) (-want +got):\n%s", tc.f, diff)
			}
		})
	}
}

// enrollmentIndexWrites checks that the index follows updates and deletes
// in the same write.
func enrollmentIndexWrites(t *testing.T, s Store) {
	test := &dps.Tag{Name: "environment", Value: "test"}
	prod := &dps.Tag{Name: "environment", Value: "prod"}
	lab := &dps.Tag{Name: "site", Value: "lab"}
	check := func(step string, f dps.ListFilter, want ...string) {
		t.Helper()
		if diff := cmp.Diff(want, where(t, s, "w-", f)); diff != "" {
			t.Errorf("%s: EnrollmentsWhere(%+v) (-want +got):\n%s", step, f, diff)
		}
	}
	e := indexedEnrollment("w-x", dps.Enabled, map[string]any{"environment": "test", "site": "lab"})
	mustNil(t, s.CreateEnrollment(ctx(), e), "create")
	mustNil(t, s.CreateEnrollment(ctx(), indexedEnrollment("w-y", dps.Enabled, map[string]any{"environment": "test"})), "create w-y")
	check("created", dps.ListFilter{Tag: lab}, "w-x")

	e.ETag, e.ProvisioningStatus = "e2", dps.Disabled
	e.InitialTwin.Tags = map[string]any{"environment": "prod"}
	mustNil(t, s.UpdateEnrollment(ctx(), e, "e1"), "update")
	check("status changed", dps.ListFilter{Status: dps.Disabled}, "w-x")
	check("status changed", dps.ListFilter{Status: dps.Enabled}, "w-y")
	check("tag value changed", dps.ListFilter{Tag: test}, "w-y")
	check("tag value changed", dps.ListFilter{Tag: prod}, "w-x")
	check("tag removed", dps.ListFilter{Tag: lab})

	e.ETag, e.InitialTwin = "e3", nil
	mustNil(t, s.UpdateEnrollment(ctx(), e, "e2"), "update without twin")
	check("all tags removed", dps.ListFilter{Tag: prod})

	e.ETag, e.ProvisioningStatus = "e4", dps.Enabled
	e.InitialTwin = &dps.InitialTwin{Tags: map[string]any{"site": "lab"}}
	wantKind(t, s.UpdateEnrollment(ctx(), e, "stale"), fault.PreconditionFailed, "update with a stale etag")
	check("a refused update leaves the index", dps.ListFilter{Tag: lab})
	check("a refused update leaves the index", dps.ListFilter{Status: dps.Disabled}, "w-x")

	mustNil(t, s.DeleteEnrollment(ctx(), "W-X", ""), "delete")
	check("deleted", dps.ListFilter{Status: dps.Disabled})
	check("deleted", dps.ListFilter{Tag: prod})
	mustNil(t, s.CreateEnrollment(ctx(), indexedEnrollment("w-x", dps.Enabled, nil)), "create again")
	check("created again without tags", dps.ListFilter{Tag: prod})
	check("created again", dps.ListFilter{Status: dps.Enabled}, "w-x", "w-y")
}

// enrollmentIndexRace races unconditional updates that each set another
// tag value: the index ends as the last writer left the record.
func enrollmentIndexRace(t *testing.T, s Store) {
	mustNil(t, s.CreateEnrollment(ctx(), indexedEnrollment("r-race", dps.Enabled, map[string]any{"w": "start"})), "create")
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status := dps.Enabled
			if i%2 == 1 {
				status = dps.Disabled
			}
			e := indexedEnrollment("r-race", status, map[string]any{"w": fmt.Sprint(i), fmt.Sprint("only", i): "x"})
			e.ETag = fmt.Sprintf("w%d", i)
			if err := s.UpdateEnrollment(ctx(), e, ""); err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	final, err := s.Enrollment(ctx(), "r-race")
	mustNil(t, err, "get")
	for i := range writers {
		for _, tag := range []dps.Tag{{Name: "w", Value: fmt.Sprint(i)}, {Name: fmt.Sprint("only", i), Value: "x"}} {
			got := where(t, s, "r-", dps.ListFilter{Tag: &tag})
			_, has := final.InitialTwin.Tags[tag.Name]
			if has && final.InitialTwin.Tags[tag.Name] == tag.Value {
				if len(got) != 1 {
					t.Errorf("tag %+v of the final record: listed %v", tag, got)
				}
			} else if len(got) != 0 {
				t.Errorf("tag %+v not on the final record (%v): listed %v", tag, final.InitialTwin.Tags, got)
			}
		}
	}
	got := where(t, s, "r-", dps.ListFilter{Status: final.ProvisioningStatus})
	if len(got) != 1 {
		t.Errorf("status %q of the final record: listed %v", final.ProvisioningStatus, got)
	}
}

// EnrollmentIndexBackfill checks that enrollments written before the
// index existed are indexed once it does. It writes enrollments to s, then
// calls rewind, which must return the store as the index migration leaves
// a database that held them without an index (a backend drops its index
// state, forgets the migration and opens the database again), and lists
// them through the index.
func EnrollmentIndexBackfill(t *testing.T, s Store, rewind func(*testing.T) Store) {
	t.Helper()
	for _, e := range []dps.Enrollment{
		indexedEnrollment("A", dps.Enabled, map[string]any{"environment": "test", "html": "<a&b>", "n": json.Number("1")}),
		indexedEnrollment("b", dps.Disabled, map[string]any{"environment": "test", "nested": map[string]any{"x": "y"}}),
		indexedEnrollment("C", dps.Disabled, nil),
		indexedEnrollment("d", dps.Enabled, map[string]any{"environment": "prod", "caf\u00e9": "\u2028"}),
	} {
		mustNil(t, s.CreateEnrollment(ctx(), e), "create "+e.RegistrationID)
	}
	s = rewind(t)
	tests := []struct {
		f    dps.ListFilter
		want []string
	}{
		{dps.ListFilter{Status: dps.Disabled}, []string{"b", "C"}},
		{dps.ListFilter{Status: dps.Enabled}, []string{"A", "d"}},
		{dps.ListFilter{Tag: &dps.Tag{Name: "environment", Value: "test"}}, []string{"A", "b"}},
		{dps.ListFilter{Tag: &dps.Tag{Name: "environment", Value: "test"}, Status: dps.Enabled}, []string{"A"}},
		{dps.ListFilter{Tag: &dps.Tag{Name: "html", Value: "<a&b>"}}, []string{"A"}},
		{dps.ListFilter{Tag: &dps.Tag{Name: "caf\u00e9", Value: "\u2028"}}, []string{"d"}},
		{dps.ListFilter{Tag: &dps.Tag{Name: "n", Value: "1"}}, nil},
		{dps.ListFilter{Tag: &dps.Tag{Name: "x", Value: "y"}}, nil},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, where(t, s, "", tc.f)); diff != "" {
			t.Errorf("after the index migration, EnrollmentsWhere(%+v) (-want +got):\n%s", tc.f, diff)
		}
	}
	// Writes after the migration keep the index as usual.
	e := indexedEnrollment("b", dps.Enabled, map[string]any{"environment": "prod"})
	mustNil(t, s.UpdateEnrollment(ctx(), e, ""), "update b")
	if diff := cmp.Diff([]string{"b", "d"}, where(t, s, "", dps.ListFilter{Tag: &dps.Tag{Name: "environment", Value: "prod"}})); diff != "" {
		t.Errorf("after an update, EnrollmentsWhere(environment=prod) (-want +got):\n%s", diff)
	}
}

// BenchEnrollmentsEnv names the environment variable that sets how many
// enrollments the query benchmarks build (default
// DefaultBenchEnrollments).
const BenchEnrollmentsEnv = "USHER_BENCH_ENROLLMENTS"

// DefaultBenchEnrollments is the size of the query benchmarks' store when
// BenchEnrollmentsEnv is unset: the figure issue 6 sets its target at.
const DefaultBenchEnrollments = 1_000_000

// BenchEnrollmentCount returns the number of enrollments the query
// benchmarks use: BenchEnrollmentsEnv, else def.
func BenchEnrollmentCount(tb testing.TB, def int) int {
	tb.Helper()
	v := os.Getenv(BenchEnrollmentsEnv)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n < 1000 {
		tb.Fatalf("%s=%q: want a number of at least 1000", BenchEnrollmentsEnv, v)
	}
	return n
}

// BenchEnrollment returns the i-th enrollment of the query benchmarks'
// store, the same on every call: ID device-<i, 7 digits> (so IDKey order is
// i order), fresh-looking keys, iotEdge on about half, about 1% disabled,
// tags environment (about 1% "test", else "prod"), site (one of 50) and a
// numeric rack, and one desired property.
func BenchEnrollment(i int) dps.Enrollment {
	r := rand.New(rand.NewPCG(uint64(i), 0x75736865))
	key := func() string {
		var b [dps.GeneratedKeyBytes]byte
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		return base64.StdEncoding.EncodeToString(b[:])
	}
	status, env := dps.Enabled, "prod"
	if r.IntN(100) == 0 {
		status = dps.Disabled
	}
	if r.IntN(100) == 0 {
		env = "test"
	}
	created := t0.Add(time.Duration(i) * time.Second)
	return dps.Enrollment{
		RegistrationID: fmt.Sprintf("device-%07d", i),
		Settings: dps.Settings{
			Attestation: dps.Attestation{Type: dps.SymmetricKey, PrimaryKey: key(), SecondaryKey: key()},
			IoTEdge:     r.IntN(2) == 0,
			InitialTwin: &dps.InitialTwin{
				Tags:    map[string]any{"environment": env, "site": fmt.Sprintf("site-%02d", r.IntN(50)), "rack": json.Number(strconv.Itoa(r.IntN(40)))},
				Desired: map[string]any{"telemetryInterval": json.Number("30")},
			},
			ProvisioningStatus: status,
			ReprovisionPolicy:  &dps.ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true},
			ETag:               strconv.FormatUint(r.Uint64(), 16),
			Created:            created,
			Updated:            created,
		},
	}
}

// BenchEnrollmentQueries times pages of 100 of enrollment queries through
// dps.Service (the path POST /enrollments/query takes) over s, which holds
// BenchEnrollment(0) … BenchEnrollment(n-1). Each sub-benchmark is one
// query shape; one op is one page, started at the first record, at a random
// point (a continuation token from a walk of the whole collection), or at
// the middle (the page after n/2 records: page 5,001 of a million). It
// reports the median and 99th percentile page time in ms. The "unindexed"
// shapes select the same records with a condition no index serves: the
// cost of a query before the indexes existed. Run with -benchtime=200x.
func BenchEnrollmentQueries(b *testing.B, s dps.Store, n int) {
	svc := dps.NewService(s, dps.Options{})
	ctx := context.Background()
	start := time.Now()
	var tokens []string // tokens[i] continues after (i+1)*1000 records
	for page := (dps.Page{Size: dps.MaxPageSize}); ; {
		got, next, err := svc.QueryEnrollments(ctx, "*", page)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != dps.MaxPageSize && next != "" {
			b.Fatalf("walk: page of %d with a continuation", len(got))
		}
		if next == "" {
			break
		}
		tokens = append(tokens, next)
		page.Continuation = next
	}
	if len(tokens) != n/dps.MaxPageSize && len(tokens) != n/dps.MaxPageSize-1 {
		b.Fatalf("walk found %d pages of %d; the store does not hold %d enrollments", len(tokens), dps.MaxPageSize, n)
	}
	b.Logf("walked %d enrollments in pages of %d: %v", n, dps.MaxPageSize, time.Since(start).Round(time.Millisecond))

	const (
		all      = "SELECT * FROM enrollments"
		disabled = "SELECT * FROM enrollments WHERE provisioningStatus = 'disabled'"
		enabled  = "SELECT * FROM enrollments WHERE provisioningStatus = 'enabled'"
		tag      = "SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'test'"
	)
	rng := rand.New(rand.NewPCG(1, 2))
	first := func() string { return "" }
	random := func() string { return tokens[rng.IntN(len(tokens))] }
	middle := func() string { return tokens[n/2/dps.MaxPageSize-1] }
	shapes := []struct {
		name, query string
		start       func() string
	}{
		{"all/first", all, first},
		{"all/random", all, random},
		{"all/middle", all, middle},
		{"disabled/first", disabled, first},
		{"disabled/random", disabled, random},
		{"enabled/random", enabled, random},
		{"tag/first", tag, first},
		{"tag/random", tag, random},
		{"tag-and-edge/random", tag + " AND capabilities.iotEdge = true", random},
		{"disabled-unindexed/random", disabled + " OR registrationId = ''", random},
		{"tag-unindexed/random", tag + " OR registrationId = ''", random},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			var times []time.Duration
			for b.Loop() {
				t := time.Now()
				if _, _, err := svc.QueryEnrollments(ctx, sh.query, dps.Page{Size: 100, Continuation: sh.start()}); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(t))
			}
			slices.Sort(times)
			ms := func(q float64) float64 {
				i := int(math.Ceil(q*float64(len(times)))) - 1
				return float64(times[max(i, 0)]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.50), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
		})
	}
}
