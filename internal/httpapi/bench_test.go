package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
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

// BenchmarkRegistration is one device registration as the SDKs do it (PUT
// register + one poll) over a kept-alive TLS connection: attestation, hub
// device and twin creation, registration record and operation writes.
func BenchmarkRegistration(b *testing.B) {
	a := newTestAPI(b)
	r := a.do(b, "PUT", "/enrollmentGroups/bench", map[string]any{"enrollmentGroupId": "bench", "attestation": map[string]any{"type": "symmetricKey"}}, nil)
	groupKey := *decodeInto[wire.EnrollmentGroup](b, r).Attestation.SymmetricKey.PrimaryKey
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%d", i)
		key, _ := sas.DeriveDeviceKey(groupKey, id)
		if _, poll := a.register(b, id, a.deviceToken(b, id, key), nil); poll.status != 200 {
			b.Fatalf("poll %d %s", poll.status, poll.body)
		}
	}
}

// BenchmarkRegistrationFreshTLS is BenchmarkRegistration with a new TLS
// connection (full handshake, ECDSA P-256 certificate) for every
// registration, as a device that boots and provisions does.
func BenchmarkRegistrationFreshTLS(b *testing.B) {
	a := newTestAPI(b)
	r := a.do(b, "PUT", "/enrollmentGroups/bench", map[string]any{"enrollmentGroupId": "bench", "attestation": map[string]any{"type": "symmetricKey"}}, nil)
	groupKey := *decodeInto[wire.EnrollmentGroup](b, r).Attestation.SymmetricKey.PrimaryKey
	tr := a.srv.Client().Transport.(*http.Transport)
	for i := 0; b.Loop(); i++ {
		tr.CloseIdleConnections()
		id := fmt.Sprintf("bench-%d", i)
		key, _ := sas.DeriveDeviceKey(groupKey, id)
		if _, poll := a.register(b, id, a.deviceToken(b, id, key), nil); poll.status != 200 {
			b.Fatalf("poll %d %s", poll.status, poll.body)
		}
	}
}
