package sas

import "strings"

// AudienceMatch reports whether a token whose decoded resource (see
// [Token.Resource]) is resource grants access to want, the resource the
// request names, for example "0ne00000A0A/registrations/dev1" for DPS or
// "myhub.example/devices/d1" for IoT Hub.
//
// One trailing '/' is dropped from each side, then the two are compared with
// ASCII letters folded to one case (aziot-identityd lowercases the audience;
// other bytes must match exactly). resource also matches when it is a prefix
// of want that ends at a path-segment boundary: "host" and "host/devices"
// cover "host/devices/d1", but "hos" and "host/dev" do not. This is IoT
// Hub's scope rule. For DPS it lets a bare ID scope cover its registrations,
// which grants nothing extra: the key checked is still the registration's own.
// An empty resource or want never matches.
//
// Both arguments are compared as given: no percent-decoding is done here, so
// a caller that expects ids encoded a second time (IoT Edge module tokens)
// builds those variants of want itself.
func AudienceMatch(resource, want string) bool {
	r := strings.TrimSuffix(resource, "/")
	w := strings.TrimSuffix(want, "/")
	if r == "" || w == "" || len(r) > len(w) {
		return false
	}
	if !asciiEqualFold(r, w[:len(r)]) {
		return false
	}
	return len(r) == len(w) || w[len(r)] == '/'
}

// asciiEqualFold reports whether a and b are equal with ASCII letters folded
// to lower case; other bytes must be identical.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// lower maps an ASCII upper-case letter to lower case.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
