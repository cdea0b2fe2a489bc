package twinquery

import "strings"

// Path is a JSON path: the object keys to follow from the document root.
// Segments are compared with JSON keys case-sensitively.
type Path []string

// String renders p in query syntax: segments joined by dots, with a segment
// written as [[segment]] when it is not a plain identifier (or when a
// one-segment path would read as a keyword). A segment that is empty,
// contains "]]" or ends in ']' cannot be written in query syntax; parsed
// paths never contain one.
func (p Path) String() string {
	var b strings.Builder
	for i, seg := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		if needsBrackets(seg, i == 0, len(p) == 1) {
			b.WriteString("[[" + seg + "]]")
		} else {
			b.WriteString(seg)
		}
	}
	return b.String()
}

// needsBrackets reports whether seg must be written as [[seg]].
func needsBrackets(seg string, first, alone bool) bool {
	if seg == "" || (first && !isIdentStart(seg[0])) || (alone && isReserved(seg)) {
		return true
	}
	for i := 0; i < len(seg); i++ {
		if !isIdentChar(seg[i]) {
			return true
		}
	}
	return false
}

// Lookup returns the value at p in doc and whether it is defined. A path is
// defined when every segment names a key of a map[string]any, even if the
// final value is nil (JSON null). An empty path yields doc itself.
func (p Path) Lookup(doc map[string]any) (any, bool) {
	var cur any = doc
	for _, seg := range p {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// isReserved reports whether an identifier is a keyword that cannot be used
// as a bare one-segment path.
func isReserved(s string) bool {
	if len(s) > len("UNDEFINED") {
		return false
	}
	switch strings.ToUpper(s) {
	case "SELECT", "TOP", "FROM", "WHERE", "GROUP", "BY", "AS",
		"AND", "OR", "NOT", "IN", "NIN", "TRUE", "FALSE", "NULL", "UNDEFINED":
		return true
	}
	return false
}

// clone returns a copy of p that shares no storage with it.
func (p Path) clone() Path {
	return append(Path(nil), p...)
}
