package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/wire"
)

// TestEnrollmentQueryIndex queries enrollments through the indexes the
// store keeps (docs/decisions/0013-enrollment-indexes.md), over the real
// API and SQLite store, across pages, and after updates and deletes.
func TestEnrollmentQueryIndex(t *testing.T) {
	a := newTestAPI(t)
	put := func(i int, status, env string, edge bool) {
		t.Helper()
		id := fmt.Sprintf("ix-%02d", i)
		e := symEnrollment(id)
		e["provisioningStatus"] = status
		e["capabilities"] = map[string]any{"iotEdge": edge}
		tags := map[string]any{"i": i}
		if env != "" {
			tags["environment"] = env
		}
		e["initialTwin"] = map[string]any{"tags": tags}
		if r := a.do(t, "PUT", "/enrollments/"+id, e, nil); r.status != 200 {
			t.Fatalf("put %s: %s", id, r.body)
		}
	}
	// 20 enrollments: every 4th disabled, every 3rd environment=test (the
	// others prod), iotEdge on the even ones.
	for i := range 20 {
		status, env := "enabled", "prod"
		if i%4 == 1 {
			status = "disabled"
		}
		if i%3 == 0 {
			env = "test"
		}
		put(i, status, env, i%2 == 0)
	}
	ids := func(ns ...int) []string {
		var out []string
		for _, n := range ns {
			out = append(out, fmt.Sprintf("ix-%02d", n))
		}
		return out
	}
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"ok/status", "SELECT * FROM enrollments WHERE provisioningStatus = 'disabled'", ids(1, 5, 9, 13, 17)},
		{"ok/status and more", "SELECT * FROM enrollments WHERE provisioningStatus = 'enabled' AND capabilities.iotEdge = true AND initialTwin.tags.i > 9", ids(10, 12, 14, 16, 18)},
		{"ok/tag", "SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'test'", ids(0, 3, 6, 9, 12, 15, 18)},
		{"ok/tag and status", "SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'test' AND provisioningStatus = 'disabled'", ids(9)},
		{"ok/tag compared case-sensitively", "SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'TEST'", nil},
		{"ok/OR", "SELECT * FROM enrollments WHERE provisioningStatus = 'disabled' OR initialTwin.tags.environment = 'test'", ids(0, 1, 3, 5, 6, 9, 12, 13, 15, 17, 18)},
		{"ok/AND before OR", "SELECT * FROM enrollments WHERE provisioningStatus = 'disabled' AND capabilities.iotEdge = false OR initialTwin.tags.i = 2", ids(1, 2, 5, 9, 13, 17)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{2, 100} {
				if diff := cmp.Diff(tc.want, queryPages(t, a, tc.query, size)); diff != "" {
					t.Errorf("pages of %d (-want +got):\n%s", size, diff)
				}
			}
		})
	}

	t.Run("ok/follows writes", func(t *testing.T) {
		put(9, "enabled", "", true) // was disabled, environment=test
		put(4, "disabled", "test", false)
		if r := a.do(t, "DELETE", "/enrollments/ix-03", nil, nil); r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		for q, want := range map[string][]string{
			"SELECT * FROM enrollments WHERE provisioningStatus = 'disabled'":                                       ids(1, 4, 5, 13, 17),
			"SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'test'":                                 ids(0, 4, 6, 12, 15, 18),
			"SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'prod' AND capabilities.iotEdge = true": ids(2, 8, 10, 14, 16),
		} {
			if diff := cmp.Diff(want, queryPages(t, a, q, 2)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", q, diff)
			}
		}
	})
}

// queryPages runs q page by page, following continuation tokens, and
// returns the registration IDs.
func queryPages(t *testing.T, a *testAPI, q string, size int) []string {
	t.Helper()
	var got []string
	cont := ""
	for pages := 0; ; pages++ {
		if pages > 50 {
			t.Fatalf("%s: paging does not end", q)
		}
		h := map[string]string{"x-ms-max-item-count": fmt.Sprint(size)}
		if cont != "" {
			h["x-ms-continuation"] = cont
		}
		r := a.do(t, "POST", "/enrollments/query", map[string]string{"query": q}, h)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
		page := decodeInto[[]wire.IndividualEnrollment](t, r)
		if len(page) > size {
			t.Fatalf("%s: page of %d, asked for %d", q, len(page), size)
		}
		for _, e := range page {
			got = append(got, e.RegistrationID)
		}
		if _, more := r.header[http.CanonicalHeaderKey("x-ms-continuation")]; !more {
			return got
		}
		cont = r.header.Get("x-ms-continuation")
	}
}
