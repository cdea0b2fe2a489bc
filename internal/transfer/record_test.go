package transfer

import (
	"strings"
	"testing"

	"github.com/usher-iot/usher/internal/wire"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name, line string
		wantID     string
		wantKind   Kind
		wantErr    string
	}{
		{name: "ok/enrollment", line: `{"version":1,"kind":"enrollment","enrollment":{"registrationId":"dev-1","attestation":{"type":"symmetricKey"}}}`, wantID: "dev-1", wantKind: KindEnrollment},
		{name: "ok/group without version", line: `{"kind":"enrollmentGroup","enrollmentGroup":{"enrollmentGroupId":"g-1","attestation":{"type":"symmetricKey"}}}`, wantID: "g-1", wantKind: KindGroup},
		{name: "ok/server members dropped", line: `{"kind":"enrollment","enrollment":{"registrationId":"d","etag":"\"x\"","createdDateTimeUtc":"2020-01-01T00:00:00Z","registrationState":{"registrationId":"d","status":"assigned"},"attestation":{"type":"symmetricKey"}}}`, wantID: "d", wantKind: KindEnrollment},
		{name: "bad/not json", line: `{"kind":`, wantErr: "not a JSON object"},
		{name: "bad/array", line: `[1]`, wantErr: "not a JSON object"},
		{name: "bad/not utf-8", line: "{\"kind\":\"enrollment\xff\"}", wantErr: "UTF-8"},
		{name: "bad/version", line: `{"version":2,"kind":"enrollment"}`, wantErr: "format version 2 is not supported"},
		{name: "bad/kind", line: `{"version":1,"kind":"device"}`, wantErr: `unknown kind "device"`},
		{name: "bad/no kind", line: `{"version":1}`, wantErr: `unknown kind ""`},
		{name: "bad/unknown member", line: `{"kind":"enrollment","enrollment":{"registrationId":"d","attestation":{"type":"symmetricKey"}},"extra":1}`, wantErr: `unknown member "extra"`},
		{name: "bad/missing body", line: `{"kind":"enrollment"}`, wantErr: `needs a "enrollment" member`},
		{name: "bad/both bodies", line: `{"kind":"enrollment","enrollment":{"registrationId":"d","attestation":{"type":"symmetricKey"}},"enrollmentGroup":{}}`, wantErr: `cannot carry a "enrollmentGroup"`},
		{name: "bad/id", line: `{"kind":"enrollment","enrollment":{"registrationId":"a b","attestation":{"type":"symmetricKey"}}}`, wantErr: `registrationId "a b" contains " "`},
		{name: "bad/no id", line: `{"kind":"enrollmentGroup","enrollmentGroup":{"attestation":{"type":"symmetricKey"}}}`, wantErr: "enrollmentGroupId is required"},
		{name: "bad/no attestation", line: `{"kind":"enrollment","enrollment":{"registrationId":"d"}}`, wantErr: "no attestation type"},
		{name: "bad/wrong type", line: `{"kind":"enrollment","enrollment":{"registrationId":7}}`, wantErr: "registrationId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ParseLine([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.ID() != tt.wantID || rec.Kind != tt.wantKind {
				t.Errorf("got %s %q, want %s %q", rec.Kind, rec.ID(), tt.wantKind, tt.wantID)
			}
			line, err := rec.MarshalLine()
			if err != nil {
				t.Fatal(err)
			}
			for _, server := range []string{"etag", "createdDateTimeUtc", "registrationState"} {
				if strings.Contains(string(line), server) {
					t.Errorf("re-rendered line keeps %s: %s", server, line)
				}
			}
		})
	}
}

func mustParse(t *testing.T, line string) Record {
	t.Helper()
	r, err := ParseLine([]byte(line))
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return r
}

func TestSame(t *testing.T) {
	const stored = `{"kind":"enrollment","enrollment":{"registrationId":"d","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"QUFBQUFBQUFBQUFBQUFBQQ==","secondaryKey":"QkJCQkJCQkJCQkJCQkJCQg=="}},` +
		`"capabilities":{"iotEdge":false},"provisioningStatus":"enabled","reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":true},` +
		`"initialTwin":{"tags":{"site":"a","n":1},"properties":{"desired":{}}}}}`
	tests := []struct {
		name string
		line string
		same bool
	}{
		{"same/identical", stored, true},
		{"same/keys left out are not compared", `{"kind":"enrollment","enrollment":{"registrationId":"d","attestation":{"type":"symmetricKey"},"capabilities":{"iotEdge":false},"provisioningStatus":"enabled","reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":true},"initialTwin":{"tags":{"n":1,"site":"a"}}}}`, true},
		{"same/defaulted members left out keep the target's", `{"kind":"enrollment","enrollment":{"registrationId":"d","attestation":{"type":"symmetricKey"},"initialTwin":{"tags":{"site":"a","n":1}}}}`, true},
		{"differs/a key", strings.Replace(stored, "QUFB", "Q0ND", 1), false},
		{"differs/a tag", strings.Replace(stored, `"site":"a"`, `"site":"b"`, 1), false},
		{"differs/a number's spelling", strings.Replace(stored, `"n":1`, `"n":1.0`, 1), false},
		{"differs/status", strings.Replace(stored, `"enabled"`, `"disabled"`, 1), false},
		{"differs/no initial twin", `{"kind":"enrollment","enrollment":{"registrationId":"d","attestation":{"type":"symmetricKey"}}}`, false},
		{"differs/device ID", strings.Replace(stored, `"registrationId":"d",`, `"registrationId":"d","deviceId":"x",`, 1), false},
	}
	have := mustParse(t, stored)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := merged(mustParse(t, tt.line), have)
			if got := same(want, have); got != tt.same {
				t.Errorf("same = %v, want %v", got, tt.same)
			}
		})
	}
}

func TestSameEmptyTwins(t *testing.T) {
	a := EnrollmentRecord(wire.IndividualEnrollment{RegistrationID: "d", EnrollmentSettings: wire.EnrollmentSettings{Attestation: &wire.AttestationMechanism{Type: "symmetricKey"}}})
	for _, twin := range []*wire.InitialTwin{
		{},
		{Tags: map[string]any{}},
		{Tags: map[string]any{}, Properties: &wire.InitialTwinProperties{Desired: map[string]any{}}},
	} {
		b := clone(a)
		b.Enrollment.InitialTwin = twin
		if !same(a, b) || !same(b, a) {
			t.Errorf("an empty initial twin %+v differs from none", twin)
		}
	}
}
