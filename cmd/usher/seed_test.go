package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/postgres/pgtest"
)

// The example seed file and what it declares (examples/seed.yaml).
const (
	exampleSeed       = "../../examples/seed.yaml"
	exampleGroupKey   = "IQDX3Fn2Y6VBvyVtzrHvN1QC7D9XGCsepYZjPJhbb5c="
	examplePolicyKey  = "uS9GCGoziXQ6t8mSI4aLYaQ/fCplpn9ayZh6CNSTo7w="
	exampleDeviceKey  = "LOT55z5GZ+YD1xmpQxQ+NwgEEO1hnZaQGi+hkXtMpGA="
	exampleDeployment = "ci-edge-baseline"
)

// writeSeed writes the example seed file, changed by the replacer's pairs,
// into dir and returns its path.
func writeSeed(t *testing.T, dir string, replace ...string) string {
	t.Helper()
	data, err := os.ReadFile(exampleSeed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "seed.yaml")
	if err := os.WriteFile(path, []byte(strings.NewReplacer(replace...).Replace(string(data))), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// registerEdgeDevice registers a device of the example's edge group with a
// key derived offline from the fixed group key, and checks that it lands in
// the hub with the group's initial twin and the example deployment.
func registerEdgeDevice(t *testing.T, s *testServer, id string) {
	t.Helper()
	key, err := sas.DeriveDeviceKey(exampleGroupKey, id)
	if err != nil {
		t.Fatal(err)
	}
	out := s.mustUsher(t, "device", "register", "--registration-id", id, "--key", key)
	if !strings.Contains(out, `"status": "assigned"`) {
		t.Fatalf("device register %s:\n%s", id, out)
	}
	twin := mustDecode[struct {
		Tags         map[string]any
		Capabilities struct{ IoTEdge bool }
		Properties   struct{ Desired map[string]any }
	}](t, s.mustUsher(t, "hub", "twin", "show", "--device-id", id))
	if twin.Tags["environment"] != "test" || !twin.Capabilities.IoTEdge || twin.Properties.Desired["telemetryInterval"] != 30.0 {
		t.Errorf("twin of %s = %+v, want the group's initial twin and iotEdge", id, twin)
	}
	agent := s.mustUsher(t, "hub", "twin", "show", "--device-id", id, "--module-id", "$edgeAgent")
	if !strings.Contains(agent, "azureiotedge-simulated-temperature-sensor") {
		t.Errorf("$edgeAgent of %s lacks the seeded deployment:\n%s", id, agent)
	}
	hubAgent := s.mustUsher(t, "hub", "twin", "show", "--device-id", id, "--module-id", "$edgeHub")
	if !strings.Contains(hubAgent, "FROM /messages/* INTO $upstream") {
		t.Errorf("$edgeHub of %s lacks the seeded routes:\n%s", id, hubAgent)
	}
}

// seededState is every etag and key the example file declares, and the
// twin etags of a registered device, as the CLI shows them.
func seededState(t *testing.T, s *testServer, device string) map[string]string {
	t.Helper()
	etag := func(args ...string) string {
		return mustDecode[struct {
			ETag string `json:"etag"`
		}](t, s.mustUsher(t, args...)).ETag
	}
	st := map[string]string{
		"enrollment ci-device-001":      etag("enrollment", "show", "--enrollment-id", "ci-device-001"),
		"enrollment ci-device-disabled": etag("enrollment", "show", "--enrollment-id", "ci-device-disabled"),
		"group ci-edge-devices":         etag("enrollment-group", "show", "--group-id", "ci-edge-devices"),
		"deployment":                    etag("hub", "deployment", "show", "--deployment-id", exampleDeployment),
		"policy ci-pipeline":            s.mustUsher(t, "policy", "show", "ci-pipeline"),
		"hub policy ci-service":         s.mustUsher(t, "policy", "show", "--hub", "ci-service"),
		"disabled keys":                 s.mustUsher(t, "enrollment", "show", "--enrollment-id", "ci-device-disabled", "--show-keys"),
	}
	if device != "" {
		st["twin"] = etag("hub", "twin", "show", "--device-id", device)
		st["$edgeAgent"] = etag("hub", "twin", "show", "--device-id", device, "--module-id", "$edgeAgent")
	}
	for k, v := range st {
		if v == "" {
			t.Fatalf("%s: no etag", k)
		}
	}
	return st
}

// serveFails runs `usher serve` expecting it to fail before serving, and
// returns its error output.
func serveFails(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return serveFailsWith(t, noEnv, dir, args...)
}

func serveFailsWith(t *testing.T, getenv func(string) string, dir string, args ...string) string {
	t.Helper()
	var out, errOut strings.Builder
	args = append([]string{"serve", "--data-dir", dir, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := run(ctx, args, getenv, strings.NewReader(""), &out, &errOut); err == nil {
		t.Fatalf("usher serve %s succeeded; want it to fail", strings.Join(args, " "))
	}
	if out.Len() != 0 {
		t.Errorf("usher serve printed a banner though it failed:\n%s", out.String())
	}
	return errOut.String()
}

// TestSeedServe is the emulator story: start with the example seed, a
// device of the seeded group registers with a key derived offline and
// gets its twin and deployment; starting again with the same file changes
// nothing; a changed file updates; bad files stop the start and write
// nothing.
func TestSeedServe(t *testing.T) {
	dir := t.TempDir()
	seedDir := t.TempDir()
	path := writeSeed(t, seedDir)
	var first map[string]string

	t.Run("ok/first start seeds; a device registers with an offline-derived key", func(t *testing.T) {
		s := startServerIn(t, dir, "--seed", path, "--hub-hostname", "hub.usher.test")
		registerEdgeDevice(t, s, "edge-007")

		// The fixed policy key works over the service API.
		login := sas.ConnectionString{HostName: s.Info.HostName, SharedAccessKeyName: "ci-pipeline", SharedAccessKey: examplePolicyKey}.String()
		list := s.mustUsher(t, "enrollment", "list", "--login", login, "--address", s.Info.HTTPSAddr, "--ca-file", s.Info.CAFile)
		if !strings.Contains(list, "ci-device-001") {
			t.Errorf("enrollment list with the seeded policy:\n%s", list)
		}
		// The individual enrollment's fixed key registers its device.
		s.mustUsher(t, "device", "register", "--registration-id", "ci-device-001", "--key", exampleDeviceKey)
		if _, errOut, err := s.usher(t, "device", "register", "--registration-id", "ci-device-disabled", "--key", exampleDeviceKey); err == nil {
			t.Errorf("the disabled enrollment registered; stderr %s", errOut)
		}
		first = seededState(t, s, "edge-007")
		if !strings.Contains(s.Stderr.String(), "seed file applied") || !strings.Contains(s.Stderr.String(), "created=6") {
			t.Errorf("the log does not say the seed was applied with 6 records created:\n%s", s.Stderr.String())
		}
	})
	if first == nil {
		t.FailNow()
	}

	t.Run("ok/restart with the same seed changes nothing", func(t *testing.T) {
		s := startServerIn(t, dir, "--seed", path, "--hub-hostname", "hub.usher.test")
		if diff := cmp.Diff(first, seededState(t, s, "edge-007")); diff != "" {
			t.Errorf("state after a restart with the same seed (-first +restart):\n%s", diff)
		}
		if !strings.Contains(s.Stderr.String(), "created=0 updated=0 unchanged=6") {
			t.Errorf("the log does not say all 6 records were unchanged:\n%s", s.Stderr.String())
		}
		audit := s.mustUsher(t, "audit", "--json")
		if n := strings.Count(audit, `"seed"`); n != 6 {
			t.Errorf("audit log has %d entries from the seed file, want 6 (the first start's creations, the deployment's included; the restart adds none):\n%s", n, audit)
		}
	})

	t.Run("ok/a changed seed updates what changed", func(t *testing.T) {
		changed := writeSeed(t, seedDir, "telemetryInterval: 30", "telemetryInterval: 45", "priority: 10", "priority: 11")
		s := startServerIn(t, dir, "--seed", changed, "--hub-hostname", "hub.usher.test")
		now := seededState(t, s, "edge-007")
		for _, k := range []string{"group ci-edge-devices", "deployment"} {
			if now[k] == first[k] {
				t.Errorf("%s: etag %s did not change", k, now[k])
			}
		}
		for _, k := range []string{"enrollment ci-device-001", "enrollment ci-device-disabled", "policy ci-pipeline", "disabled keys"} {
			if now[k] != first[k] {
				t.Errorf("%s changed though the file did not change it: %s → %s", k, first[k], now[k])
			}
		}
		g := s.mustUsher(t, "enrollment-group", "show", "--group-id", "ci-edge-devices")
		if !strings.Contains(g, `"telemetryInterval": 45`) {
			t.Errorf("group after the change:\n%s", g)
		}
		if d := s.mustUsher(t, "hub", "deployment", "show", "--deployment-id", exampleDeployment); !strings.Contains(d, `"priority": 11`) {
			t.Errorf("deployment after the change:\n%s", d)
		}
		first = seededState(t, s, "edge-007")
	})

	// Each class of bad input stops the start before anything is opened
	// or written: the store keeps the state of the last good start.
	const group = "  enrollmentGroups:\n    - enrollmentGroupId: ci-edge-devices\n"
	bad := []struct {
		name    string
		replace []string
		want    string
	}{
		{"unknown key", []string{"      deviceId: ci-device-001", "      enrolmentId: ci-device-001"}, `line 56, column 7: unknown field "enrolmentId" in enrollment`},
		{"wrong type", []string{"iotEdge: true", "iotEdge: 1"}, `line 43, column 18: capabilities.iotEdge must be true or false, not the number 1`},
		{"invalid ID", []string{"registrationId: ci-device-001", "registrationId: ci device 001"}, `line 55, column 23: registrationId "ci device 001" contains " "`},
		{"key not base64", []string{"primaryKey: LOT55z5GZ", "primaryKey: LOT55!z5GZ"}, `line 60, column 23: attestation.symmetricKey.primaryKey: `},
		{"duplicate IDs", []string{"registrationId: ci-device-disabled", "registrationId: CI-device-001"}, `enrollment "ci-device-001" is declared twice (first at line 55)`},
		{"bad target condition", []string{"targetCondition: tags.environment='test'", "targetCondition: tags.environment=="}, `configuration "ci-edge-baseline": targetCondition is not valid`},
		{"bad version", []string{"version: 1 ", "version: 7 "}, `line 18, column 10: version 7 is not supported`},
		{"bad YAML", []string{group, group + "  - [\n"}, `seed file ` + filepath.Join(seedDir, "seed.yaml") + `: `},
	}
	for _, tt := range bad {
		t.Run("error/"+tt.name, func(t *testing.T) {
			path := writeSeed(t, seedDir, tt.replace...)
			errOut := serveFails(t, dir, "--seed", path)
			if !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "seed file "+path) {
				t.Errorf("stderr:\n%s\nwant it to name the file and contain %q", errOut, tt.want)
			}
			fresh := filepath.Join(t.TempDir(), "never-created")
			serveFails(t, fresh, "--seed", path)
			if _, err := os.Stat(fresh); !os.IsNotExist(err) {
				t.Errorf("a failed start created the data directory %s (stat: %v)", fresh, err)
			}
		})
	}
	t.Run("ok/the store is untouched by the failed starts", func(t *testing.T) {
		s := startServerIn(t, dir, "--hub-hostname", "hub.usher.test")
		if diff := cmp.Diff(first, seededState(t, s, "edge-007")); diff != "" {
			t.Errorf("state after failed starts (-before +after):\n%s", diff)
		}
	})
}

// TestSeedServeOnPostgres runs the example seed on PostgreSQL: a device of
// the seeded group registers with an offline-derived key and gets its
// deployment, and a second node started with the same file changes
// nothing.
func TestSeedServeOnPostgres(t *testing.T) {
	url := pgtest.SchemaURL(t)
	path := writeSeed(t, t.TempDir())
	var first map[string]string
	t.Run("first node", func(t *testing.T) {
		s := startServerOn(t, url, "--seed", path, "--hub-hostname", "hub.usher.test")
		registerEdgeDevice(t, s, "pg-edge-1")
		first = seededState(t, s, "pg-edge-1")
	})
	if first == nil {
		t.FailNow()
	}
	t.Run("second start", func(t *testing.T) {
		s := startServerOn(t, url, "--seed", path, "--hub-hostname", "hub.usher.test")
		if diff := cmp.Diff(first, seededState(t, s, "pg-edge-1")); diff != "" {
			t.Errorf("state after a second start (-first +second):\n%s", diff)
		}
	})
}

// TestSeedSetting: the seed file can come from the environment or the
// config file like every other setting of serve.
func TestSeedSetting(t *testing.T) {
	dir := t.TempDir()
	bad := writeSeed(t, dir, "version: 1 ", "versoin: 1 ")
	const want = `line 18, column 1: unknown field "versoin" in the seed file (did you mean "version"?)`
	env := func(k string) string {
		if k == "USHER_SEED" {
			return bad
		}
		return ""
	}
	if errOut := serveFailsWith(t, env, filepath.Join(dir, "data")); !strings.Contains(errOut, want) {
		t.Errorf("USHER_SEED: stderr %q, want %q", errOut, want)
	}
	conf := filepath.Join(dir, "usher.toml")
	if err := os.WriteFile(conf, []byte("seed = '"+bad+"'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if errOut := serveFails(t, filepath.Join(dir, "data"), "--config", conf); !strings.Contains(errOut, want) {
		t.Errorf("seed in the config file: stderr %q, want %q", errOut, want)
	}
	if errOut := serveFails(t, filepath.Join(dir, "data"), "--seed", filepath.Join(dir, "absent.yaml")); !strings.Contains(errOut, "seed file: open") {
		t.Errorf("missing seed file: stderr %q", errOut)
	}
}

func TestSeedCheck(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"seed", "check", exampleSeed, "../../examples/seed.json"}, noEnv, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("seed check of the examples: %v\n%s", err, errOut.String())
	}
	want := ": ok: 1 DPS policies, 1 hub policies, 2 enrollments, 1 enrollment groups, 1 configurations\n"
	if got := out.String(); strings.Count(got, want) != 2 {
		t.Errorf("seed check printed:\n%s\nwant twice %q", got, want)
	}

	bad := writeSeed(t, t.TempDir(), "keyName: ci-service", "keyName: ci-service\n      rigths: RegistryRead")
	out.Reset()
	errOut.Reset()
	if err := run(context.Background(), []string{"seed", "check", bad}, noEnv, strings.NewReader(""), &out, &errOut); err == nil {
		t.Fatalf("seed check of a bad file succeeded:\n%s", out.String())
	}
	if want := `line 84, column 7: unknown field "rigths" in hub policy (did you mean "rights"?)`; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr:\n%s\nwant %q", errOut.String(), want)
	}
}
