package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// usherWith runs one CLI command with the given environment only (no
// server data directory unless env names one).
func usherWith(t testing.TB, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustDecode parses a command's JSON output.
func mustDecode[T any](t testing.TB, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output is not the JSON expected: %v\n%s", err, out)
	}
	return v
}

// record is the part of an enrollment or group body the tests read.
type record struct {
	RegistrationID    string `json:"registrationId"`
	EnrollmentGroupID string `json:"enrollmentGroupId"`
	DeviceID          string `json:"deviceId"`
	ETag              string `json:"etag"`
	ProvisioningState string `json:"provisioningStatus"`
	Attestation       struct {
		Type         string `json:"type"`
		SymmetricKey *struct {
			PrimaryKey   *string `json:"primaryKey"`
			SecondaryKey *string `json:"secondaryKey"`
		} `json:"symmetricKey"`
	} `json:"attestation"`
	Capabilities struct {
		IoTEdge bool `json:"iotEdge"`
	} `json:"capabilities"`
	InitialTwin struct {
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired map[string]any `json:"desired"`
		} `json:"properties"`
	} `json:"initialTwin"`
	ReprovisionPolicy struct {
		UpdateHubAssignment bool `json:"updateHubAssignment"`
		MigrateDeviceData   bool `json:"migrateDeviceData"`
	} `json:"reprovisionPolicy"`
}

// keys returns the record's symmetric keys ("" for a masked one).
func (r record) keys(t testing.TB) (string, string) {
	t.Helper()
	k := r.Attestation.SymmetricKey
	if k == nil {
		t.Fatalf("record %s%s has no symmetricKey object", r.RegistrationID, r.EnrollmentGroupID)
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return deref(k.PrimaryKey), deref(k.SecondaryKey)
}

// wantKeyBytes checks that key is base64 of n bytes.
func wantKeyBytes(t testing.TB, name, key string, n int) {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(b) != n {
		t.Errorf("%s %q: want base64 of %d bytes, got %d bytes (err %v)", name, key, n, len(b), err)
	}
}

// wantFailure checks that a command failed and printed a message with want.
func wantFailure(t testing.TB, stderr string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("command succeeded, want a failure mentioning %q", want)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr = %q, want it to mention %q", stderr, want)
	}
}

func ids(rs []record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.RegistrationID + r.EnrollmentGroupID
	}
	slices.Sort(out)
	return out
}

func TestEnrollmentCommands(t *testing.T) {
	s := startServer(t)

	created := mustDecode[record](t, s.mustUsher(t, "enrollment", "create", "--enrollment-id", "dev-keys", "--show-keys"))
	primary, secondary := created.keys(t)
	testOut := s.mustUsher(t, "enrollment", "create", "--enrollment-id", "dev-test", "--device-id", "thermo-1",
		"--initial-twin-tags", `{"environment":"test","floor":3}`, "--initial-twin-properties", `{"interval":30}`, "--edge-enabled")
	pk := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	sk := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	s.mustUsher(t, "enrollment", "create", "--eid", "dev-prod", "--pk", pk, "--sk", sk, "--tags", `{"environment":"prod"}`, "--ps", "disabled")

	t.Run("ok/create generates 64-byte keys shown with --show-keys", func(t *testing.T) {
		wantKeyBytes(t, "primaryKey", primary, 64)
		wantKeyBytes(t, "secondaryKey", secondary, 64)
		if primary == secondary {
			t.Errorf("primary and secondary keys are equal")
		}
		if created.Attestation.Type != "symmetricKey" || created.RegistrationID != "dev-keys" {
			t.Errorf("created %+v, want symmetricKey enrollment dev-keys", created)
		}
		if !created.ReprovisionPolicy.UpdateHubAssignment || !created.ReprovisionPolicy.MigrateDeviceData {
			t.Errorf("reprovisionPolicy = %+v, want az's default reprovisionandmigratedata", created.ReprovisionPolicy)
		}
	})

	t.Run("ok/create without --show-keys masks keys as null", func(t *testing.T) {
		if !strings.Contains(testOut, `"primaryKey": null`) || !strings.Contains(testOut, `"secondaryKey": null`) {
			t.Errorf("create output does not show null keys:\n%s", testOut)
		}
		r := mustDecode[record](t, testOut)
		if r.DeviceID != "thermo-1" || !r.Capabilities.IoTEdge || r.InitialTwin.Tags["environment"] != "test" || r.InitialTwin.Properties.Desired["interval"] != float64(30) {
			t.Errorf("created %+v, want device thermo-1, edge, tags and desired set", r)
		}
	})

	t.Run("ok/aliases and supplied keys", func(t *testing.T) {
		r := mustDecode[record](t, s.mustUsher(t, "enrollment", "show", "--eid", "dev-prod", "--keys"))
		gotP, gotS := r.keys(t)
		if gotP != pk || gotS != sk || r.ProvisioningState != "disabled" || r.InitialTwin.Tags["environment"] != "prod" {
			t.Errorf("show = %+v (keys %q %q), want the supplied keys, disabled, environment prod", r, gotP, gotS)
		}
	})

	t.Run("ok/show masks keys", func(t *testing.T) {
		r := mustDecode[record](t, s.mustUsher(t, "enrollment", "show", "--enrollment-id", "dev-keys"))
		if p, sk := r.keys(t); p != "" || sk != "" {
			t.Errorf("show keys = %q, %q; want both null", p, sk)
		}
	})

	t.Run("ok/show --show-keys fetches the keys", func(t *testing.T) {
		r := mustDecode[record](t, s.mustUsher(t, "enrollment", "show", "--enrollment-id", "dev-keys", "--show-keys"))
		if p, sk := r.keys(t); p != primary || sk != secondary {
			t.Errorf("show --show-keys keys = %q, %q; want the created ones", p, sk)
		}
	})

	t.Run("ok/list returns every enrollment with keys masked", func(t *testing.T) {
		rs := mustDecode[[]record](t, s.mustUsher(t, "enrollment", "list"))
		if diff := cmp.Diff([]string{"dev-keys", "dev-prod", "dev-test"}, ids(rs)); diff != "" {
			t.Errorf("list (-want +got):\n%s", diff)
		}
		for _, r := range rs {
			if p, _ := r.keys(t); p != "" {
				t.Errorf("list shows the key of %s", r.RegistrationID)
			}
		}
	})

	t.Run("ok/list --where filters on tags", func(t *testing.T) {
		rs := mustDecode[[]record](t, s.mustUsher(t, "enrollment", "list", "--where", "initialTwin.tags.environment = 'test'"))
		if diff := cmp.Diff([]string{"dev-test"}, ids(rs)); diff != "" {
			t.Errorf("list --where (-want +got):\n%s", diff)
		}
	})

	t.Run("ok/list --top pages up to top items", func(t *testing.T) {
		for _, top := range []int{1, 2} {
			rs := mustDecode[[]record](t, s.mustUsher(t, "enrollment", "list", "--top", strconv.Itoa(top)))
			if len(rs) != top {
				t.Errorf("list --top %d returned %d items", top, len(rs))
			}
		}
	})

	t.Run("400/list --where on an unknown field shows the server message", func(t *testing.T) {
		_, stderr, err := s.usher(t, "enrollment", "list", "--where", "nosuchfield = 1")
		wantFailure(t, stderr, err, "nosuchfield")
	})

	t.Run("ok/update changes tags and keeps keys", func(t *testing.T) {
		s.mustUsher(t, "enrollment", "update", "--enrollment-id", "dev-keys", "--initial-twin-tags", `{"environment":"staging"}`)
		r := mustDecode[record](t, s.mustUsher(t, "enrollment", "show", "--enrollment-id", "dev-keys", "--show-keys"))
		if p, sk := r.keys(t); p != primary || sk != secondary {
			t.Errorf("keys after update = %q, %q; want them kept", p, sk)
		}
		if diff := cmp.Diff(map[string]any{"environment": "staging"}, r.InitialTwin.Tags); diff != "" {
			t.Errorf("tags after update (-want +got):\n%s", diff)
		}
		if r.ProvisioningState != "enabled" {
			t.Errorf("provisioningStatus = %q, want enabled (untouched)", r.ProvisioningState)
		}
	})

	t.Run("ok/update keeps what no flag names", func(t *testing.T) {
		s.mustUsher(t, "enrollment", "update", "--enrollment-id", "dev-test", "--reprovision-policy", "never")
		r := mustDecode[record](t, s.mustUsher(t, "enrollment", "show", "--enrollment-id", "dev-test"))
		if r.DeviceID != "thermo-1" || !r.Capabilities.IoTEdge || r.InitialTwin.Tags["environment"] != "test" || r.InitialTwin.Properties.Desired["interval"] != float64(30) {
			t.Errorf("after update %+v, want device ID, edge, tags and desired kept", r)
		}
		if r.ReprovisionPolicy.UpdateHubAssignment || r.ReprovisionPolicy.MigrateDeviceData {
			t.Errorf("reprovisionPolicy = %+v, want never (false, false)", r.ReprovisionPolicy)
		}
	})

	t.Run("412/update with a stale etag prints the server message", func(t *testing.T) {
		_, stderr, err := s.usher(t, "enrollment", "update", "--enrollment-id", "dev-keys", "--provisioning-status", "disabled", "--etag", `"stale"`)
		wantFailure(t, stderr, err, "does not match the current etag")
		if !strings.Contains(stderr, "HTTP 412") {
			t.Errorf("stderr = %q, want the status 412", stderr)
		}
	})

	t.Run("ok/update with the current etag", func(t *testing.T) {
		cur := mustDecode[record](t, s.mustUsher(t, "enrollment", "show", "--enrollment-id", "dev-keys"))
		r := mustDecode[record](t, s.mustUsher(t, "enrollment", "update", "--enrollment-id", "dev-keys", "--provisioning-status", "disabled", "-e", cur.ETag))
		if r.ProvisioningState != "disabled" || r.ETag == cur.ETag {
			t.Errorf("update = %+v, want disabled with a new etag", r)
		}
	})

	t.Run("400/update with a key the server refuses", func(t *testing.T) {
		_, stderr, err := s.usher(t, "enrollment", "update", "--enrollment-id", "dev-keys", "--primary-key", "c2hvcnQ=")
		wantFailure(t, stderr, err, "primaryKey")
	})

	t.Run("ok/table output has a header, a rule and aligned rows", func(t *testing.T) {
		out := s.mustUsher(t, "enrollment", "list", "-o", "table")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 5 {
			t.Fatalf("table has %d lines, want header, rule and 3 rows:\n%s", len(lines), out)
		}
		if !strings.HasPrefix(lines[0], "RegistrationId  DeviceId") || !strings.HasPrefix(lines[1], "--------------  --------") {
			t.Errorf("table header and rule:\n%s\n%s", lines[0], lines[1])
		}
		col := strings.Index(lines[0], "AttestationType")
		for _, l := range lines[2:] {
			if len(l) < col || !strings.HasPrefix(l[col:], "symmetricKey") {
				t.Errorf("row %q does not align symmetricKey under AttestationType (column %d)", l, col)
			}
		}
	})

	t.Run("ok/delete then show fails with does not exist", func(t *testing.T) {
		if out := s.mustUsher(t, "enrollment", "delete", "--enrollment-id", "dev-test"); out != "" {
			t.Errorf("delete printed %q, want nothing", out)
		}
		_, stderr, err := s.usher(t, "enrollment", "show", "--enrollment-id", "dev-test")
		wantFailure(t, stderr, err, `enrollment "dev-test" does not exist`)
	})

	t.Run("404/registration show of a device that never registered", func(t *testing.T) {
		_, stderr, err := s.usher(t, "enrollment", "registration", "show", "--enrollment-id", "dev-keys")
		wantFailure(t, stderr, err, `registration "dev-keys" does not exist`)
	})

	t.Run("404/registration delete of a device that never registered", func(t *testing.T) {
		_, stderr, err := s.usher(t, "enrollment", "registration", "delete", "--enrollment-id", "dev-keys")
		wantFailure(t, stderr, err, "does not exist")
	})
}

func TestEnrollmentFlagErrors(t *testing.T) {
	// No server and an empty data directory: every case must fail on its
	// flags before any connection is attempted.
	env := map[string]string{"USHER_DATA_DIR": t.TempDir()}
	tags := filepath.Join(t.TempDir(), "tags.json")
	if err := os.WriteFile(tags, []byte(`["not","an","object"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"error/invalid --initial-twin-tags JSON", []string{"enrollment", "create", "--enrollment-id", "d", "--initial-twin-tags", "{environment: test}"}, "--initial-twin-tags is not valid JSON"},
		{"error/--initial-twin-tags file not an object", []string{"enrollment", "create", "--enrollment-id", "d", "--initial-twin-tags", "@" + tags}, "--initial-twin-tags must be a JSON object"},
		{"error/--initial-twin-properties file missing", []string{"enrollment", "create", "--enrollment-id", "d", "--initial-twin-properties", "@" + tags + ".missing"}, "tags.json.missing"},
		{"error/--initial-twin-properties trailing data", []string{"enrollment", "create", "--enrollment-id", "d", "--props", `{"a":1} {"b":2}`}, "--initial-twin-properties is not valid JSON"},
		{"error/update with invalid tags", []string{"enrollment", "update", "--enrollment-id", "d", "--initial-twin-tags", "{"}, "--initial-twin-tags is not valid JSON"},
		{"error/attestation type x509 not supported", []string{"enrollment", "create", "--enrollment-id", "d", "--attestation-type", "x509"}, "--attestation-type x509 is not supported yet"},
		{"error/attestation type tpm not supported on update", []string{"enrollment", "update", "--enrollment-id", "d", "--at", "TPM"}, "--attestation-type tpm is not supported yet"},
		{"error/unknown attestation type", []string{"enrollment", "create", "--enrollment-id", "d", "--attestation-type", "password"}, "must be one of symmetrickey, x509, tpm"},
		{"error/unknown provisioning status", []string{"enrollment", "create", "--enrollment-id", "d", "--provisioning-status", "paused"}, "must be one of enabled, disabled"},
		{"error/unknown reprovision policy", []string{"enrollment", "create", "--enrollment-id", "d", "--rp", "always"}, "must be one of reprovisionandmigratedata"},
		{"error/unknown allocation policy", []string{"enrollment", "create", "--enrollment-id", "d", "--allocation-policy", "random"}, "must be one of hashed, geolatency, static, custom"},
		{"error/webhook without custom allocation", []string{"enrollment", "create", "--enrollment-id", "d", "--webhook-url", "https://x"}, "apply only with --allocation-policy custom"},
		{"error/unknown output format", []string{"enrollment", "list", "-o", "yaml"}, "must be json or table"},
		{"error/negative --top", []string{"enrollment", "list", "--top", "-5"}, "--top must be -1"},
		{"error/missing --enrollment-id", []string{"enrollment", "show"}, `required flag(s) "enrollment-id" not set`},
		{"error/--login and --connection-string differ", []string{"enrollment", "list", "--login", "HostName=a;SharedAccessKey=a2V5", "--connection-string", "HostName=b;SharedAccessKey=a2V5"}, "not both"},
		{"error/--login not a connection string", []string{"enrollment", "list", "--login", "nonsense"}, "connection string"},
		{"error/no data directory", []string{"enrollment", "list"}, "no DPS to talk to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, err := usherWith(t, env, tt.args...)
			wantFailure(t, stderr, err, tt.want)
			if out != "" {
				t.Errorf("stdout = %q, want nothing on failure", out)
			}
		})
	}
}

func TestEnrollmentLogin(t *testing.T) {
	s := startServer(t)
	reader := mustDecode[policyView](t, s.mustUsher(t, "policy", "create", "reader", "--rights", "EnrollmentRead"))
	s.mustUsher(t, "enrollment", "create", "--enrollment-id", "dev-1")
	// No data directory anywhere: only the connection string can find the server.
	none := map[string]string{"USHER_DATA_DIR": t.TempDir()}
	remote := []string{"--ca-file", s.Info.CAFile, "--address", s.Info.HTTPSAddr}

	t.Run("ok/--login with the owner connection string", func(t *testing.T) {
		out, stderr, err := usherWith(t, none, append([]string{"enrollment", "list", "--login", s.Info.ServiceConnectionString}, remote...)...)
		if err != nil {
			t.Fatalf("list --login: %v\n%s", err, stderr)
		}
		if diff := cmp.Diff([]string{"dev-1"}, ids(mustDecode[[]record](t, out))); diff != "" {
			t.Errorf("list (-want +got):\n%s", diff)
		}
	})

	t.Run("ok/-l with a read-only policy reads", func(t *testing.T) {
		out, stderr, err := usherWith(t, none, append([]string{"enrollment", "show", "--enrollment-id", "dev-1", "-l", reader.PrimaryConnectionString}, remote...)...)
		if err != nil {
			t.Fatalf("show -l: %v\n%s", err, stderr)
		}
		if r := mustDecode[record](t, out); r.RegistrationID != "dev-1" {
			t.Errorf("show returned %+v", r)
		}
	})

	t.Run("401/read-only policy cannot create", func(t *testing.T) {
		_, stderr, err := usherWith(t, none, append([]string{"enrollment", "create", "--enrollment-id", "dev-2", "--connection-string", reader.PrimaryConnectionString}, remote...)...)
		wantFailure(t, stderr, err, "HTTP 401")
	})

	t.Run("ok/USHER_CONNECTION_STRING", func(t *testing.T) {
		env := map[string]string{"USHER_DATA_DIR": t.TempDir(), "USHER_CONNECTION_STRING": s.Info.ServiceConnectionString}
		out, stderr, err := usherWith(t, env, append([]string{"enrollment", "list", "-o", "table"}, remote...)...)
		if err != nil {
			t.Fatalf("list: %v\n%s", err, stderr)
		}
		if !strings.Contains(out, "dev-1") {
			t.Errorf("table does not list dev-1:\n%s", out)
		}
	})

	t.Run("ok/--data-dir beats USHER_CONNECTION_STRING", func(t *testing.T) {
		env := map[string]string{"USHER_CONNECTION_STRING": "HostName=nowhere.invalid;SharedAccessKeyName=x;SharedAccessKey=a2V5"}
		if _, stderr, err := usherWith(t, env, "enrollment", "list", "--data-dir", s.DataDir); err != nil {
			t.Fatalf("list --data-dir: %v\n%s", err, stderr)
		}
	})

	t.Run("error/untrusted server without --ca-file", func(t *testing.T) {
		_, stderr, err := usherWith(t, none, "enrollment", "list", "--login", s.Info.ServiceConnectionString, "--address", s.Info.HTTPSAddr)
		wantFailure(t, stderr, err, "certificate")
	})
}

func TestLocalAddr(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ok/loopback kept", "127.0.0.1:8443", "127.0.0.1:8443"},
		{"ok/empty host becomes loopback", ":443", "127.0.0.1:443"},
		{"ok/IPv4 any becomes loopback", "0.0.0.0:443", "127.0.0.1:443"},
		{"ok/IPv6 any becomes IPv6 loopback", "[::]:443", "[::1]:443"},
		{"ok/host name kept", "dps.example.com:443", "dps.example.com:443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := localAddr(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("localAddr(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
	if _, err := localAddr(""); err == nil {
		t.Errorf("localAddr(\"\") succeeded, want an error")
	}
}
