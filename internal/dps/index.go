package dps

import (
	"context"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/usher-iot/usher/internal/twinquery"
)

// Enrollment queries are evaluated here, in Go, but over a million records a
// WHERE that selects few of them must not read them all. Stores therefore
// keep two indexes of individual enrollments, and a query whose condition
// pins one of the indexed fields asks the store for the records that have
// that value only; the full condition still decides what is returned (see
// docs/decisions/0013-enrollment-indexes.md).
//
//   - provisioningStatus;
//   - every top-level initial-twin tag whose value is a string
//     (initialTwin.tags.<name> in the query view), see IndexedTags.

// ListFilter asks a store for a page of enrollments in IDKey order that
// carry the given indexed values. The zero filter (beyond After and Limit)
// lists every enrollment. It only narrows: a store returns every record with
// these values, and dps evaluates the rest of a query's condition.
type ListFilter struct {
	After  string             // list records whose IDKey sorts after this
	Limit  int                // at most this many
	Status ProvisioningStatus // only records with this status; "" for any
	Tag    *Tag               // only records with this indexed tag; nil for any
}

// Tag is one entry of the tag index: an initial-twin tag whose value is a
// string.
type Tag struct {
	Name, Value string
}

// IndexedTags returns the tags of e that stores index for ListFilter.Tag:
// the top-level initial-twin tags whose values are strings, sorted by name.
// Names and values are spelled as they read back from the store (JSON
// encoding replaces each byte of invalid UTF-8 with U+FFFD). Tags whose name
// or value contains U+0000 are left out: PostgreSQL text cannot hold it, and
// a query for such a value is never narrowed.
func IndexedTags(e *Enrollment) []Tag {
	if e.InitialTwin == nil {
		return nil
	}
	var out []Tag
	for name, v := range e.InitialTwin.Tags {
		s, ok := v.(string)
		if !ok {
			continue
		}
		t := Tag{Name: asStored(name), Value: asStored(s)}
		if strings.ContainsRune(t.Name, 0) || strings.ContainsRune(t.Value, 0) {
			continue
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// asStored returns s as encoding/json writes it and reads it back: each byte
// that is not part of valid UTF-8 becomes U+FFFD.
func asStored(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// indexable reports whether a query constant can be looked up in the
// indexes: IndexedTags never stores other strings.
func indexable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// lister reads records in IDKey order after a key.
type lister[T any] func(ctx context.Context, after string, limit int) ([]T, error)

// enrollmentLister returns how to read the enrollments cond may match: the
// store's index when cond pins an indexed field, else every enrollment.
func enrollmentLister(store Store) func(*twinquery.Condition) lister[Enrollment] {
	return func(cond *twinquery.Condition) lister[Enrollment] {
		f, ok := enrollmentHint(cond)
		if !ok {
			return store.Enrollments
		}
		return func(ctx context.Context, after string, limit int) ([]Enrollment, error) {
			f := f
			f.After, f.Limit = after, limit
			return store.EnrollmentsWhere(ctx, f)
		}
	}
}

// enrollmentHint finds, among the top-level AND operands of cond, equalities
// between an indexed field and a string constant: every enrollment cond
// matches has that value, so the store may list only those. It takes the
// first status and the first tag equality; ok is false when there is none.
func enrollmentHint(cond *twinquery.Condition) (f ListFilter, ok bool) {
	if cond == nil {
		return f, false
	}
	for _, eq := range cond.StringEqualities() {
		p, v := eq.Path, eq.Value
		if !indexable(v) {
			continue
		}
		switch {
		case len(p) == 1 && p[0] == "provisioningStatus" && f.Status == "":
			f.Status = ProvisioningStatus(v)
		case len(p) == 3 && p[0] == "initialTwin" && p[1] == "tags" && f.Tag == nil && indexable(p[2]):
			f.Tag = &Tag{Name: p[2], Value: v}
		}
	}
	return f, f.Status != "" || f.Tag != nil
}
