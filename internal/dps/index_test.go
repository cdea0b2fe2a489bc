package dps

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/twinquery"
)

func TestEnrollmentHint(t *testing.T) {
	tag := func(name, value string) *Tag { return &Tag{Name: name, Value: value} }
	tests := []struct {
		name string
		cond string
		want ListFilter // zero: no hint
	}{
		{"ok/status", "provisioningStatus = 'disabled'", ListFilter{Status: Disabled}},
		{"ok/status constant first", "'disabled' = provisioningStatus", ListFilter{Status: Disabled}},
		{"ok/status double quotes", `provisioningStatus = "enabled"`, ListFilter{Status: Enabled}},
		{"ok/status compared bytewise", "provisioningStatus = 'Disabled'", ListFilter{Status: "Disabled"}},
		{"ok/redundant parentheses", "((provisioningStatus = 'disabled'))", ListFilter{Status: Disabled}},
		{"ok/tag", "initialTwin.tags.environment = 'test'", ListFilter{Tag: tag("environment", "test")}},
		{"ok/bracketed tag name", "initialTwin.tags.[[env-name]] = 'a b'", ListFilter{Tag: tag("env-name", "a b")}},
		{"ok/bracketed name with AND and a quote", "initialTwin.tags.[[x AND 'y]] = 'v'", ListFilter{Tag: tag("x AND 'y", "v")}},
		{"ok/doubled quote", "initialTwin.tags.o = 'it''s'", ListFilter{Tag: tag("o", "it's")}},
		{"ok/escapes", `initialTwin.tags.o = 'a\\b\nc\'d\u00e9'`, ListFilter{Tag: tag("o", "a\\b\nc'd\u00e9")}},
		{"ok/AND inside a string", "initialTwin.tags.a = 'x AND provisioningStatus = ''disabled'''", ListFilter{Tag: tag("a", "x AND provisioningStatus = 'disabled'")}},
		{"ok/with other conditions", "provisioningStatus = 'enabled' AND capabilities.iotEdge = true", ListFilter{Status: Enabled}},
		{"ok/status and tag", "initialTwin.tags.site = 'lab' AND registrationId != 'x' AND provisioningStatus = 'disabled'", ListFilter{Status: Disabled, Tag: tag("site", "lab")}},
		{"ok/first of two tags", "initialTwin.tags.a = 'x' AND initialTwin.tags.b = 'y'", ListFilter{Tag: tag("a", "x")}},
		{"ok/right-nested AND", "capabilities.iotEdge = true AND (initialTwin.tags.a = 'x' AND (registrationId != 'q' AND provisioningStatus = 'enabled'))", ListFilter{Status: Enabled, Tag: tag("a", "x")}},
		{"ok/beside an OR", "provisioningStatus = 'disabled' AND (initialTwin.tags.a = 'x' OR initialTwin.tags.b = 'y')", ListFilter{Status: Disabled}},
		{"ok/keyword case", "provisioningStatus = 'disabled' and NOT (initialTwin.tags.a = 'x')", ListFilter{Status: Disabled}},
		{"none/match all", "*", ListFilter{}},
		{"none/OR", "provisioningStatus = 'enabled' OR initialTwin.tags.a = 'x'", ListFilter{}},
		{"none/OR of ANDs", "(provisioningStatus = 'enabled' AND initialTwin.tags.a = 'x') OR registrationId = 'r'", ListFilter{}},
		{"none/AND binds before OR", "provisioningStatus = 'enabled' AND initialTwin.tags.a = 'x' OR registrationId = 'r'", ListFilter{}},
		{"none/OR then AND", "registrationId = 'r' OR provisioningStatus = 'enabled' AND initialTwin.tags.a = 'x'", ListFilter{}},
		{"ok/parenthesised OR then AND", "(registrationId = 'r' OR initialTwin.tags.a = 'x') AND provisioningStatus = 'enabled'", ListFilter{Status: Enabled}},
		{"none/NOT", "NOT (provisioningStatus = 'enabled')", ListFilter{}},
		{"none/not equal", "provisioningStatus != 'enabled'", ListFilter{}},
		{"none/IN", "provisioningStatus IN ['enabled']", ListFilter{}},
		{"none/number", "initialTwin.tags.n = 3", ListFilter{}},
		{"none/boolean", "initialTwin.tags.b = true", ListFilter{}},
		{"none/string arithmetic", "initialTwin.tags.a = 'x' + 'y'", ListFilter{}},
		{"none/two paths", "initialTwin.tags.a = registrationId", ListFilter{}},
		{"none/nested tag", "initialTwin.tags.a.b = 'x'", ListFilter{}},
		{"none/tags object", "initialTwin.tags = 'x'", ListFilter{}},
		{"none/desired property", "initialTwin.properties.desired.a = 'x'", ListFilter{}},
		{"none/unindexed field", "registrationId = 'a AND b'", ListFilter{}},
		{"none/function", "STARTSWITH(initialTwin.tags.a, 'x')", ListFilter{}},
		{"none/NUL in value", `initialTwin.tags.a = 'x\u0000'`, ListFilter{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cond, err := twinquery.ParseCondition(tc.cond)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.cond, err)
			}
			got, ok := enrollmentHint(cond)
			if wantOK := tc.want != (ListFilter{}); ok != wantOK {
				t.Errorf("enrollmentHint(%q) ok = %v, want %v", cond, ok, wantOK)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("enrollmentHint(%q) (-want +got):\n%s", cond, diff)
			}
		})
	}
}

// FuzzEnrollmentHint checks on any condition that a hint is never wrong:
// changing the hinted field of an enrollment that matches to another value
// makes it stop matching.
func FuzzEnrollmentHint(f *testing.F) {
	for _, s := range []string{
		"provisioningStatus = 'disabled' AND capabilities.iotEdge = true",
		"initialTwin.tags.[[a b]] = 'x''y' AND NOT (registrationId = 'q')",
		"(initialTwin.tags.a = 'x' OR provisioningStatus = 'enabled') AND initialTwin.tags.b = 'y'",
		`initialTwin.tags.a = 'caf\u00e9\n' AND 'enabled' = provisioningStatus`,
		"provisioningStatus = 'enabled' AND initialTwin.tags.a = 'x' OR registrationId = 'r'",
		"NOT provisioningStatus = 'disabled' AND initialTwin.tags.[[x)]] = ')'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cond, err := twinquery.ParseCondition(s)
		if err != nil {
			return
		}
		h, ok := enrollmentHint(cond)
		if !ok {
			return
		}
		e := hintedEnrollment(h)
		if !cond.Match(enrollmentDoc(&e)) {
			return // the rest of the condition fails anyway
		}
		if h.Status != "" {
			other := e
			other.ProvisioningStatus += "x"
			if cond.Match(enrollmentDoc(&other)) {
				t.Errorf("%q matches status %q, but the hint says %q", cond, other.ProvisioningStatus, h.Status)
			}
		}
		if h.Tag != nil {
			other := hintedEnrollment(ListFilter{Status: h.Status, Tag: &Tag{Name: h.Tag.Name, Value: h.Tag.Value + "x"}})
			if cond.Match(enrollmentDoc(&other)) {
				t.Errorf("%q matches tag %q = %q, but the hint says %q", cond, h.Tag.Name, h.Tag.Value+"x", h.Tag.Value)
			}
		}
	})
}

func hintedEnrollment(h ListFilter) Enrollment {
	e := Enrollment{RegistrationID: "r", Settings: Settings{ProvisioningStatus: h.Status, InitialTwin: &InitialTwin{Tags: map[string]any{}}}}
	if h.Tag != nil {
		e.InitialTwin.Tags[h.Tag.Name] = h.Tag.Value
	}
	return e
}

func TestIndexedTags(t *testing.T) {
	tests := []struct {
		name string
		twin *InitialTwin
		want []Tag
	}{
		{"ok/no twin", nil, nil},
		{"ok/no tags", &InitialTwin{Desired: map[string]any{"a": "x"}}, nil},
		{"ok/strings only, sorted", &InitialTwin{Tags: map[string]any{"b": "y", "a": "x", "n": json.Number("1"), "t": true, "o": map[string]any{"c": "z"}, "l": []any{"x"}, "z": nil}},
			[]Tag{{"a", "x"}, {"b", "y"}}},
		{"ok/invalid UTF-8 as JSON reads it back", &InitialTwin{Tags: map[string]any{"k\xff": "v\xfe\xffw"}}, []Tag{{"k\ufffd", "v\ufffd\ufffdw"}}},
		{"ok/NUL left out", &InitialTwin{Tags: map[string]any{"a": "x\x00", "b\x00": "y", "c": "z"}}, []Tag{{"c", "z"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := Enrollment{Settings: Settings{InitialTwin: tc.twin}}
			if diff := cmp.Diff(tc.want, IndexedTags(&e)); diff != "" {
				t.Errorf("IndexedTags (-want +got):\n%s", diff)
			}
			// The rule must agree with what a store reads back.
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			var back Enrollment
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.UseNumber()
			if err := dec.Decode(&back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, IndexedTags(&back)); diff != "" {
				t.Errorf("IndexedTags after a JSON round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// memStore holds enrollments in memory and lists them as a store with the
// indexes does; with noIndex it ignores filters, which is what the hint
// must not change the results of. It records the filters it was asked for.
type memStore struct {
	Store // other methods are not called
	recs  map[string]Enrollment
	// noIndex makes EnrollmentsWhere list everything, as Enrollments does.
	noIndex bool
	calls   []ListFilter
}

func (m *memStore) Enrollments(ctx context.Context, after string, limit int) ([]Enrollment, error) {
	return m.EnrollmentsWhere(ctx, ListFilter{After: after, Limit: limit})
}

func (m *memStore) EnrollmentsWhere(_ context.Context, f ListFilter) ([]Enrollment, error) {
	m.calls = append(m.calls, f)
	var keys []string
	for k := range m.recs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Enrollment
	for _, k := range keys {
		e := m.recs[k]
		switch {
		case k <= f.After || len(out) == f.Limit:
			continue
		case m.noIndex:
		case f.Status != "" && e.ProvisioningStatus != f.Status:
			continue
		case f.Tag != nil && !hasTag(&e, *f.Tag):
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func hasTag(e *Enrollment, want Tag) bool {
	for _, t := range IndexedTags(e) {
		if t == want {
			return true
		}
	}
	return false
}

// fleet is 40 enrollments: every 7th disabled, environment=test on every
// 5th, iotEdge on the even ones.
func fleet() map[string]Enrollment {
	recs := map[string]Enrollment{}
	for i := range 40 {
		e := Enrollment{RegistrationID: fmt.Sprintf("Dev-%02d", i), Settings: Settings{
			ProvisioningStatus: Enabled, IoTEdge: i%2 == 0,
			InitialTwin: &InitialTwin{Tags: map[string]any{"environment": "prod", "i": json.Number(fmt.Sprint(i))}},
		}}
		if i%7 == 3 {
			e.ProvisioningStatus = Disabled
		}
		if i%5 == 1 {
			e.InitialTwin.Tags["environment"] = "test"
		}
		recs[IDKey(e.RegistrationID)] = e
	}
	return recs
}

// TestQueryThroughIndex pages queries with and without index hints: the
// results are those of the unindexed store, and the store is asked for the
// hinted filter on every page.
func TestQueryThroughIndex(t *testing.T) {
	tests := []struct {
		name     string
		query    string
		wantHint ListFilter // zero: every list call is unfiltered
		want     []int      // the enrollments, by number
	}{
		{"ok/status", "SELECT * FROM enrollments WHERE provisioningStatus = 'disabled'", ListFilter{Status: Disabled}, []int{3, 10, 17, 24, 31, 38}},
		{"ok/status and more", "SELECT * FROM enrollments WHERE provisioningStatus = 'enabled' AND capabilities.iotEdge = true AND initialTwin.tags.i < 9",
			ListFilter{Status: Enabled}, []int{0, 2, 4, 6, 8}},
		{"ok/tag", "SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'test'", ListFilter{Tag: &Tag{"environment", "test"}}, []int{1, 6, 11, 16, 21, 26, 31, 36}},
		{"ok/tag and status", "SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'test' AND provisioningStatus = 'disabled'",
			ListFilter{Status: Disabled, Tag: &Tag{"environment", "test"}}, []int{31}},
		{"ok/hint matching nothing", "SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'Test'", ListFilter{Tag: &Tag{"environment", "Test"}}, nil},
		{"ok/OR is not hinted", "SELECT * FROM enrollments WHERE provisioningStatus = 'disabled' OR initialTwin.tags.environment = 'test'",
			ListFilter{}, []int{1, 3, 6, 10, 11, 16, 17, 21, 24, 26, 31, 36, 38}},
		{"ok/star", "*", ListFilter{}, func() (all []int) {
			for i := range 40 {
				all = append(all, i)
			}
			return all
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, i := range tc.want {
				want = append(want, fmt.Sprintf("Dev-%02d", i))
			}
			for _, size := range []int{1, 3, 100} {
				for _, noIndex := range []bool{false, true} {
					store := &memStore{recs: fleet(), noIndex: noIndex}
					got := queryAll(t, NewService(store, Options{}), tc.query, size)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("page size %d, noIndex %v (-want +got):\n%s", size, noIndex, diff)
					}
					for _, c := range store.calls {
						c.After, c.Limit = "", 0
						if diff := cmp.Diff(tc.wantHint, c); diff != "" {
							t.Fatalf("page size %d: store asked for (-want +got):\n%s", size, diff)
						}
					}
				}
			}
		})
	}
}

// TestQueryContinuationAcrossListers: a token from an unhinted query pages
// on a hinted one (and back), since both are keys in IDKey order.
func TestQueryContinuationAcrossListers(t *testing.T) {
	s := NewService(&memStore{recs: fleet()}, Options{})
	_, token, err := s.QueryEnrollments(context.Background(), "*", Page{Size: 12})
	if err != nil || token == "" {
		t.Fatalf("first page: token %q, %v", token, err)
	}
	got, _, err := s.QueryEnrollments(context.Background(), "SELECT * FROM enrollments WHERE provisioningStatus = 'disabled'", Page{Size: 2, Continuation: token})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.RegistrationID)
	}
	if diff := cmp.Diff([]string{"Dev-17", "Dev-24"}, ids); diff != "" {
		t.Errorf("hinted page after an unhinted token (-want +got):\n%s", diff)
	}
}

func queryAll(t *testing.T, s *Service, q string, size int) []string {
	t.Helper()
	var ids []string
	page := Page{Size: size}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("%q: paging does not end", q)
		}
		got, next, err := s.QueryEnrollments(context.Background(), q, page)
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		if len(got) > size {
			t.Fatalf("%q: page of %d, size %d", q, len(got), size)
		}
		for _, e := range got {
			ids = append(ids, e.RegistrationID)
		}
		if next == "" {
			return ids
		}
		page.Continuation = next
	}
}
