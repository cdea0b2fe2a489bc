package wire_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/wire"
)

// FuzzDecodeEnrollment feeds arbitrary bodies to the enrollment decoder. It
// must never panic, must fail only with Malformed or Invalid, and whatever it
// accepts and validates must render and decode back to the same enrollment.
func FuzzDecodeEnrollment(f *testing.F) {
	capture, err := os.ReadFile(filepath.Join("testdata", "capture-put-enrollment.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(capture),
		`{"registrationId":"a","attestation":{"type":"symmetricKey"}}`,
		`{"registrationId":"a","attestation":{"type":"x509","x509":{}}}`,
		`{"registrationId":"a","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":null}},"initialTwin":{"tags":{"a":{"b":[1,2.5e3,"x",null,true]}}}}`,
		`{"initialTwin":"x"}`, `[]`, `{`, `{"registrationId":"a"} {}`, `{"provisioningStatus":"DISABLED","allocationPolicy":"geolatency"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in wire.IndividualEnrollment
		if err := wire.Decode(body, &in); err != nil {
			if k := fault.KindOf(err); k != fault.Malformed && k != fault.Invalid {
				t.Fatalf("decode failed with kind %v: %v", k, err)
			}
			return
		}
		e := in.ToEnrollment()
		if err := e.Validate(); err != nil {
			return
		}
		out, err := json.Marshal(wire.FromEnrollment(e, wire.ShowKeys))
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		var again wire.IndividualEnrollment
		if err := wire.Decode(out, &again); err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
		e2 := again.ToEnrollment()
		if err := e2.Validate(); err != nil {
			t.Fatalf("rendered enrollment does not validate: %v\n%s", err, out)
		}
		if diff := cmp.Diff(e, e2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip changed the enrollment (-first +second):\n%s", diff)
		}
	})
}
