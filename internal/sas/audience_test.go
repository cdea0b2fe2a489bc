package sas

import "testing"

func TestAudienceMatch(t *testing.T) {
	tests := []struct {
		name           string
		resource, want string
		match          bool
	}{
		{"match/exact", "0ne00000A0A/registrations/dev1", "0ne00000A0A/registrations/dev1", true},
		{"match/aziot lowercased", "0ne00000a0a/registrations/dev1", "0ne00000A0A/registrations/dev1", true},
		{"match/uppercased", "HUB.EXAMPLE/DEVICES/D1", "hub.example/devices/d1", true},
		{"match/trailing slash on resource", "hub.example/", "hub.example/devices/d1", true},
		{"match/trailing slash on want", "hub.example/devices/d1", "hub.example/devices/d1/", true},
		{"match/host covers device", "hub.example", "hub.example/devices/d1", true},
		{"match/devices covers device", "hub.example/devices", "hub.example/devices/d1", true},
		{"match/device covers its module", "hub.example/devices/d1", "hub.example/devices/d1/modules/m1", true},
		{"match/host with port", "localhost:8884/devices/dev", "localhost:8884/devices/dev", true},
		{"nomatch/partial segment", "hos", "host/devices/d1", false},
		{"nomatch/partial device id", "hub.example/devices/d", "hub.example/devices/d1", false},
		{"nomatch/other registration", "0ne00000A0A/registrations/dev1", "0ne00000A0A/registrations/dev2", false},
		{"nomatch/longer than want", "hub.example/devices/d1", "hub.example/devices", false},
		{"nomatch/other scope", "0ne00000A0B/registrations/dev1", "0ne00000A0A/registrations/dev1", false},
		{"nomatch/still encoded", "0ne00000A0A%2Fregistrations%2Fdev1", "0ne00000A0A/registrations/dev1", false},
		{"nomatch/empty resource", "", "hub.example", false},
		{"nomatch/slash resource", "/", "/devices", false},
		{"nomatch/empty want", "hub.example", "", false},
		{"nomatch/non-ASCII case folding", "\u212aelvin", "kelvin", false},
		{"nomatch/invalid UTF-8", "\xff", "\xfe/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AudienceMatch(tt.resource, tt.want); got != tt.match {
				t.Errorf("AudienceMatch(%q, %q) = %v, want %v", tt.resource, tt.want, got, tt.match)
			}
		})
	}
}
