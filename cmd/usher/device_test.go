package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// registered is what `usher device register` prints.
type registered struct {
	Status         string          `json:"status"`
	AssignedHub    string          `json:"assignedHub"`
	DeviceID       string          `json:"deviceId"`
	RegistrationID string          `json:"registrationId"`
	Substatus      string          `json:"substatus"`
	Payload        json.RawMessage `json:"payload"`
}

// createdKey creates a record with a CLI command and returns its primary key.
func createdKey(t *testing.T, s *testServer, args ...string) string {
	t.Helper()
	p, _ := mustDecode[record](t, s.mustUsher(t, append(args, "--show-keys")...)).keys(t)
	if p == "" {
		t.Fatalf("usher %s printed no primary key", strings.Join(args, " "))
	}
	return p
}

func TestDeviceRegister(t *testing.T) {
	const hub = "hub.usher.test"
	s := startServer(t, "--hub-hostname", hub)
	devKey := createdKey(t, s, "enrollment", "create", "--enrollment-id", "dev-1")
	thermoKey := createdKey(t, s, "enrollment", "create", "--enrollment-id", "dev-2", "--device-id", "thermostat-2")
	payloadKey := createdKey(t, s, "enrollment", "create", "--enrollment-id", "dev-payload")
	offKey := createdKey(t, s, "enrollment", "create", "--enrollment-id", "dev-off", "--provisioning-status", "disabled")
	groupKey := createdKey(t, s, "enrollment-group", "create", "--group-id", "sensors")
	otherKey := createdKey(t, s, "enrollment", "create", "--enrollment-id", "unrelated")
	payloadFile := filepath.Join(t.TempDir(), "payload.json")
	if err := os.WriteFile(payloadFile, []byte("{\n  \"modelId\": \"dtmi:example;1\",\n  \"extra\": 42\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	assigned := func(regID, deviceID string) registered {
		return registered{Status: "assigned", AssignedHub: hub, DeviceID: deviceID, RegistrationID: regID, Substatus: "initialAssignment"}
	}
	withPayload := func(r registered, p string) registered {
		r.Payload = json.RawMessage(p)
		return r
	}

	tests := []struct {
		name    string
		args    []string
		want    *registered // nil: nothing to check on stdout
		wantErr string      // "" for success, else text stderr must contain
	}{
		{"ok/individual enrollment over https", []string{"--registration-id", "dev-1", "--key", devKey}, ptr(assigned("dev-1", "dev-1")), ""},
		{"ok/enrollment device ID", []string{"--rid", "dev-2", "--key", thermoKey}, ptr(assigned("dev-2", "thermostat-2")), ""},
		{"ok/group device with --group-key", []string{"--registration-id", "member-7", "--group-key", groupKey}, ptr(assigned("member-7", "member-7")), ""},
		{"ok/payload echoed", []string{"--registration-id", "dev-payload", "--key", payloadKey, "--payload", `{"modelId":"dtmi:example;1","extra":42}`},
			ptr(withPayload(assigned("dev-payload", "dev-payload"), `{"modelId":"dtmi:example;1","extra":42}`)), ""},
		{"ok/payload from a file", []string{"--registration-id", "member-8", "--group-key", groupKey, "--payload", "@" + payloadFile},
			ptr(withPayload(assigned("member-8", "member-8"), `{"modelId":"dtmi:example;1","extra":42}`)), ""},
		{"401/wrong key", []string{"--registration-id", "dev-1", "--key", otherKey}, nil, "status 401: the device could not be authenticated"},
		{"401/group key used as the device key", []string{"--registration-id", "member-9", "--key", groupKey}, nil, "status 401"},
		{"disabled/enrollment disabled", []string{"--registration-id", "dev-off", "--key", offKey},
			&registered{Status: "disabled", RegistrationID: "dev-off"}, "registration dev-off is disabled"},
		{"invalid/both keys", []string{"--registration-id", "dev-1", "--key", devKey, "--group-key", groupKey}, nil, "not both"},
		{"invalid/no key", []string{"--registration-id", "dev-1"}, nil, "give --key"},
		{"invalid/no registration ID", []string{"--key", devKey}, nil, `"registration-id" not set`},
		{"invalid/transport", []string{"--registration-id", "dev-1", "--key", devKey, "--transport", "amqp"}, nil, "must be one of https, mqtt"},
		{"invalid/payload not an object", []string{"--registration-id", "dev-1", "--key", devKey, "--payload", "[1]"}, nil, "--payload must be a JSON object"},
		{"invalid/payload file missing", []string{"--registration-id", "dev-1", "--key", devKey, "--payload", "@" + filepath.Join(t.TempDir(), "none.json")}, nil, "--payload:"},
	}
	// Each registration waits out one retry-after second, so the cases run
	// in parallel; the group ends when all of them have.
	t.Run("cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				registerCase(t, s, tt.args, tt.want, tt.wantErr)
			})
		}
	})

	t.Run("ok/table output", func(t *testing.T) {
		out := s.mustUsher(t, "device", "register", "--registration-id", "member-10", "--group-key", groupKey, "-o", "table")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "RegistrationId") || !strings.Contains(lines[2], hub) || !strings.Contains(lines[2], "assigned") {
			t.Errorf("table output:\n%s\nwant a header, a rule and one row with the hub", out)
		}
	})

	t.Run("ok/re-registration migrates device data", func(t *testing.T) {
		got := mustDecode[registered](t, s.mustUsher(t, "device", "register", "--registration-id", "member-7", "--group-key", groupKey))
		if got.Status != "assigned" || got.Substatus != "deviceDataMigrated" {
			t.Errorf("got %+v, want assigned with substatus deviceDataMigrated", got)
		}
	})

	t.Run("ok/explicit flags without a data directory", func(t *testing.T) {
		out, errOut, err := usherWith(t, map[string]string{"USHER_DATA_DIR": filepath.Join(t.TempDir(), "none")},
			"device", "register", "--id-scope", s.Info.IDScope, "--registration-id", "dev-1", "--key", devKey,
			"--endpoint", s.Info.HTTPSAddr, "--ca-file", s.Info.CAFile)
		if err != nil {
			t.Fatalf("usher device register: %v\nstderr: %s", err, errOut)
		}
		if got := mustDecode[registered](t, out); got.Status != "assigned" || got.AssignedHub != hub {
			t.Errorf("got %+v, want assigned to %s", got, hub)
		}
	})

	t.Run("invalid/no data directory and no --id-scope", func(t *testing.T) {
		_, errOut, err := usherWith(t, map[string]string{"USHER_DATA_DIR": filepath.Join(t.TempDir(), "none")},
			"device", "register", "--registration-id", "dev-1", "--key", devKey, "--endpoint", s.Info.HTTPSAddr)
		wantFailure(t, errOut, err, "give --id-scope and --endpoint")
	})

	t.Run("error/untrusted server certificate", func(t *testing.T) {
		_, errOut, err := usherWith(t, nil, "device", "register", "--id-scope", s.Info.IDScope, "--registration-id", "dev-1",
			"--key", devKey, "--endpoint", s.Info.HTTPSAddr)
		wantFailure(t, errOut, err, "certificate")
	})

	t.Run("mqtt", func(t *testing.T) {
		if _, port, err := net.SplitHostPort(s.Info.MQTTAddr); err != nil || port == "0" {
			t.Skipf("usher serve recorded no MQTT address (%q): it does not serve MQTT yet", s.Info.MQTTAddr)
		}
		mqttKey := createdKey(t, s, "enrollment", "create", "--enrollment-id", "dev-mqtt")
		t.Run("ok/individual enrollment over mqtt", func(t *testing.T) {
			out, errOut, err := s.usher(t, "device", "register", "--transport", "mqtt", "--registration-id", "dev-mqtt", "--key", mqttKey,
				"--payload", `{"a":1}`)
			if err != nil {
				t.Fatalf("usher device register: %v\nstderr: %s", err, errOut)
			}
			want := withPayload(assigned("dev-mqtt", "dev-mqtt"), `{"a":1}`)
			if diff := cmp.Diff(want, mustDecode[registered](t, out), cmp.Comparer(jsonEqual)); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
		t.Run("ok/group device over mqtt", func(t *testing.T) {
			got := mustDecode[registered](t, s.mustUsher(t, "device", "register", "--transport", "mqtt", "--registration-id", "member-mqtt", "--group-key", groupKey))
			if diff := cmp.Diff(assigned("member-mqtt", "member-mqtt"), got, cmp.Comparer(jsonEqual)); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
		t.Run("refused/wrong key over mqtt is a 401 on the response topic", func(t *testing.T) {
			// docs/decisions/0006-registration.md: as Azure, MQTT accepts the CONNECT and answers 401.
			_, errOut, err := s.usher(t, "device", "register", "--transport", "mqtt", "--registration-id", "dev-mqtt", "--key", otherKey)
			wantFailure(t, errOut, err, "401")
		})
		t.Run("disabled/enrollment disabled over mqtt", func(t *testing.T) {
			_, errOut, err := s.usher(t, "device", "register", "--transport", "mqtt", "--registration-id", "dev-off", "--key", offKey)
			wantFailure(t, errOut, err, "registration dev-off is disabled")
		})
	})
}

// registerCase runs `usher device register args…` and checks its outcome:
// success with progress on stderr, or a failure whose stderr has wantErr;
// and the printed result when want is set.
func registerCase(t *testing.T, s *testServer, args []string, want *registered, wantErr string) {
	t.Helper()
	out, errOut, err := s.usher(t, append([]string{"device", "register"}, args...)...)
	if wantErr == "" {
		if err != nil {
			t.Fatalf("usher device register: %v\nstderr: %s", err, errOut)
		}
		if !strings.Contains(errOut, "assigning…") {
			t.Errorf("stderr %q shows no progress (assigning…)", errOut)
		}
	} else {
		wantFailure(t, errOut, err, wantErr)
	}
	if want == nil {
		return
	}
	got := mustDecode[registered](t, out)
	if diff := cmp.Diff(*want, got, cmp.Comparer(jsonEqual)); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func TestDeviceRegisterHelp(t *testing.T) {
	out, _, err := usherWith(t, nil, "device", "register", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Examples:", "--group-key", "--transport", "--payload", "@payload.json", "--endpoint", "--ca-file"} {
		if !strings.Contains(out, want) {
			t.Errorf("help does not mention %q:\n%s", want, out)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// jsonEqual compares two JSON texts by value ("" and null count as absent).
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if len(a) == 0 {
		a = json.RawMessage("null")
	}
	if len(b) == 0 {
		b = json.RawMessage("null")
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return cmp.Equal(x, y)
}
