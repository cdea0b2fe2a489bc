package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/wire"
)

func TestEnrollmentLifecycle(t *testing.T) {
	a := newTestAPI(t)
	created := a.do(t, "PUT", "/enrollments/Dev-1", symEnrollment("Dev-1"), nil)
	if created.status != 200 {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	c := decodeInto[wire.IndividualEnrollment](t, created)
	keys := c.Attestation.SymmetricKey
	for name, k := range map[string]*string{"primary": keys.PrimaryKey, "secondary": keys.SecondaryKey} {
		if k == nil {
			t.Fatalf("create answer has no %s key", name)
		}
		raw, err := base64.StdEncoding.DecodeString(*k)
		if err != nil || len(raw) != 64 {
			t.Errorf("generated %s key decodes to %d bytes (%v), want 64", name, len(raw), err)
		}
	}
	if c.ETag == "" || c.CreatedDateTimeUTC == "" || c.ProvisioningStatus != "enabled" || c.ReprovisionPolicy == nil {
		t.Errorf("create answer lacks service fields: %s", created.body)
	}

	t.Run("get masks keys", func(t *testing.T) {
		got := a.do(t, "GET", "/enrollments/dev-1", nil, nil)
		g := decodeInto[wire.IndividualEnrollment](t, got)
		if sk := g.Attestation.SymmetricKey; sk == nil || sk.PrimaryKey != nil || sk.SecondaryKey != nil {
			t.Errorf("GET must answer symmetricKey with null keys: %s", got.body)
		}
		if g.RegistrationID != "Dev-1" || g.InitialTwin.Tags["environment"] != "test" {
			t.Errorf("GET lost fields: %s", got.body)
		}
	})
	t.Run("attestationmechanism returns keys, any path case", func(t *testing.T) {
		got := a.do(t, "POST", "/ENROLLMENTS/dev-1/AttestationMechanism", nil, nil)
		m := decodeInto[wire.AttestationMechanism](t, got)
		if m.SymmetricKey == nil || *m.SymmetricKey.PrimaryKey != *keys.PrimaryKey || *m.SymmetricKey.SecondaryKey != *keys.SecondaryKey {
			t.Errorf("attestation mechanism %s does not carry the created keys", got.body)
		}
	})
	etag := c.ETag
	t.Run("update keeps keys and changes etag", func(t *testing.T) {
		e := symEnrollment("Dev-1")
		e["initialTwin"] = map[string]any{"tags": map[string]any{"environment": "prod"}}
		for _, form := range []func(string) string{func(s string) string { return s }, unquote, func(string) string { return "*" }} {
			ifMatch := form(etag)
			got := a.do(t, "PUT", "/enrollments/Dev-1", e, map[string]string{"If-Match": ifMatch})
			if got.status != 200 {
				t.Fatalf("update with If-Match %s: %d %s", ifMatch, got.status, got.body)
			}
			u := decodeInto[wire.IndividualEnrollment](t, got)
			if *u.Attestation.SymmetricKey.PrimaryKey != *keys.PrimaryKey {
				t.Errorf("update without keys replaced the primary key")
			}
			if u.ETag == etag || u.CreatedDateTimeUTC != c.CreatedDateTimeUTC {
				t.Errorf("update: etag %s (was %s), created %s (was %s)", u.ETag, etag, u.CreatedDateTimeUTC, c.CreatedDateTimeUTC)
			}
			etag = u.ETag
		}
	})
	t.Run("delete with current etag", func(t *testing.T) {
		if got := a.do(t, "DELETE", "/enrollments/DEV-1", nil, map[string]string{"If-Match": etag}); got.status != 204 {
			t.Fatalf("delete: %d %s", got.status, got.body)
		}
		if got := a.do(t, "GET", "/enrollments/dev-1", nil, nil); got.status != 404 {
			t.Errorf("after delete: %d", got.status)
		}
	})
}

func TestSuppliedKeysAndEchoedFields(t *testing.T) {
	a := newTestAPI(t)
	k16 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	body := map[string]any{
		"registrationId":             "dev-2",
		"deviceId":                   "hub-dev-2",
		"attestation":                map[string]any{"type": "SymmetricKey", "symmetricKey": map[string]any{"primaryKey": k16, "secondaryKey": k16}},
		"capabilities":               map[string]any{"iotEdge": true},
		"provisioningStatus":         "Disabled",
		"allocationPolicy":           "geolatency",
		"iotHubs":                    []string{"hub-a.example"},
		"reprovisionPolicy":          map[string]any{"updateHubAssignment": false, "migrateDeviceData": false},
		"customAllocationDefinition": map[string]any{"webhookUrl": "https://hook.example/a", "apiVersion": "2021-10-01"},
		"optionalDeviceInformation":  map[string]any{"model": "x1"},
		"initialTwin":                map[string]any{"tags": map[string]any{"n": 1.5, "big": json.Number("12345678901234567890")}, "properties": map[string]any{"desired": map[string]any{"$metadata": map[string]any{}}}},
	}
	got := a.do(t, "PUT", "/enrollments/dev-2", body, nil)
	if got.status != 200 {
		t.Fatalf("create: %d %s", got.status, got.body)
	}
	e := decodeInto[map[string]any](t, a.do(t, "GET", "/enrollments/dev-2", nil, nil))
	for _, f := range []string{"etag", "createdDateTimeUtc", "lastUpdatedDateTimeUtc"} {
		delete(e, f)
	}
	want := decodeInto[map[string]any](t, response{body: must(t, body)})
	want["attestation"] = map[string]any{"type": "symmetricKey", "symmetricKey": map[string]any{"primaryKey": nil, "secondaryKey": nil}}
	want["provisioningStatus"] = "disabled"
	want["allocationPolicy"] = "geoLatency"
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("GET does not echo what was stored (-want +got):\n%s", diff)
	}
}

func TestQueryPagingAndWhere(t *testing.T) {
	a := newTestAPI(t)
	for i := 0; i < 7; i++ {
		e := symEnrollment(fmt.Sprintf("q-%02d", i))
		env := "test"
		if i%2 == 1 {
			env = "prod"
		}
		e["initialTwin"] = map[string]any{"tags": map[string]any{"environment": env, "i": i}}
		e["capabilities"] = map[string]any{"iotEdge": i < 3}
		if i == 6 {
			e["provisioningStatus"] = "disabled"
		}
		if r := a.do(t, "PUT", fmt.Sprintf("/enrollments/q-%02d", i), e, nil); r.status != 200 {
			t.Fatalf("create: %s", r.body)
		}
	}
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"ok/star", "*", []string{"q-00", "q-01", "q-02", "q-03", "q-04", "q-05", "q-06"}},
		{"ok/select star", "SELECT * FROM enrollments", []string{"q-00", "q-01", "q-02", "q-03", "q-04", "q-05", "q-06"}},
		{"ok/tag equality", "SELECT * FROM enrollments WHERE initialTwin.tags.environment = 'test'", []string{"q-00", "q-02", "q-04", "q-06"}},
		{"ok/edge and not disabled", "select * from ENROLLMENTS where capabilities.iotEdge = true AND NOT (registrationId = 'q-01')", []string{"q-00", "q-02"}},
		{"ok/status not equal", "SELECT * FROM enrollments WHERE provisioningStatus != 'enabled'", []string{"q-06"}},
		{"ok/number compare or", "SELECT * FROM enrollments WHERE initialTwin.tags.i > 4 OR initialTwin.tags.i < 1", []string{"q-00", "q-05", "q-06"}},
		{"ok/in", "SELECT * FROM enrollments WHERE registrationId IN ['q-03', 'q-05', 'zz']", []string{"q-03", "q-05"}},
		{"ok/startswith", "SELECT * FROM enrollments WHERE STARTSWITH(registrationId, 'q-0') AND initialTwin.tags.i >= 5", []string{"q-05", "q-06"}},
		{"ok/is_defined", "SELECT * FROM enrollments WHERE IS_DEFINED(initialTwin.tags.nope)", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			cont := ""
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("paging does not end")
				}
				h := map[string]string{"x-ms-max-item-count": "2"}
				if cont != "" {
					h["x-ms-continuation"] = cont
				}
				r := a.do(t, "POST", "/enrollments/query", map[string]string{"query": tc.query}, h)
				if r.status != 200 || r.header.Get("x-ms-item-type") != "enrollment" {
					t.Fatalf("query: %d item-type %q %s", r.status, r.header.Get("x-ms-item-type"), r.body)
				}
				page := decodeInto[[]wire.IndividualEnrollment](t, r)
				if len(page) > 2 {
					t.Fatalf("page of %d, asked for 2", len(page))
				}
				for _, e := range page {
					got = append(got, e.RegistrationID)
					if e.Attestation.SymmetricKey.PrimaryKey != nil {
						t.Errorf("query answer carries keys")
					}
				}
				_, more := r.header[http.CanonicalHeaderKey("x-ms-continuation")]
				if !more {
					break
				}
				cont = r.header.Get("x-ms-continuation")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGroupsAndRegistrations(t *testing.T) {
	a := newTestAPI(t)
	g := map[string]any{"enrollmentGroupId": "fleet", "attestation": map[string]any{"type": "symmetricKey"}, "capabilities": map[string]any{"iotEdge": true}}
	if r := a.do(t, "PUT", "/enrollmentGroups/fleet", g, nil); r.status != 200 {
		t.Fatalf("create group: %s", r.body)
	}
	if r := a.do(t, "POST", "/enrollmentgroups/query", `{"query":"SELECT * FROM enrollmentGroups WHERE capabilities.iotEdge = true"}`, nil); r.header.Get("x-ms-item-type") != "enrollmentGroup" || len(decodeInto[[]wire.EnrollmentGroup](t, r)) != 1 {
		t.Fatalf("group query: %s", r.body)
	}
	now := time.Now()
	for _, id := range []string{"d1", "d2", "d3"} {
		err := a.db.PutRegistration(context.Background(), dps.Registration{RegistrationID: id, GroupID: "fleet", DeviceID: id, AssignedHub: "usher.test",
			Status: dps.Assigned, Substatus: "initialAssignment", ETag: "e-" + id, Created: now, Updated: now})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := a.do(t, "GET", "/registrations/D1", nil, map[string]string{"Authorization": a.token(t, a.reader, time.Now().Add(time.Hour))})
	reg := decodeInto[wire.DeviceRegistrationState](t, r)
	if reg.Status != "assigned" || reg.AssignedHub != "usher.test" || reg.ETag != `"e-d1"` {
		t.Errorf("registration: %s", r.body)
	}
	q := a.do(t, "POST", "/registrations/fleet/query", nil, map[string]string{"x-ms-max-item-count": "2"})
	if q.header.Get("x-ms-item-type") != "deviceRegistration" || q.header.Get("x-ms-continuation") == "" || len(decodeInto[[]wire.DeviceRegistrationState](t, q)) != 2 {
		t.Errorf("registration query page 1: %v %s", q.header, q.body)
	}
	if r := a.do(t, "POST", "/registrations/nogroup/query", nil, nil); r.status != 404 {
		t.Errorf("registrations of an unknown group: %d", r.status)
	}
	if r := a.do(t, "DELETE", "/registrations/d1", nil, map[string]string{"If-Match": `"e-d1"`}); r.status != 204 {
		t.Errorf("delete registration: %d %s", r.status, r.body)
	}
	if r := a.do(t, "DELETE", "/enrollmentGroups/fleet", nil, nil); r.status != 204 {
		t.Errorf("delete group: %d", r.status)
	}
	if _, err := a.db.Registration(context.Background(), "d2"); err != nil {
		t.Errorf("deleting a group must keep its devices' registration records: %v", err)
	}
}

func TestBulk(t *testing.T) {
	a := newTestAPI(t)
	op := func(mode string, ids ...string) wire.BulkResult {
		var items []any
		for _, id := range ids {
			items = append(items, symEnrollment(id))
		}
		r := a.do(t, "POST", "/enrollments/", map[string]any{"mode": mode, "enrollments": items}, nil)
		if r.status != 200 {
			t.Fatalf("bulk %s: %d %s", mode, r.status, r.body)
		}
		return decodeInto[wire.BulkResult](t, r)
	}
	if res := op("create", "b1", "b2"); !res.IsSuccessful {
		t.Fatalf("bulk create: %+v", res)
	}
	res := op("create", "b2", "b3")
	if res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].RegistrationID != "b2" || res.Errors[0].ErrorCode != 409201 {
		t.Fatalf("bulk create of an existing one: %+v", res)
	}
	if res := op("updateIfMatchEtag", "b1"); res.IsSuccessful || res.Errors[0].ErrorCode != 412002 {
		t.Errorf("updateIfMatchEtag without etag: %+v", res)
	}
	if res := op("UPDATE", "b1", "b4"); !res.IsSuccessful {
		t.Errorf("bulk update (upsert): %+v", res)
	}
	if res := op("delete", "b1", "b2", "b3", "b4"); !res.IsSuccessful {
		t.Errorf("bulk delete: %+v", res)
	}
	if res := op("delete", "b1"); res.IsSuccessful || res.Errors[0].ErrorCode != 404201 {
		t.Errorf("bulk delete of a missing one: %+v", res)
	}
	gr := a.do(t, "POST", "/enrollmentGroups", map[string]any{"mode": "create", "enrollmentGroups": []any{map[string]any{"enrollmentGroupId": "g1", "attestation": map[string]any{"type": "symmetricKey"}}}}, nil)
	if r := decodeInto[wire.BulkResult](t, gr); !r.IsSuccessful {
		t.Errorf("group bulk create: %s", gr.body)
	}
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
