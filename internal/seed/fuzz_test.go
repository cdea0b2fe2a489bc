package seed_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/seed"
)

// FuzzParse: Parse never panics, every problem it reports is an *Error
// naming the file, and what it accepts passes the domain's validation
// again unchanged (so Apply never writes a record the API would refuse).
// Seeded with the shipped examples and small documents of every section.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"seed.yaml", "seed.json"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"version: 1\n",
		"version: 1\ndps:\n  enrollments:\n    - registrationId: a\n      initialTwin: {tags: {x: [1, 2.5, null, true]}}\n",
		"version: 1\ndps:\n  policies:\n    - {keyName: p, rights: [EnrollmentRead], primaryKey: AAAAAAAAAAAAAAAAAAAAAA==}\n",
		"version: 1\nhub:\n  configurations:\n    - {id: c, targetCondition: \"tags.a='b'\", content: {deviceContent: {properties.desired.x: 1}}}\n",
		"version: 1\na: &a [x, x]\nb: [*a, *a]\n",
		`{"version": 1, "dps": {"enrollmentGroups": [{"enrollmentGroupId": "g", "capabilities": {"iotEdge": true}}]}}`,
		`{"version": 1, "dps": {"enrollments": [{"registrationId": "a", "initialTwin": {"tags": {"s": "x\/y \ud83d\ude00 \ud800"}}}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var file *seed.File
		var err error
		done := make(chan struct{})
		go func() { file, err = seed.Parse("fuzz.yaml", data); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Parse hangs on %q", data)
		}
		if err != nil {
			for _, e := range unjoin(err) {
				var se *seed.Error
				if !errors.As(e, &se) || se.File != "fuzz.yaml" || se.Line < 0 || se.Column < 0 {
					t.Fatalf("problem %q (%T) is not an *Error naming the file", e, e)
				}
				if !strings.HasPrefix(e.Error(), "seed file fuzz.yaml: ") {
					t.Fatalf("problem %q does not start with the file name", e)
				}
			}
			return
		}
		for _, e := range file.Enrollments {
			before := e.ProvisioningStatus
			if err := e.Validate(); err != nil || e.ProvisioningStatus != before {
				t.Fatalf("accepted enrollment %+v fails validation again: %v", e, err)
			}
		}
		for _, g := range file.Groups {
			if err := g.Validate(); err != nil {
				t.Fatalf("accepted group %+v fails validation again: %v", g, err)
			}
		}
		for _, c := range file.Configurations {
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted configuration %+v fails validation again: %v", c, err)
			}
		}
		for _, p := range append(file.DPSPolicies, file.HubPolicies...) {
			if p.Name == "" || p.Rights == 0 {
				t.Fatalf("accepted policy %+v has no name or no rights", p)
			}
		}
	})
}

// unjoin splits an errors.Join result into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
