package console

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
)

func TestParseInitialTwin(t *testing.T) {
	tests := []struct {
		name string
		text string
		want *dps.InitialTwin
		msg  string // part of the error message; "" for success
	}{
		{"ok/empty means none", "  \n", nil, ""},
		{"ok/the prefilled default", defaultTwin, &dps.InitialTwin{Tags: map[string]any{}, Desired: map[string]any{}}, ""},
		{"ok/tags only", `{"tags":{"environment":"test"}}`, &dps.InitialTwin{Tags: map[string]any{"environment": "test"}, Desired: map[string]any{}}, ""},
		{"ok/numbers kept exactly", `{"properties":{"desired":{"n":12345678901234567890}}}`,
			&dps.InitialTwin{Tags: map[string]any{}, Desired: map[string]any{"n": json.Number("12345678901234567890")}}, ""},
		{"invalid/syntax with position", "{\n  \"tags\": [}\n}", nil, "line 2, column 12"},
		{"invalid/ends early", `{"tags":{}`, nil, "ends before its last brace"},
		{"invalid/not an object", `"tags"`, nil, "must be a JSON object"},
		{"invalid/null", `null`, nil, "must be a JSON object"},
		{"invalid/extra member", `{"tags":{},"etag":"x"}`, nil, `remove "etag"`},
		{"invalid/reported", `{"properties":{"desired":{},"reported":{}}}`, nil, `remove "reported"`},
		{"invalid/desired not an object", `{"properties":{"desired":[]}}`, nil, `"properties.desired" must be a JSON object`},
		{"invalid/properties not an object", `{"properties":1}`, nil, `"properties" must be a JSON object`},
		{"invalid/tags null", `{"tags":null}`, nil, `"tags" must be a JSON object`},
		{"invalid/two values", `{}{}`, nil, "more text after"},
		{"invalid/key with a space", `{"tags":{"a b":1}}`, nil, "invalid key"},
		{"invalid/tags too large", `{"tags":{"big":"` + strings.Repeat("x", 9000) + `"}}`, nil, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInitialTwin(tt.text)
			if tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("twin (-want +got):\n%s", diff)
				}
				return
			}
			if !fault.Is(err, fault.Invalid) {
				t.Fatalf("err = %v, want fault.Invalid", err)
			}
			if msg := fault.MessageOf(err); !strings.Contains(msg, tt.msg) || !strings.HasSuffix(msg, ".") {
				t.Errorf("message %q, want a sentence containing %q", msg, tt.msg)
			}
		})
	}
}

func TestSentence(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "",
		"device ID must be 1 to 128":  "Device ID must be 1 to 128.",
		"The registration ID is bad.": "The registration ID is bad.",
		"état":                        "État.",
	} {
		if got := sentence(in); got != want {
			t.Errorf("sentence(%q) = %q, want %q", in, got, want)
		}
	}
}
