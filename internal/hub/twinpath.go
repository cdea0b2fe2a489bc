package hub

import "encoding/json"

// Helpers over twin documents (decoded JSON objects) that the deployment
// engine builds desired properties with: set, look up and remove a value
// at a path, the merge patch between two documents, and JSON equality.

// setPath sets the value at path in doc and returns doc: objects replace
// (or, with merge, merge into) what is there as JSON merge patches do,
// null removes, other values replace; missing or non-object parents become
// objects. An empty path addresses the whole document. doc is modified and
// must be the caller's own copy; nil is an empty document.
func setPath(doc map[string]any, path []string, v any, merge bool) map[string]any {
	if doc == nil {
		doc = map[string]any{}
	}
	if len(path) == 0 {
		m, _ := v.(map[string]any)
		if merge {
			return MergePatch(doc, m)
		}
		return MergePatch(nil, m)
	}
	parent := doc
	for _, seg := range path[:len(path)-1] {
		child, ok := parent[seg].(map[string]any)
		if !ok {
			if v == nil {
				return doc // nothing to remove
			}
			child = map[string]any{}
			parent[seg] = child
		}
		parent = child
	}
	last := path[len(path)-1]
	switch x := v.(type) {
	case nil:
		delete(parent, last)
	case map[string]any:
		old, _ := parent[last].(map[string]any)
		if !merge {
			old = nil
		}
		parent[last] = MergePatch(old, x)
	default:
		parent[last] = v
	}
	return doc
}

// deletePath removes the value at path and then each parent object the
// removal left empty, down to depth floor.
func deletePath(doc map[string]any, path []string, floor int) {
	parents := []map[string]any{doc}
	for _, seg := range path[:len(path)-1] {
		child, ok := parents[len(parents)-1][seg].(map[string]any)
		if !ok {
			return
		}
		parents = append(parents, child)
	}
	delete(parents[len(parents)-1], path[len(path)-1])
	for i := len(path) - 1; i >= max(floor, 1); i-- {
		if len(parents[i]) > 0 {
			return
		}
		delete(parents[i-1], path[i-1])
	}
}

// mergeDiff returns the JSON merge patch that turns old into new.
func mergeDiff(old, new map[string]any) map[string]any {
	patch := map[string]any{}
	for k := range old {
		if _, ok := new[k]; !ok {
			patch[k] = nil
		}
	}
	for k, nv := range new {
		ov, ok := old[k]
		if !ok {
			patch[k] = nv
			continue
		}
		om, oObject := ov.(map[string]any)
		nm, nObject := nv.(map[string]any)
		if oObject && nObject {
			if sub := mergeDiff(om, nm); len(sub) > 0 {
				patch[k] = sub
			}
			continue
		}
		if !sameJSON(ov, nv) {
			patch[k] = nv
		}
	}
	return patch
}

// sameJSON reports whether two decoded JSON values are equal, comparing
// numbers by value whatever their Go type (json.Number from the store,
// int or float64 from callers).
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case string, bool:
		return a == b
	}
	fa, ok := number(a)
	if !ok {
		return false
	}
	fb, ok := number(b)
	return ok && fa == fb
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}
