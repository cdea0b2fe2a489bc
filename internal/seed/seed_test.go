package seed_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/seed"
)

// mustParse parses a seed file given as text, failing the test on error.
func mustParse(tb testing.TB, text string) *seed.File {
	tb.Helper()
	f, err := seed.Parse("test.yaml", []byte(text))
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return f
}

// TestExamples parses the shipped examples (so they cannot rot) and checks
// that the YAML and JSON files declare the same records.
func TestExamples(t *testing.T) {
	files := map[string]*seed.File{}
	for _, name := range []string{"seed.yaml", "seed.json"} {
		path := filepath.Join("..", "..", "examples", name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := seed.Parse(name, data)
		if err != nil {
			t.Fatalf("examples/%s: %v", name, err)
		}
		f.Name = ""
		files[name] = f
	}
	y := files["seed.yaml"]
	if diff := cmp.Diff(y, files["seed.json"]); diff != "" {
		t.Errorf("examples/seed.yaml and seed.json differ (-yaml +json):\n%s", diff)
	}
	if len(y.DPSPolicies) != 1 || len(y.HubPolicies) != 1 || len(y.Groups) != 1 || len(y.Enrollments) != 2 || len(y.Configurations) != 1 {
		t.Fatalf("examples/seed.yaml declares %d/%d policies, %d groups, %d enrollments, %d configurations; want 1/1, 1, 2, 1",
			len(y.DPSPolicies), len(y.HubPolicies), len(y.Groups), len(y.Enrollments), len(y.Configurations))
	}
	g := y.Groups[0]
	if !g.IoTEdge || g.Attestation.PrimaryKey == "" || g.InitialTwin.Tags["environment"] != "test" {
		t.Errorf("group = %+v, want an IoT Edge group with a fixed key and tags.environment test", g)
	}
	if c := y.Configurations[0]; c.TargetCondition != "tags.environment='test'" || c.Content.ModulesContent["$edgeAgent"] == nil {
		t.Errorf("configuration = %+v, want an edge deployment targeting tags.environment='test'", c)
	}
	if y.HubPolicies[0].Rights != access.RegistryRead|access.ServiceConnect {
		t.Errorf("hub policy rights = %v, want RegistryRead, ServiceConnect", y.HubPolicies[0].Rights)
	}
}

// TestParseValues checks how YAML values become what the API would store.
func TestParseValues(t *testing.T) {
	f := mustParse(t, `
version: 1
dps:
  enrollments:
    - registrationId: dev-1
      initialTwin:
        tags: {n: 7, f: 1.5, big: 12345678901234567890, huge: -123456789012345678901234567890, b: yes-is-a-string, t: true, z: null, l: [1, "a"], hex: 0x10}
      reprovisionPolicy: {updateHubAssignment: false}
      provisioningStatus: Disabled
`)
	e := f.Enrollments[0]
	got, err := json.Marshal(e.InitialTwin.Tags)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b":"yes-is-a-string","big":12345678901234567890,"f":1.5,"hex":16,"huge":-123456789012345678901234567890,"l":[1,"a"],"n":7,"t":true,"z":null}`
	if string(got) != want {
		t.Errorf("tags = %s, want %s", got, want)
	}
	if e.Attestation.Type != dps.SymmetricKey || e.Attestation.PrimaryKey != "" {
		t.Errorf("attestation = %+v, want symmetricKey without keys (generated on creation)", e.Attestation)
	}
	if e.ProvisioningStatus != dps.Disabled {
		t.Errorf("provisioningStatus = %q, want disabled (normalised)", e.ProvisioningStatus)
	}
	if r := e.ReprovisionPolicy; r == nil || r.UpdateHubAssignment || !r.MigrateDeviceData {
		t.Errorf("reprovisionPolicy = %+v, want updateHubAssignment false, migrateDeviceData true (its default)", r)
	}
}

// TestParseErrors: every class of bad input fails with the file, the line
// and column, and what is wrong.
func TestParseErrors(t *testing.T) {
	const key = "IQDX3Fn2Y6VBvyVtzrHvN1QC7D9XGCsepYZjPJhbb5c="
	tests := []struct {
		name, text string
		want       []string // each must appear in the error
	}{
		{"empty", "", []string{"seed file test.yaml: the file is empty"}},
		{"no version", "dps: {}\n", []string{"line 1, column 1: the file has no version"}},
		{"wrong version", "version: 2\n", []string{`line 1, column 10: version 2 is not supported`}},
		{"version empty", "version:\n", []string{`line 1, column 9: version is empty; write "version: 1"`}},
		{"version empty through an alias", "a: &n null\nversion: *n\n", []string{`line 1, column 4: version is empty`, `unknown field "a"`}},
		{"wrong version with other problems", "version: 3\nbogus: 1\n", []string{`line 1, column 10: version 3 is not supported`, `line 2, column 1: unknown field "bogus"`}},
		{"version not a number", "version: one\n", []string{`line 1, column 10: version must be a whole number, not the string "one"`}},
		{"top level a list", "- a\n", []string{"line 1, column 1: the seed file must be a mapping of fields, not a list"}},
		{"syntax", "version: 1\ndps: [\n", []string{"seed file test.yaml: ", "line"}},
		{"two documents", "version: 1\n---\nversion: 1\n", []string{"line 2: the file holds more than one YAML document"}},
		{"unknown top-level key", "version: 1\nenrollments: []\n", []string{`line 2, column 1: unknown field "enrollments" in the seed file`}},
		{"unknown enrollment key", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      enrolmentId: x
`, []string{`line 5, column 7: unknown field "enrolmentId" in enrollment`}},
		{"misspelt case gets a hint", `version: 1
dps:
  enrollments:
    - RegistrationId: dev-1
`, []string{`line 4, column 7: unknown field "RegistrationId" in enrollment (did you mean "registrationId"?)`}},
		{"unknown nested key", `version: 1
dps:
  enrollmentGroups:
    - enrollmentGroupId: g1
      initialTwin:
        tag: {a: 1}
`, []string{`line 6, column 9: unknown field "tag" in initialTwin (did you mean "tags"?)`}},
		{"repeated key", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      registrationId: dev-2
`, []string{`line 5, column 7: field "registrationId" is given twice in enrollment`}},
		{"wrong type: number for a string", `version: 1
dps:
  enrollments:
    - registrationId: 0123
`, []string{`line 4, column 23: registrationId must be a string, not the number 0123 (quote it: "0123")`}},
		{"wrong type: string for a bool", `version: 1
dps:
  enrollmentGroups:
    - enrollmentGroupId: g1
      capabilities: {iotEdge: "yes"}
`, []string{`line 5, column 31: capabilities.iotEdge must be true or false, not the string "yes"`}},
		{"wrong type: list for an object", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      initialTwin:
        tags: [a, b]
`, []string{`line 6, column 15: initialTwin.tags must be a mapping, not a list`}},
		{"invalid registration ID", `version: 1
dps:
  enrollments:
    - registrationId: "dev 1"
`, []string{`line 4, column 23: registrationId "dev 1" contains " "`}},
		{"invalid device ID", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      deviceId: "a/b"
`, []string{`line 5, column 17: deviceId "a/b" contains "/"`}},
		{"missing registration ID", `version: 1
dps:
  enrollments:
    - deviceId: d1
`, []string{`line 4, column 7: enrollment needs a registrationId`}},
		{"key not base64", `version: 1
dps:
  enrollmentGroups:
    - enrollmentGroupId: g1
      attestation:
        symmetricKey: {primaryKey: "not base64!"}
`, []string{`line 6, column 36: attestation.symmetricKey.primaryKey: `, "base64"}},
		{"key too short", `version: 1
dps:
  policies:
    - keyName: p1
      rights: EnrollmentRead
      primaryKey: AAAA
`, []string{`line 6, column 19: primaryKey: `}},
		{"unsupported attestation", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      attestation: {type: x509}
`, []string{`line 5, column 27: attestation.type "x509" is not supported`}},
		{"bad provisioning status", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      provisioningStatus: paused
`, []string{`line 4, column 7: enrollment "dev-1": provisioningStatus "paused" is not one of enabled, disabled`}},
		{"duplicate registration IDs (case-insensitive)", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
    - registrationId: DEV-1
`, []string{`line 5, column 7: enrollment "dev-1" is declared twice (first at line 4)`}},
		{"duplicate group IDs", `version: 1
dps:
  enrollmentGroups:
    - enrollmentGroupId: g1
    - enrollmentGroupId: g1
`, []string{`line 5, column 7: enrollment group "g1" is declared twice (first at line 4)`}},
		{"duplicate policy names", `version: 1
hub:
  policies:
    - {keyName: svc, rights: RegistryRead}
    - {keyName: SVC, rights: RegistryWrite}
`, []string{`line 5, column 7: hub policy "svc" is declared twice (first at line 4)`}},
		{"unknown right", `version: 1
dps:
  policies:
    - keyName: p1
      rights: [EnrollmentRead, RegistryRead]
`, []string{`line 5, column 15: rights: "RegistryRead" is not a dps right`}},
		{"policy without rights", `version: 1
dps:
  policies:
    - keyName: p1
`, []string{`line 4, column 7: dps policy "p1" needs rights`}},
		{"invalid policy name", `version: 1
dps:
  policies:
    - {keyName: "a b", rights: EnrollmentRead}
`, []string{`line 4, column 17: policy name "a b" may only contain`}},
		{"bad target condition", `version: 1
hub:
  configurations:
    - id: d1
      targetCondition: "tags.environment = = 'test'"
      content: {modulesContent: {$edgeAgent: {properties.desired: {}}}}
`, []string{`line 4, column 7: configuration "d1": targetCondition is not valid`}},
		{"configuration ID upper case", `version: 1
hub:
  configurations:
    - id: Deploy1
      content: {deviceContent: {properties.desired.a: 1}}
`, []string{`line 4, column 11: configuration ID "Deploy1" contains "D"`}},
		{"configuration without content", `version: 1
hub:
  configurations:
    - id: d1
      targetCondition: "*"
`, []string{`line 4, column 7: configuration "d1": content must have exactly one of`}},
		{"configuration content path", `version: 1
hub:
  configurations:
    - id: d1
      content: {deviceContent: {tags.a: 1}}
`, []string{`configuration "d1": content.deviceContent has the key "tags.a"`}},
		{"duplicate configuration IDs", `version: 1
hub:
  configurations:
    - {id: d1, content: {deviceContent: {properties.desired.a: 1}}}
    - {id: d1, content: {deviceContent: {properties.desired.a: 2}}}
`, []string{`line 5, column 7: configuration "d1" is declared twice (first at line 4)`}},
		{"negative priority", `version: 1
hub:
  configurations:
    - {id: d1, priority: -1, content: {deviceContent: {properties.desired.a: 1}}}
`, []string{`configuration "d1": priority must be 0 or more`}},
		{"twin key with a dot", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      initialTwin: {tags: {"a.b": 1}}
`, []string{`line 5, column 27: `, "initialTwin.tags"}},
		{"non-string map key", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      initialTwin: {tags: {1: a}}
`, []string{`line 5, column 28: initialTwin.tags has a key that is not a string (the number 1)`}},
		{"infinity", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      initialTwin: {tags: {a: .inf}}
`, []string{`initialTwin.tags.a is ".inf", which is no JSON number`}},
		{"every problem at once", `version: 1
dps:
  enrollments:
    - registrationId: dev-1
      bogus: 1
    - registrationId: "dev 2"
  bogus2: []
`, []string{`line 5, column 7: unknown field "bogus"`, `line 6, column 23: registrationId "dev 2"`, `line 7, column 3: unknown field "bogus2" in dps`}},
		{"JSON line numbers", `{
  "version": 1,
  "dps": {
    "enrollments": [
      {"registrationId": "dev-1",
       "enrolmentId": "x"}
    ]
  }
}`, []string{`line 6, column 8: unknown field "enrolmentId" in enrollment`}},
		{"aliases are bounded", "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n", []string{`unknown field "a"`}},
		{"fixed key accepted but name missing", `version: 1
dps:
  policies:
    - {rights: EnrollmentRead, primaryKey: ` + key + `}
`, []string{`line 4, column 7: dps policy needs a keyName`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := seed.Parse("test.yaml", []byte(tt.text))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v; want an error containing %q", f, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "seed file test.yaml: ") {
				t.Errorf("error %q does not start with the file's name", err)
			}
		})
	}
}

// TestParseAliasBomb: a document that expands exponentially through
// aliases is refused quickly instead of being walked.
func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\ndps:\n  enrollments:\n    - registrationId: d\n      initialTwin:\n        tags:\n          l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		prev := "*l" + string(rune('0'+i-1))
		b.WriteString("          l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	_, err := seed.Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("Parse of an alias bomb: %v; want it refused for its size", err)
	}
}

// TestParseJSONEscapes: escapes valid in JSON but not in YAML read as
// encoding/json reads them.
func TestParseJSONEscapes(t *testing.T) {
	f := mustParse(t, `{"version": 1, "dps": {"enrollments": [{"registrationId": "a",
  "initialTwin": {"tags": {"s": "x\/y \ud83d\ude00 \ud800 \u00e9 \n"}}}]}}`)
	if got, want := f.Enrollments[0].InitialTwin.Tags["s"], "x/y \U0001F600 \uFFFD é \n"; got != want {
		t.Errorf("tag = %q, want %q", got, want)
	}
}
