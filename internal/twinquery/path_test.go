package twinquery

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPathString(t *testing.T) {
	tests := []struct {
		name string
		path Path
		want string
	}{
		{"ok/plain", Path{"tags", "site"}, "tags.site"},
		{"ok/dollar", Path{"properties", "desired", "$version"}, "properties.desired.$version"},
		{"ok/dash needs brackets", Path{"configurations", "base-deploy", "status"}, "configurations.[[base-deploy]].status"},
		{"ok/keyword alone needs brackets", Path{"Select"}, "[[Select]]"},
		{"ok/keyword first of many", Path{"and", "x"}, "and.x"},
		{"ok/leading digit first", Path{"1a"}, "[[1a]]"},
		{"ok/leading digit later", Path{"a", "1"}, "a.1"},
		{"ok/space", Path{"a b"}, "[[a b]]"},
		{"ok/empty", Path{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.path.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPathLookup(t *testing.T) {
	doc := decode(t, twinJSON, true)
	tests := []struct {
		name    string
		path    Path
		want    any
		defined bool
	}{
		{"ok/nested", Path{"configurations", "base-deploy", "status"}, "Applied", true},
		{"ok/null is defined", Path{"tags", "nil"}, nil, true},
		{"ok/missing", Path{"tags", "nope"}, nil, false},
		{"ok/through string", Path{"deviceId", "x"}, nil, false},
		{"ok/through array", Path{"tags", "list", "0"}, nil, false},
		{"ok/number", Path{"properties", "desired", "$version"}, json.Number("7"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.path.Lookup(doc)
			if ok != tc.defined || !cmp.Equal(got, tc.want) {
				t.Errorf("Lookup = %v, %v; want %v, %v", got, ok, tc.want, tc.defined)
			}
		})
	}
	if got, ok := (Path{}).Lookup(doc); !ok || !cmp.Equal(got, any(doc)) {
		t.Error("empty path should yield the document")
	}
}

func TestStringEqualities(t *testing.T) {
	tests := []struct {
		where string
		want  []string // path=value
	}{
		{"provisioningStatus = 'disabled'", []string{"provisioningStatus=disabled"}},
		{"'disabled' = provisioningStatus", []string{"provisioningStatus=disabled"}},
		{"a = 'x' AND (b = 'y' AND c.d = 'z')", []string{"a=x", "b=y", "c.d=z"}},
		{"a = 'x' AND b = 'y' OR c = 'z'", nil}, // an OR at the root
		{"a = 'x' OR b = 'y'", nil},
		{"NOT (a = 'x')", nil},
		{"a != 'x' AND b = 1 AND c = true", nil},
		{"a = b", nil},
		{"a = 'x' AND (b = 'y' OR c = 'z')", []string{"a=x"}},
		{"tags.[[odd name]] = 'v'", []string{"tags.odd name=v"}},
	}
	for _, tc := range tests {
		t.Run(tc.where, func(t *testing.T) {
			c, err := ParseCondition(tc.where)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range c.StringEqualities() {
				got = append(got, strings.Join(e.Path, ".")+"="+e.Value)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
