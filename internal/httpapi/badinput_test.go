package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadInput sends one bad request per case and checks the Azure status,
// the errorCode in the body and x-ms-error-code, and that nothing was
// written or changed.
func TestBadInput(t *testing.T) {
	a := newTestAPI(t)
	existing := a.do(t, http.MethodPut, "/enrollments/existing", symEnrollment("existing"), nil)
	if existing.status != http.StatusOK {
		t.Fatalf("setup: %d %s", existing.status, existing.body)
	}
	before := a.do(t, http.MethodGet, "/enrollments/existing", nil, nil).body

	withTwin := func(twin any) map[string]any {
		e := symEnrollment("victim")
		e["initialTwin"] = twin
		return e
	}
	withKey := func(k string) map[string]any {
		e := symEnrollment("victim")
		e["attestation"] = map[string]any{"type": "symmetricKey", "symmetricKey": map[string]any{"primaryKey": k}}
		return e
	}
	withAttestation := func(typ string) map[string]any {
		e := symEnrollment("victim")
		e["attestation"] = map[string]any{"type": typ}
		return e
	}
	big := symEnrollment("victim")
	big["initialTwin"] = map[string]any{"tags": map[string]any{"pad": strings.Repeat("x", 100<<10)}}
	longID := strings.Repeat("a", 129)
	key8 := base64.StdEncoding.EncodeToString([]byte("12345678"))
	tests := []struct {
		name    string
		method  string
		path    string
		body    any
		headers map[string]string
		status  int
		code    int
		message string // substring the message must contain
	}{
		{"400/malformed json", "PUT", "/enrollments/victim", `{"registrationId": "victim", `, nil, 400, 400001, "not valid JSON"},
		{"400/body not an object", "PUT", "/enrollments/victim", `[1,2]`, nil, 400, 400001, "JSON object"},
		{"400/empty body", "PUT", "/enrollments/victim", ``, nil, 400, 400001, "empty"},
		{"400/trailing garbage", "PUT", "/enrollments/victim", `{"registrationId":"victim","attestation":{"type":"symmetricKey"}} x`, nil, 400, 400001, "after the JSON"},
		{"400/unknown attestation type", "PUT", "/enrollments/victim", withAttestation("banana"), nil, 400, 400004, "banana"},
		{"400/missing attestation", "PUT", "/enrollments/victim", map[string]any{"registrationId": "victim"}, nil, 400, 400004, "attestation.type is required"},
		{"400/x509 not supported yet", "PUT", "/enrollments/victim", withAttestation("x509"), nil, 400, 400008, "not supported yet"},
		{"400/tpm not supported yet", "PUT", "/enrollments/victim", withAttestation("tpm"), nil, 400, 400008, "not supported yet"},
		{"400/registration id with spaces", "PUT", "/enrollments/bad%20id", symEnrollment("bad id"), nil, 400, 400004, "registrationId"},
		{"400/registration id 129 chars", "PUT", "/enrollments/" + longID, symEnrollment(longID), nil, 400, 400004, "129 characters"},
		{"400/registration id ends with dot", "PUT", "/enrollments/victim.", symEnrollment("victim."), nil, 400, 400004, "must start and end"},
		{"400/body id differs from path", "PUT", "/enrollments/victim", symEnrollment("other"), nil, 400, 400004, "does not match"},
		{"400/non-base64 key", "PUT", "/enrollments/victim", withKey("not base64!"), nil, 400, 400004, "primaryKey"},
		{"400/8-byte key", "PUT", "/enrollments/victim", withKey(key8), nil, 400, 400004, "8 bytes"},
		{"400/key is a number", "PUT", "/enrollments/victim", `{"registrationId":"victim","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":5}}}`, nil, 400, 400004, "primaryKey"},
		{"400/twin not an object", "PUT", "/enrollments/victim", withTwin("x"), nil, 400, 400004, "initialTwin"},
		{"400/twin tags not an object", "PUT", "/enrollments/victim", withTwin(map[string]any{"tags": []any{1}}), nil, 400, 400004, "initialTwin.tags"},
		{"400/desired not an object", "PUT", "/enrollments/victim", withTwin(map[string]any{"properties": map[string]any{"desired": 3}}), nil, 400, 400004, "desired"},
		{"400/bad provisioning status", "PUT", "/enrollments/victim", func() any { e := symEnrollment("victim"); e["provisioningStatus"] = "paused"; return e }(), nil, 400, 400004, "paused"},
		{"400/bad allocation policy", "PUT", "/enrollments/victim", func() any { e := symEnrollment("victim"); e["allocationPolicy"] = "random"; return e }(), nil, 400, 400004, "random"},
		{"400/custom allocation without webhook", "PUT", "/enrollments/victim", func() any { e := symEnrollment("victim"); e["allocationPolicy"] = "custom"; return e }(), nil, 400, 400004, "customAllocationDefinition"},
		{"413/body over 96 KB", "PUT", "/enrollments/victim", big, nil, 413, 413001, "larger than"},
		{"415/not json", "PUT", "/enrollments/victim", `registrationId=victim`, map[string]string{"Content-Type": "text/plain"}, 415, 415001, "Content-Type"},
		{"400/missing api-version", "GET", "/enrollments/existing?api-version=", nil, nil, 400, 400004, "api-version"},
		{"401/missing token", "PUT", "/enrollments/victim", symEnrollment("victim"), map[string]string{"Authorization": ""}, 401, 401002, "Authorization"},
		{"401/expired token", "PUT", "/enrollments/victim", symEnrollment("victim"), map[string]string{"Authorization": a.token(t, a.owner, time.Now().Add(-time.Hour))}, 401, 401002, "expired"},
		{"401/garbage token", "PUT", "/enrollments/victim", symEnrollment("victim"), map[string]string{"Authorization": "Bearer abc"}, 401, 401002, "SharedAccessSignature"},
		{"401/wrong key", "PUT", "/enrollments/victim", symEnrollment("victim"), map[string]string{"Authorization": forged(t)}, 401, 401002, "signature"},
		{"401/policy without EnrollmentWrite", "PUT", "/enrollments/victim", symEnrollment("victim"), map[string]string{"Authorization": a.token(t, a.reader, time.Now().Add(time.Hour))}, 401, 401003, "EnrollmentWrite"},
		{"401/policy without RegistrationStatusWrite", "DELETE", "/registrations/victim", nil, map[string]string{"Authorization": a.token(t, a.reader, time.Now().Add(time.Hour))}, 401, 401003, "RegistrationStatusWrite"},
		{"404/unknown enrollment", "GET", "/enrollments/nobody", nil, nil, 404, 404201, "does not exist"},
		{"404/unknown group", "GET", "/enrollmentGroups/nobody", nil, nil, 404, 404201, "does not exist"},
		{"404/unknown registration", "GET", "/registrations/nobody", nil, nil, 404, 404201, "does not exist"},
		{"404/delete unknown enrollment", "DELETE", "/enrollments/nobody", nil, nil, 404, 404201, "does not exist"},
		{"404/unknown path", "GET", "/nothing/here", nil, nil, 404, 404201, "no such endpoint"},
		{"405/patch enrollment", "PATCH", "/enrollments/existing", symEnrollment("existing"), nil, 405, 405001, "PATCH"},
		{"412/stale if-match on update", "PUT", "/enrollments/existing", symEnrollment("existing"), map[string]string{"If-Match": `"stale"`}, 412, 412002, "If-Match"},
		{"412/stale if-match on delete", "DELETE", "/enrollments/existing", nil, map[string]string{"If-Match": "stale"}, 412, 412002, "If-Match"},
		{"412/if-match on missing enrollment", "PUT", "/enrollments/victim", symEnrollment("victim"), map[string]string{"If-Match": "abc"}, 412, 412002, "does not exist"},
		{"400/bad continuation", "POST", "/enrollments/query", `{"query":"*"}`, map[string]string{"x-ms-continuation": "!!"}, 400, 400004, "x-ms-continuation"},
		{"400/bad page size", "POST", "/enrollments/query", `{"query":"*"}`, map[string]string{"x-ms-max-item-count": "-1"}, 400, 400004, "x-ms-max-item-count"},
		{"400/query syntax error", "POST", "/enrollments/query", `{"query":"SELECT * FROM enrollments WHERE ("}`, nil, 400, 400004, "query"},
		{"400/query wrong collection", "POST", "/enrollments/query", `{"query":"SELECT * FROM devices"}`, nil, 400, 400004, "enrollments"},
		{"400/query projection unsupported", "POST", "/enrollments/query", `{"query":"SELECT registrationId FROM enrollments"}`, nil, 400, 400008, "SELECT *"},
		{"400/query unknown field", "POST", "/enrollments/query", `{"query":"SELECT * FROM enrollments WHERE colour = 'red'"}`, nil, 400, 400008, "colour"},
		{"400/query unknown function", "POST", "/enrollments/query", `{"query":"SELECT * FROM enrollments WHERE ST_DISTANCE(registrationId, 'a') = 1"}`, nil, 400, 400008, "ST_DISTANCE"},
		{"400/query group by", "POST", "/enrollments/query", `{"query":"SELECT * FROM enrollments GROUP BY provisioningStatus"}`, nil, 400, 400008, "GROUP BY"},
		{"400/bulk bad mode", "POST", "/enrollments", map[string]any{"mode": "upsert", "enrollments": []any{symEnrollment("victim")}}, nil, 400, 400004, "upsert"},
		{"400/bulk too many", "POST", "/enrollments", map[string]any{"mode": "create", "enrollments": elevenVictims()}, nil, 400, 400004, "at most 10"},
		{"400/bulk empty", "POST", "/enrollments", map[string]any{"mode": "create", "enrollments": []any{}}, nil, 400, 400004, "at least one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do(t, tc.method, tc.path, tc.body, tc.headers)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tc.status, r.body)
			}
			e := r.errorBody(t)
			if e.ErrorCode != tc.code {
				t.Errorf("errorCode = %d, want %d (message %q)", e.ErrorCode, tc.code, e.Message)
			}
			if got := r.header.Get("x-ms-error-code"); got != itoa(tc.code) {
				t.Errorf("x-ms-error-code = %q, want %d", got, tc.code)
			}
			if !strings.Contains(e.Message, tc.message) {
				t.Errorf("message %q does not mention %q", e.Message, tc.message)
			}
			if e.TrackingID == "" || e.TimestampUTC == "" {
				t.Errorf("error body lacks trackingId or timestampUtc: %s", r.body)
			}
			if got := a.do(t, "GET", "/enrollments/victim", nil, nil); got.status != 404 {
				t.Errorf("a refused request left an enrollment behind: %d %s", got.status, got.body)
			}
			if got := a.do(t, "GET", "/enrollments/existing", nil, nil).body; string(got) != string(before) {
				t.Errorf("a refused request changed an existing enrollment:\nbefore %s\nafter  %s", before, got)
			}
		})
	}
}

func elevenVictims() []any {
	out := make([]any, 11)
	for i := range out {
		out[i] = symEnrollment("victim")
	}
	return out
}

// forged is a token for the owner policy signed with a key that is not its.
func forged(t *testing.T) string {
	t.Helper()
	return signWith(t, "provisioningserviceowner", base64.StdEncoding.EncodeToString([]byte("this is not the key of the owner")))
}
