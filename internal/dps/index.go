package dps

import (
	"context"
	"sort"
	"strconv"
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
	for _, c := range conjuncts(cond.String()) {
		p, v, isEq := stringEquality(c)
		if !isEq || !indexable(v) {
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

// conjuncts splits a condition in the canonical form Condition.String
// renders into its top-level AND operands, unwrapping parenthesised ANDs:
// "a AND (b AND c)" gives a, b and c. In that form keywords are upper case,
// strings are single-quoted with backslash escapes, path segments other than
// identifiers are written [[…]] (arrays never nest, so "[[" always opens a
// segment), and only the parentheses the structure needs are written, so
// "a AND b OR c" is an OR. A condition that is not an AND gives itself;
// text that does not scan gives nothing.
func conjuncts(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\'':
			end := stringEnd(s, i)
			if end < 0 {
				return nil
			}
			i = end
		case strings.HasPrefix(s[i:], "[["):
			end := strings.Index(s[i+2:], "]]")
			if end < 0 {
				return nil
			}
			i += 2 + end + 1
		case s[i] == '(':
			depth++
		case s[i] == ')':
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], " OR "):
			return []string{s} // OR binds loosest: s is one OR, not an AND
		case depth == 0 && strings.HasPrefix(s[i:], " AND "):
			out = append(out, s[start:i])
			start = i + len(" AND ")
			i = start - 1
		}
	}
	if depth != 0 {
		return nil
	}
	out = append(out, s[start:])
	var flat []string
	for _, c := range out {
		if inner, ok := unwrap(c); ok {
			flat = append(flat, conjuncts(inner)...)
		} else {
			flat = append(flat, c)
		}
	}
	return flat
}

// stringEnd returns the index of the quote that closes the single-quoted
// string opening at s[open], or -1.
func stringEnd(s string, open int) int {
	for i := open + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '\'':
			return i
		}
	}
	return -1
}

// unwrap returns the inside of s when the whole of s is one parenthesised
// expression.
func unwrap(s string) (string, bool) {
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return "", false
	}
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\'':
			if i = stringEnd(s, i); i < 0 {
				return "", false
			}
		case strings.HasPrefix(s[i:], "[["):
			end := strings.Index(s[i+2:], "]]")
			if end < 0 {
				return "", false
			}
			i += 2 + end + 1
		case s[i] == '(':
			depth++
		case s[i] == ')':
			depth--
			if depth == 0 && i != len(s)-1 {
				return "", false // "(a) OR (b)"
			}
		}
	}
	return s[1 : len(s)-1], depth == 0
}

// stringEquality recognises an operand of the form <path> = '<string>' (or
// the constant first) and returns the path and the string. The result is
// checked against the parser: the operand must parse and match a document
// that holds exactly that string at that path, so a misreading gives no
// equality rather than a wrong one.
func stringEquality(c string) (twinquery.Path, string, bool) {
	cond, err := twinquery.ParseCondition(c)
	if err != nil {
		return nil, "", false
	}
	paths := cond.Paths()
	if len(paths) != 1 {
		return nil, "", false
	}
	p := paths[0]
	ps := p.String()
	var lit string
	switch {
	case strings.HasPrefix(c, ps+" = "):
		lit = c[len(ps)+len(" = "):]
	case strings.HasSuffix(c, " = "+ps):
		lit = c[:len(c)-len(ps)-len(" = ")]
	default:
		return nil, "", false
	}
	v, ok := unquote(lit)
	if !ok || !cond.Match(docAt(p, v)) {
		return nil, "", false
	}
	return p, v, true
}

// unquote decodes a single-quoted string as Condition.String writes it:
// \' \\ and \u00XX are its only escapes.
func unquote(lit string) (string, bool) {
	if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
		return "", false
	}
	in := lit[1 : len(lit)-1]
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		switch c := in[i]; c {
		case '\'':
			return "", false // the string ends before the operand does
		case '\\':
			switch {
			case i+1 < len(in) && (in[i+1] == '\'' || in[i+1] == '\\'):
				b.WriteByte(in[i+1])
				i++
			case i+5 < len(in) && in[i+1] == 'u':
				r, err := strconv.ParseUint(in[i+2:i+6], 16, 16)
				if err != nil {
					return "", false
				}
				b.WriteRune(rune(r))
				i += 5
			default:
				return "", false
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// docAt returns a document holding v at p and nothing else.
func docAt(p twinquery.Path, v string) map[string]any {
	var cur any = v
	for i := len(p) - 1; i >= 0; i-- {
		cur = map[string]any{p[i]: cur}
	}
	doc, _ := cur.(map[string]any)
	return doc
}
