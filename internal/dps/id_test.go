package dps

import (
	"strings"
	"testing"

	"github.com/usher-iot/usher/internal/fault"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"ok/simple", "dev-1", true},
		{"ok/mixed case", "Dev-One", true},
		{"ok/colon and dot inside", "cap-c:dev.07", true},
		{"ok/underscore inside", "a_b", true},
		{"ok/starts and ends with dash", "-a-", true},
		{"ok/one char", "a", true},
		{"ok/128 chars", strings.Repeat("a", 128), true},
		{"invalid/empty", "", false},
		{"invalid/129 chars", strings.Repeat("a", 129), false},
		{"invalid/space", "a b", false},
		{"invalid/slash", "a/b", false},
		{"invalid/non-ascii", "caf\u00e9", false},
		{"invalid/ends with dot", "a.", false},
		{"invalid/starts with colon", ":a", false},
		{"invalid/ends with underscore", "a_", false},
		{"invalid/percent", "a%2fb", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateID("registrationId", tc.id)
			if tc.ok && err != nil {
				t.Fatalf("ValidateID(%q) = %v, want ok", tc.id, err)
			}
			if !tc.ok && !fault.Is(err, fault.Invalid) {
				t.Fatalf("ValidateID(%q) = %v, want an Invalid fault", tc.id, err)
			}
		})
	}
}

func TestSettingsValidateNormalises(t *testing.T) {
	s := Settings{Attestation: Attestation{Type: "SYMMETRICKEY"}, ProvisioningStatus: "Disabled", AllocationPolicy: "GEOLATENCY"}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Attestation.Type != SymmetricKey || s.ProvisioningStatus != Disabled || s.AllocationPolicy != "geoLatency" {
		t.Errorf("not normalised: %+v", s)
	}
	if s.ReprovisionPolicy == nil || !s.ReprovisionPolicy.UpdateHubAssignment || !s.ReprovisionPolicy.MigrateDeviceData {
		t.Errorf("reprovisionPolicy default = %+v, want update and migrate", s.ReprovisionPolicy)
	}
}

func TestNormalizeETag(t *testing.T) {
	for in, want := range map[string]string{`"abc"`: "abc", "abc": "abc", `W/"abc"`: "abc", " * ": "*", `"*"`: "*", "": ""} {
		if got := normalizeETag(in); got != want {
			t.Errorf("normalizeETag(%q) = %q, want %q", in, got, want)
		}
	}
}
