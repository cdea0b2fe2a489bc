package dps

import (
	"strings"

	"github.com/usher-iot/usher/internal/fault"
)

// MaxIDLength is the longest registration or enrollment group ID Azure DPS
// accepts (dps-protocol.md §1).
const MaxIDLength = 128

// ValidateID checks a registration ID or enrollment group ID against the
// rules recorded in docs/decisions/0003-registration-ids.md: 1–128 characters
// from [A-Za-z0-9-._:], first and last character alphanumeric or '-'.
// what names the field in the error message.
func ValidateID(what, id string) error {
	if id == "" {
		return fault.New(fault.Invalid, "%s is required", what)
	}
	if len(id) > MaxIDLength {
		return fault.New(fault.Invalid, "%s is %d characters long; the limit is %d", what, len(id), MaxIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !idChar(c) {
			return fault.New(fault.Invalid, "%s %q contains %q at position %d; allowed are letters, digits and - . _ :", what, id, string(rune(c)), i+1)
		}
	}
	if !edgeChar(id[0]) || !edgeChar(id[len(id)-1]) {
		return fault.New(fault.Invalid, "%s %q must start and end with a letter, a digit or '-'", what, id)
	}
	return nil
}

// IDKey is the case-insensitive identity of an ID: two IDs that differ only
// in case name the same enrollment, group or registration.
func IDKey(id string) string { return strings.ToLower(id) }

func idChar(c byte) bool {
	return alnum(c) || c == '-' || c == '.' || c == '_' || c == ':'
}

func edgeChar(c byte) bool { return alnum(c) || c == '-' }

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
