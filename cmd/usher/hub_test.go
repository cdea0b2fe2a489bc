package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// provisionDevice enrolls and registers a device and returns its key.
func provisionDevice(t *testing.T, s *testServer, id string, extra ...string) string {
	t.Helper()
	var e struct {
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	args := append([]string{"enrollment", "create", "--enrollment-id", id, "--show-keys"}, extra...)
	if err := json.Unmarshal([]byte(s.mustUsher(t, args...)), &e); err != nil {
		t.Fatal(err)
	}
	s.mustUsher(t, "device", "register", "--registration-id", id, "--key", e.Attestation.SymmetricKey.PrimaryKey)
	return e.Attestation.SymmetricKey.PrimaryKey
}

func TestHubDeviceAndTwinCommands(t *testing.T) {
	s := startServer(t, "--hub-hostname", "hub.usher.test")
	key := provisionDevice(t, s, "cli-dev", "--initial-twin-tags", `{"environment":"test"}`)
	var d struct {
		DeviceID       string
		Authentication struct {
			SymmetricKey struct{ PrimaryKey string }
		}
	}
	if err := json.Unmarshal([]byte(s.mustUsher(t, "hub", "device", "show", "--device-id", "cli-dev")), &d); err != nil {
		t.Fatal(err)
	}
	if d.DeviceID != "cli-dev" || d.Authentication.SymmetricKey.PrimaryKey != key {
		t.Errorf("hub device show: %+v", d)
	}
	twin := s.mustUsher(t, "hub", "twin", "show", "--device-id", "cli-dev")
	if !strings.Contains(twin, `"environment": "test"`) {
		t.Errorf("twin show lacks the initial tags:\n%s", twin)
	}
	_, errOut, err := s.usher(t, "hub", "device", "show", "--device-id", "nobody")
	if err == nil || !strings.Contains(errOut, "not found") {
		t.Errorf("unknown device: err %v, stderr %q", err, errOut)
	}
	if _, errOut, err := s.usher(t, "hub", "twin", "update", "--device-id", "cli-dev", "--tags", "[1]"); err == nil || !strings.Contains(errOut, "JSON object") {
		t.Errorf("bad --tags: err %v, stderr %q", err, errOut)
	}
}
