package wire_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/wire"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", name, diff)
	}
}

func sample() dps.Enrollment {
	at := time.Date(2026, 11, 25, 21, 23, 36, 239_000_000, time.UTC)
	return dps.Enrollment{
		RegistrationID: "cap-svc-dev-01",
		DeviceID:       "cap-svc-dev-01",
		Settings: dps.Settings{
			Attestation:        dps.Attestation{Type: dps.SymmetricKey, PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2Nzg=", SecondaryKey: "c2Vjb25kYXJ5LWtleS0xMjM0NTY="},
			IoTEdge:            true,
			InitialTwin:        &dps.InitialTwin{Tags: map[string]any{"site": "lab-1", "role": "gateway"}, Desired: map[string]any{"telemetryInterval": json.Number("30")}},
			ProvisioningStatus: dps.Enabled,
			ReprovisionPolicy:  &dps.ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true},
			AllocationPolicy:   "hashed",
			ETag:               "0f0a0b0a",
			Created:            at,
			Updated:            at,
		},
	}
}

// TestEnrollmentGolden pins the exact JSON Azure clients get for an
// enrollment (shape of the capture in shared/spec/wire/dps-service-enrollments.md).
func TestEnrollmentGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys wire.KeyMode
	}{{"enrollment-masked.json", wire.MaskKeys}, {"enrollment-keys.json", wire.ShowKeys}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.MarshalIndent(wire.FromEnrollment(sample(), tc.keys), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, append(b, '\n'))
		})
	}
}

// TestCaptureDecodes decodes the enrollment body the Node SDK sent in the
// capture and checks every field reaches the domain type.
func TestCaptureDecodes(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "capture-put-enrollment.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e wire.IndividualEnrollment
	if err := wire.Decode(body, &e); err != nil {
		t.Fatal(err)
	}
	got := e.ToEnrollment()
	if err := got.Validate(); err != nil {
		t.Fatalf("the captured body does not validate: %v", err)
	}
	want := sample()
	want.ETag, want.Created, want.Updated = "", time.Time{}, time.Time{}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded capture (-want +got):\n%s", diff)
	}
}
