package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/sas"
)

func TestGroupCommands(t *testing.T) {
	s := startServer(t)

	created := mustDecode[record](t, s.mustUsher(t, "enrollment-group", "create", "--group-id", "sensors",
		"--initial-twin-tags", `{"environment":"test"}`, "--show-keys"))
	primary, secondary := created.keys(t)
	s.mustUsher(t, "enrollment-group", "create", "--enrollment-id", "cameras", "--tags", `{"environment":"prod"}`, "--ee")

	t.Run("ok/create generates 64-byte keys shown with --show-keys", func(t *testing.T) {
		wantKeyBytes(t, "primaryKey", primary, 64)
		wantKeyBytes(t, "secondaryKey", secondary, 64)
		if created.EnrollmentGroupID != "sensors" || created.Attestation.Type != "symmetricKey" {
			t.Errorf("created %+v, want symmetricKey group sensors", created)
		}
	})

	t.Run("ok/show masks keys", func(t *testing.T) {
		r := mustDecode[record](t, s.mustUsher(t, "enrollment-group", "show", "--group-id", "sensors"))
		if p, sk := r.keys(t); p != "" || sk != "" {
			t.Errorf("show keys = %q, %q; want both null", p, sk)
		}
	})

	t.Run("ok/show --show-keys fetches the keys", func(t *testing.T) {
		r := mustDecode[record](t, s.mustUsher(t, "enrollment-group", "show", "--gid", "sensors", "--show-keys"))
		if p, sk := r.keys(t); p != primary || sk != secondary {
			t.Errorf("keys = %q, %q; want the created ones", p, sk)
		}
	})

	t.Run("ok/list returns every group", func(t *testing.T) {
		rs := mustDecode[[]record](t, s.mustUsher(t, "enrollment-group", "list"))
		if diff := cmp.Diff([]string{"cameras", "sensors"}, ids(rs)); diff != "" {
			t.Errorf("list (-want +got):\n%s", diff)
		}
	})

	t.Run("ok/list --where filters on tags", func(t *testing.T) {
		rs := mustDecode[[]record](t, s.mustUsher(t, "enrollment-group", "list", "--where", "initialTwin.tags.environment = 'test'"))
		if diff := cmp.Diff([]string{"sensors"}, ids(rs)); diff != "" {
			t.Errorf("list --where (-want +got):\n%s", diff)
		}
	})

	t.Run("ok/update changes desired properties and keeps keys and tags", func(t *testing.T) {
		s.mustUsher(t, "enrollment-group", "update", "--group-id", "sensors", "--initial-twin-properties", `{"interval":60}`)
		r := mustDecode[record](t, s.mustUsher(t, "enrollment-group", "show", "--group-id", "sensors", "--show-keys"))
		if p, sk := r.keys(t); p != primary || sk != secondary {
			t.Errorf("keys after update = %q, %q; want them kept", p, sk)
		}
		if r.InitialTwin.Tags["environment"] != "test" || r.InitialTwin.Properties.Desired["interval"] != float64(60) {
			t.Errorf("initialTwin after update = %+v, want tags kept and interval 60", r.InitialTwin)
		}
	})

	t.Run("ok/update --edge-enabled=false clears edge", func(t *testing.T) {
		r := mustDecode[record](t, s.mustUsher(t, "enrollment-group", "update", "--group-id", "cameras", "--edge-enabled=false"))
		if r.Capabilities.IoTEdge {
			t.Errorf("capabilities.iotEdge still true")
		}
		if p, _ := r.keys(t); p != "" {
			t.Errorf("update output shows the key without --show-keys")
		}
	})

	t.Run("412/update with a stale etag prints the server message", func(t *testing.T) {
		_, stderr, err := s.usher(t, "enrollment-group", "update", "--group-id", "sensors", "--provisioning-status", "disabled", "--etag", "stale")
		wantFailure(t, stderr, err, `does not match the current etag of enrollment group "sensors"`)
	})

	t.Run("ok/compute-device-key via the server equals the derived key", func(t *testing.T) {
		got := mustDecode[string](t, s.mustUsher(t, "enrollment-group", "compute-device-key", "--group-id", "sensors", "--registration-id", "sensor-042"))
		want, err := sas.DeriveDeviceKey(primary, "sensor-042")
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("compute-device-key = %q, want %q", got, want)
		}
	})

	t.Run("404/compute-device-key of a missing group", func(t *testing.T) {
		_, stderr, err := s.usher(t, "enrollment-group", "compute-device-key", "--group-id", "nope", "--rid", "d")
		wantFailure(t, stderr, err, `enrollment group "nope" does not exist`)
	})

	t.Run("ok/registration list of a group without devices is empty", func(t *testing.T) {
		if out := s.mustUsher(t, "enrollment-group", "registration", "list", "--group-id", "sensors"); strings.TrimSpace(out) != "[]" {
			t.Errorf("registration list = %q, want []", out)
		}
		out := s.mustUsher(t, "enrollment-group", "registration", "list", "--group-id", "sensors", "-o", "table")
		if !strings.HasPrefix(out, "RegistrationId  DeviceId  Status") {
			t.Errorf("empty registration table = %q, want just the header and rule", out)
		}
	})

	t.Run("404/registration list of a missing group", func(t *testing.T) {
		_, stderr, err := s.usher(t, "enrollment-group", "registration", "list", "--group-id", "nope")
		wantFailure(t, stderr, err, "does not exist")
	})

	t.Run("404/registration show of a device that never registered", func(t *testing.T) {
		_, stderr, err := s.usher(t, "enrollment-group", "registration", "show", "--rid", "sensor-042")
		wantFailure(t, stderr, err, `registration "sensor-042" does not exist`)
	})

	t.Run("ok/table output", func(t *testing.T) {
		out := s.mustUsher(t, "enrollment-group", "show", "--group-id", "sensors", "-o", "table")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "EnrollmentGroupId  AttestationType") || !strings.HasPrefix(lines[2], "sensors            symmetricKey") {
			t.Errorf("table:\n%s", out)
		}
	})

	t.Run("ok/delete then show fails with does not exist", func(t *testing.T) {
		s.mustUsher(t, "enrollment-group", "delete", "--group-id", "cameras")
		_, stderr, err := s.usher(t, "enrollment-group", "show", "--group-id", "cameras")
		wantFailure(t, stderr, err, `enrollment group "cameras" does not exist`)
	})
}

// derivedKeyVectors is internal/sas/testdata/derived-keys.json.
type derivedKeyVectors struct {
	Vectors []struct {
		GroupKey       string `json:"groupKey"`
		RegistrationID string `json:"registrationId"`
		DerivedKey     string `json:"derivedKey"`
	} `json:"vectors"`
}

func TestComputeDeviceKeyOffline(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "sas", "testdata", "derived-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	vectors := mustDecode[derivedKeyVectors](t, string(b))
	if len(vectors.Vectors) == 0 {
		t.Fatal("no vectors in derived-keys.json")
	}
	// No data directory and no connection string: --key needs neither.
	none := map[string]string{"USHER_DATA_DIR": filepath.Join(t.TempDir(), "absent")}
	for _, v := range vectors.Vectors {
		t.Run("ok/"+v.RegistrationID, func(t *testing.T) {
			out, stderr, err := usherWith(t, none, "enrollment-group", "compute-device-key", "--key", v.GroupKey, "--registration-id", v.RegistrationID)
			if err != nil {
				t.Fatalf("compute-device-key: %v\n%s", err, stderr)
			}
			if got := mustDecode[string](t, out); got != v.DerivedKey {
				t.Errorf("derived key = %q, want %q", got, v.DerivedKey)
			}
			out, _, err = usherWith(t, none, "enrollment-group", "compute-device-key", "--symmetric-key", v.GroupKey, "--rid", v.RegistrationID, "-o", "table")
			if err != nil || out != "Result\n------\n"+v.DerivedKey+"\n" {
				t.Errorf("table output = %q, %v; want a Result column with %s", out, err, v.DerivedKey)
			}
		})
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"error/--key and --group-id", []string{"--key", "a2V5", "--group-id", "g", "--registration-id", "d"}, "not both"},
		{"error/neither --key nor --group-id", []string{"--registration-id", "d"}, "give --group-id"},
		{"error/missing --registration-id", []string{"--key", "a2V5"}, `required flag(s) "registration-id" not set`},
		{"error/key not base64", []string{"--key", "%%%", "--registration-id", "d"}, "group key is not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := usherWith(t, none, append([]string{"enrollment-group", "compute-device-key"}, tt.args...)...)
			wantFailure(t, stderr, err, tt.want)
		})
	}
}

func TestGroupFlagErrors(t *testing.T) {
	env := map[string]string{"USHER_DATA_DIR": t.TempDir()}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"error/invalid --initial-twin-tags JSON", []string{"create", "--group-id", "g", "--initial-twin-tags", "not json"}, "--initial-twin-tags is not valid JSON"},
		{"error/attestation type x509 not supported", []string{"create", "--group-id", "g", "--attestation-type", "x509"}, "not supported yet"},
		{"error/groups take no --device-id", []string{"create", "--group-id", "g", "--device-id", "d"}, "unknown flag: --device-id"},
		{"error/missing --group-id", []string{"update"}, `required flag(s) "group-id" not set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := usherWith(t, env, append([]string{"enrollment-group"}, tt.args...)...)
			wantFailure(t, stderr, err, tt.want)
		})
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	paths := [][]string{
		{"enrollment"}, {"enrollment", "create"}, {"enrollment", "show"}, {"enrollment", "list"},
		{"enrollment", "update"}, {"enrollment", "delete"}, {"enrollment", "registration"},
		{"enrollment", "registration", "show"}, {"enrollment", "registration", "delete"},
		{"enrollment-group"}, {"enrollment-group", "create"}, {"enrollment-group", "show"},
		{"enrollment-group", "list"}, {"enrollment-group", "update"}, {"enrollment-group", "delete"},
		{"enrollment-group", "compute-device-key"}, {"enrollment-group", "registration"},
		{"enrollment-group", "registration", "list"}, {"enrollment-group", "registration", "show"},
		{"enrollment-group", "registration", "delete"},
	}
	for _, p := range paths {
		t.Run("ok/"+strings.Join(p, " "), func(t *testing.T) {
			out, stderr, err := usherWith(t, nil, append(p, "--help")...)
			if err != nil {
				t.Fatalf("--help: %v\n%s", err, stderr)
			}
			leaf := len(p) > 1 && p[len(p)-1] != "registration"
			if leaf && !strings.Contains(out, "Examples:\n  usher "+strings.Join(p, " ")) {
				t.Errorf("help of %v has no example of itself:\n%s", p, out)
			}
			if !strings.Contains(out, "--output") {
				t.Errorf("help of %v does not list --output", p)
			}
		})
	}
}
