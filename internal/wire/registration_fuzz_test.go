package wire_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/wire"
)

// topLevelMembers returns the members of body's top-level JSON object in
// the order sent, duplicates included; nil when body is not one object.
func topLevelMembers(body []byte) []member {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil
		}
		out = append(out, member{name: tok.(string), raw: raw})
	}
	return out
}

type member struct {
	name string
	raw  json.RawMessage
}

// FuzzDecodeDeviceRegistration decodes arbitrary bodies as the DPS device
// API's DeviceRegistration, as both transports do (an empty body is no
// body). Refusals are Malformed or Invalid, or Unsupported exactly when the
// body's last tpm member (matched case-insensitively, as encoding/json does)
// is not null; what is accepted carries the registrationId the body's last
// member of that name carries, and renders and decodes back to the same
// registration, payload numbers included.
func FuzzDecodeDeviceRegistration(f *testing.F) {
	for _, seed := range []string{
		// dps-https-register.md, dps-mqtt-register.md (Node)
		`{"registrationId":"cap-http-dev-01"}`,
		`{"registrationId":"cap-http-dev-01","payload":{"modelId":"dtmi:example;1","extra":42}}`,
		// c-sdk-dps-https-register.md, c-sdk-dps-mqtt-register.md (C)
		`{ "registrationId":"cap-c-http-01" }`, `{"registrationId":"cap-c-mqtt-01","payload":null}`,
		` `, ``, `{}`, `null`, `[]`, `"x"`,
		`{"registrationId":"a","tpm":{"endorsementKey":"AAAA","storageRootKey":"AAAA"}}`,
		`{"registrationId":"a","TPM":null,"RegistrationID":"b","registrationId":null}`,
		`{"payload":{"n":12345678901234567890123,"f":1.50,"e":-0e-0,"s":"\u00e9\ud83d\ude00","a":[{},[],null]}}`,
		`{"registrationId":"a"}{}`, `{"registrationId":1}`, `{"payload":[]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reg, err := wire.DecodeDeviceRegistration(body)
		wantID, wantTPM := "", false
		for _, m := range topLevelMembers(body) {
			null := string(bytes.TrimSpace(m.raw)) == "null"
			switch {
			case strings.EqualFold(m.name, "registrationId") && !null:
				_ = json.Unmarshal(m.raw, &wantID)
			case strings.EqualFold(m.name, "tpm"):
				wantTPM = !null
			}
		}
		if err != nil {
			switch k := fault.KindOf(err); {
			case k == fault.Unsupported && !wantTPM:
				t.Fatalf("refused %q as unsupported without a tpm member: %v", body, err)
			case k != fault.Malformed && k != fault.Invalid && k != fault.Unsupported:
				t.Fatalf("decode failed with kind %v: %v", k, err)
			}
			return
		}
		if wantTPM {
			t.Fatalf("accepted %q, whose tpm member should have been refused", body)
		}
		if reg.RegistrationID != wantID {
			t.Fatalf("decoded registrationId %q from %q, want %q", reg.RegistrationID, body, wantID)
		}
		out, err := json.Marshal(reg)
		if err != nil {
			t.Fatalf("render %+v: %v", reg, err)
		}
		var again wire.DeviceRegistration
		if err := wire.Decode(out, &again); err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
		if diff := cmp.Diff(reg, again); diff != "" {
			t.Fatalf("round trip of %q changed the registration (-first +second):\n%s", body, diff)
		}
	})
}

// FuzzDecodeEnrollmentGroup is FuzzDecodeEnrollment for enrollment
// groups: refusals are Malformed or Invalid, and a group that validates
// renders and decodes back to itself.
func FuzzDecodeEnrollmentGroup(f *testing.F) {
	for _, seed := range []string{
		// dps-service-enrollments.md: createOrUpdateEnrollmentGroup
		`{"enrollmentGroupId":"cap-svc-group","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=","secondaryKey":"c2Vjb25kYXJ5LWtleS1mb3ItZnV6emluZy0wMDAwMDA="}},"provisioningStatus":"enabled","capabilities":{"iotEdge":false},"initialTwin":{"tags":{"fleet":"blue"},"properties":{"desired":{}}}}`,
		`{"enrollmentGroupId":"g","attestation":{"type":"symmetricKey"},"reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":false},"allocationPolicy":"HASHED","iotHubs":["localhost"]}`,
		`{"enrollmentGroupId":"g","attestation":{"type":"x509","x509":{"signingCertificates":{}}}}`,
		`{"enrollmentGroupId":"g:1","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":null,"secondaryKey":"AAAA"}},"customAllocationDefinition":{"webhookUrl":"https://x","apiVersion":"2021-10-01"}}`,
		`{"enrollmentGroupId":"-","provisioningStatus":"disabled","etag":"\"x\"","createdDateTimeUtc":"2026-11-25T21:23:36.239Z"}`,
		`{"enrollmentGroupId":""}`, `{"enrollmentGroupId":"g","iotHubs":"x"}`, `[]`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in wire.EnrollmentGroup
		if err := wire.Decode(body, &in); err != nil {
			if k := fault.KindOf(err); k != fault.Malformed && k != fault.Invalid {
				t.Fatalf("decode failed with kind %v: %v", k, err)
			}
			return
		}
		g := in.ToGroup()
		if err := g.Validate(); err != nil {
			if k := fault.KindOf(err); k != fault.Invalid && k != fault.Unsupported {
				t.Fatalf("Validate failed with kind %v: %v", k, err)
			}
			return
		}
		roundTripGroup(t, g)
	})
}

// FuzzDecodeBulkEnrollments decodes arbitrary bodies as the DPS service's
// bulk operations (POST /enrollments and /enrollmentGroups) and as query
// specifications. Refusals are client errors; a mode that parses is one of
// Azure's four; every item that validates renders and decodes back to
// itself.
func FuzzDecodeBulkEnrollments(f *testing.F) {
	capture, err := os.ReadFile(filepath.Join("testdata", "capture-put-enrollment.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		// dps-service-enrollments.md: runBulkEnrollmentOperation
		`{"mode":"create","enrollments":[{"registrationId":"cap-bulk-1","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=","secondaryKey":"c2Vjb25kYXJ5LWtleS1mb3ItZnV6emluZy0wMDAwMDA="}},"provisioningStatus":"enabled"},{"registrationId":"cap-bulk-2","attestation":{"type":"symmetricKey"},"provisioningStatus":"enabled"}]}`,
		`{"mode":"Delete","enrollmentGroups":[{"enrollmentGroupId":"cap-svc-group","attestation":{"type":"symmetricKey"}}]}`,
		`{"mode":"updateIfMatchETag","enrollments":[` + string(capture) + `]}`,
		`{"mode":"UPDATE","enrollments":null,"enrollmentGroups":[]}`,
		`{"query":"*"}`, `{"query":"SELECT * FROM enrollments"}`, `{"mode":"merge","enrollments":[{}]}`, `{"mode":1}`, `[]`,
	} {
		f.Add([]byte(seed))
	}
	client := func(t *testing.T, what string, err error) {
		t.Helper()
		switch fault.KindOf(err) {
		case fault.Malformed, fault.Invalid, fault.Unsupported:
		default:
			t.Fatalf("%s failed with kind %v: %v", what, fault.KindOf(err), err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var q wire.QuerySpecification
		if err := wire.Decode(body, &q); err != nil {
			client(t, "query", err)
		}
		var e wire.BulkEnrollmentOperation
		if err := wire.Decode(body, &e); err != nil {
			client(t, "bulk enrollments", err)
		} else {
			checkBulkMode(t, e.Mode)
			for _, item := range e.Enrollments {
				en := item.ToEnrollment()
				if err := en.Validate(); err != nil {
					client(t, "bulk enrollment", err)
					continue
				}
				roundTripEnrollment(t, en)
			}
		}
		var g wire.BulkEnrollmentGroupOperation
		if err := wire.Decode(body, &g); err != nil {
			client(t, "bulk groups", err)
		} else {
			checkBulkMode(t, g.Mode)
			for _, item := range g.EnrollmentGroups {
				gr := item.ToGroup()
				if err := gr.Validate(); err != nil {
					client(t, "bulk group", err)
				}
			}
		}
	})
}

// checkBulkMode checks that ParseBulkMode accepts exactly Azure's four
// modes, in any case.
func checkBulkMode(t *testing.T, mode string) {
	t.Helper()
	m, err := dps.ParseBulkMode(mode)
	known := false
	for _, k := range []string{"create", "update", "updateIfMatchETag", "delete"} {
		if strings.EqualFold(mode, k) {
			known = true
			if string(m) != k {
				t.Fatalf("ParseBulkMode(%q) = %q, want %q", mode, m, k)
			}
		}
	}
	if (err == nil) != known {
		t.Fatalf("ParseBulkMode(%q) = %q, %v", mode, m, err)
	}
	if err != nil && !fault.Is(err, fault.Invalid) {
		t.Fatalf("ParseBulkMode(%q) failed with kind %v", mode, fault.KindOf(err))
	}
}
