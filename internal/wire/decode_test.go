package wire_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/wire"
)

func nest(open, close string, n int) string {
	return strings.Repeat(open, n) + "1" + strings.Repeat(close, n)
}

func TestDecodeLimits(t *testing.T) {
	tests := []struct {
		name string
		body string
		kind fault.Kind // Internal: decodes
		msg  string     // substring of the message of a refusal
	}{
		{"ok/64 levels", nest(`{"a":`, "}", 64), fault.Internal, ""},
		{"ok/64 levels of arrays", nest("[", "]", 64), fault.Internal, ""},
		{"ok/brackets and escaped quotes inside strings", `{"a":"` + strings.Repeat(`{[\"`, 100) + `"}`, fault.Internal, ""},
		{"ok/1e400 inside a string", `{"a":"1e400"}`, fault.Internal, ""},
		{"ok/largest float64", `{"a":1.7976931348623157e308}`, fault.Internal, ""},
		{"ok/underflow is zero", `{"a":1e-400}`, fault.Internal, ""},
		{"ok/2^64+1 is a number", `{"a":18446744073709551617}`, fault.Internal, ""},
		{"ok/valid multibyte utf-8", `{"a":"g` + "\u043e" + `\u00e9"}`, fault.Internal, ""},
		{"malformed/65 levels", nest(`{"a":`, "}", 65), fault.Malformed, "deeper than 64 levels"},
		{"malformed/65 levels mixed", `{"a":` + nest("[", "]", 64) + `}`, fault.Malformed, "deeper than 64 levels"},
		{"malformed/10000 levels", nest("[", "]", 10000), fault.Malformed, "deeper than 64 levels"},
		{"malformed/1e400", `{"a":1e400}`, fault.Malformed, "1e400"},
		{"malformed/-1E+400 in an array", `{"a":[1,-1E+400]}`, fault.Malformed, "out of range"},
		{"malformed/400 digits", `{"a":` + strings.Repeat("9", 400) + `}`, fault.Malformed, "out of range"},
		{"malformed/invalid utf-8 in a value", "{\"a\":\"\xff\"}", fault.Malformed, "UTF-8"},
		{"malformed/invalid utf-8 in a key", "{\"\xc3\x28\":1}", fault.Malformed, "UTF-8"},
		{"malformed/utf-16 surrogate encoded as utf-8", "{\"a\":\"\xed\xa0\x80\"}", fault.Malformed, "UTF-8"},
		{"malformed/unterminated string is left to the decoder", `{"a":"\`, fault.Malformed, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			err := wire.Decode([]byte(tt.body), &v)
			if tt.kind == fault.Internal {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if got := fault.KindOf(err); got != tt.kind {
				t.Fatalf("kind %v (%v), want %v", got, err, tt.kind)
			}
			if !strings.Contains(fault.MessageOf(err), tt.msg) {
				t.Errorf("message %q does not mention %q", fault.MessageOf(err), tt.msg)
			}
		})
	}
}

// TestDecodeDuplicateKeysLastWins records the decision for duplicate keys:
// the last value wins, in struct fields (matched case-insensitively, as
// Json.NET does) and in free-form objects alike.
func TestDecodeDuplicateKeysLastWins(t *testing.T) {
	var e wire.IndividualEnrollment
	if err := wire.Decode([]byte(`{"registrationId":"first","RegistrationID":"second","attestation":{"type":"symmetricKey"}}`), &e); err != nil {
		t.Fatal(err)
	}
	if e.RegistrationID != "second" {
		t.Errorf("registrationId = %q, want the last one", e.RegistrationID)
	}
	var m map[string]any
	if err := wire.Decode([]byte(`{"a":{"x":1},"a":{"y":2}}`), &m); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"a": map[string]any{"y": json.Number("2")}}, m); diff != "" {
		t.Errorf("free-form object (-want +got):\n%s", diff)
	}
}
