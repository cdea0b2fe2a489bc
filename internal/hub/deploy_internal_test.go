package hub

import (
	"encoding/json"
	"testing"
)

func TestMergeDiffRoundTrips(t *testing.T) {
	tests := []struct {
		name     string
		old, new map[string]any
	}{
		{"ok/removed and added keys", map[string]any{"a": 1, "b": 2}, map[string]any{"b": 2, "c": 3}},
		{"ok/nested change", map[string]any{"m": map[string]any{"x": 1, "y": map[string]any{"z": true}}}, map[string]any{"m": map[string]any{"x": 2, "y": map[string]any{}}}},
		{"ok/object replaces scalar", map[string]any{"a": "s"}, map[string]any{"a": map[string]any{}}},
		{"ok/scalar replaces object", map[string]any{"a": map[string]any{"b": 1}}, map[string]any{"a": []any{1, "x"}}},
		{"ok/numbers of other types are equal", map[string]any{"n": json.Number("21")}, map[string]any{"n": 21}},
		{"ok/from nothing", nil, map[string]any{"a": map[string]any{"b": 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			patch := mergeDiff(tc.old, tc.new)
			if got := MergePatch(tc.old, patch); !sameJSON(got, tc.new) {
				t.Errorf("old + diff = %v, want %v (diff %v)", got, tc.new, patch)
			}
			if sameJSON(tc.old, tc.new) != (len(patch) == 0) {
				t.Errorf("diff %v of equal documents must be empty, of different ones not", patch)
			}
		})
	}
}

func TestOwnedLeaves(t *testing.T) {
	cfg := func(id string, content map[string]any) *Configuration {
		return &Configuration{ID: id, Content: ConfigurationContent{DeviceContent: content}}
	}
	low := cfg("low", map[string]any{"properties.desired.s": map[string]any{"a": 1, "b": 2}, "properties.desired.t": 5})
	tests := []struct {
		name   string
		high   *Configuration
		owners map[string]bool // which configurations still own a value
	}{
		{"ok/disjoint paths both apply", cfg("high", map[string]any{"properties.desired.u": 1}), map[string]bool{"low": true, "high": true}},
		{"ok/partial override keeps both", cfg("high", map[string]any{"properties.desired.s.a": 9}), map[string]bool{"low": true, "high": true}},
		{"ok/scalar over the whole tree shadows", cfg("high", map[string]any{"properties.desired.s": "x", "properties.desired.t": 6}), map[string]bool{"high": true}},
		{"ok/object under a scalar replaces it", cfg("high", map[string]any{"properties.desired.t.x": 1, "properties.desired.s": map[string]any{"a": 0, "b": 0}}), map[string]bool{"high": true}},
		{"ok/empty object merges", cfg("high", map[string]any{"properties.desired.s": map[string]any{}}), map[string]bool{"low": true, "high": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			owned := ownedLeaves([]*Configuration{low, tc.high})
			for _, id := range []string{"low", "high"} {
				if owns(owned, id) != tc.owners[id] {
					t.Errorf("%s owns a value: %v, want %v (owned %+v)", id, owns(owned, id), tc.owners[id], owned)
				}
			}
		})
	}
}
