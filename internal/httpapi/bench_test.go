package httpapi_test

import (
	"fmt"
	"testing"
)

// The service API benchmarks run the real handler over a real TLS socket
// (keep-alive connection, HTTP/1.1) on the SQLite store. See
// docs/benchmarks.md for the command and the figures.

func BenchmarkPutEnrollment(b *testing.B) {
	a := newTestAPI(b)
	body := symEnrollment("x")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%d", i)
		body["registrationId"] = id
		if r := a.do(b, "PUT", "/enrollments/"+id, body, nil); r.status != 200 {
			b.Fatalf("%d %s", r.status, r.body)
		}
	}
}

func BenchmarkGetEnrollment(b *testing.B) {
	a := newTestAPI(b)
	if r := a.do(b, "PUT", "/enrollments/x", symEnrollment("x"), nil); r.status != 200 {
		b.Fatal(r.status)
	}
	for b.Loop() {
		if r := a.do(b, "GET", "/enrollments/x", nil, nil); r.status != 200 {
			b.Fatal(r.status)
		}
	}
}

// BenchmarkQueryWhere pages a WHERE filter over 1,000 enrollments of which
// half match, 100 per page.
func BenchmarkQueryWhere(b *testing.B) {
	a := newTestAPI(b)
	for i := 0; i < 1000; i++ {
		e := symEnrollment(fmt.Sprintf("q-%04d", i))
		e["initialTwin"] = map[string]any{"tags": map[string]any{"even": i%2 == 0}}
		if r := a.do(b, "PUT", fmt.Sprintf("/enrollments/q-%04d", i), e, nil); r.status != 200 {
			b.Fatal(r.status)
		}
	}
	q := map[string]string{"query": "SELECT * FROM enrollments WHERE initialTwin.tags.even = true"}
	for b.Loop() {
		if r := a.do(b, "POST", "/enrollments/query", q, map[string]string{"x-ms-max-item-count": "100"}); r.status != 200 {
			b.Fatal(r.status)
		}
	}
}
