package twinquery

import (
	"errors"
	"testing"
)

// fuzzDocs are the documents every successfully parsed condition is matched
// against.
func fuzzDocs(t testing.TB) []map[string]any {
	return []map[string]any{
		decode(t, enrollmentJSON, true),
		decode(t, twinJSON, false),
		{"a": nil, "b": []any{1.0, "x", nil, map[string]any{}}, "c": map[string]any{"d": int64(-1)}},
		nil,
	}
}

func FuzzParse(f *testing.F) {
	for _, in := range systemMetricQueries {
		f.Add(in)
	}
	for _, tc := range goodQueries(f) {
		f.Add(tc.in)
	}
	for _, tc := range badQueries {
		f.Add(tc.in)
	}
	for _, tc := range goodConditions {
		f.Add("SELECT * FROM devices WHERE " + tc.in)
	}
	docs := fuzzDocs(f)
	f.Fuzz(func(t *testing.T, in string) {
		q, err := Parse(in)
		if err != nil {
			checkFuzzError(t, in, err)
			return
		}
		s := q.String()
		if len(s) > MaxInputLen {
			return // documented: the canonical form may outgrow the limit
		}
		q2, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) rendered %q, which fails: %v", in, s, err)
		}
		if s2 := q2.String(); s2 != s {
			t.Fatalf("Parse(%q) rendered %q, then %q", in, s, s2)
		}
		checkSameMatches(t, q.Where, q2.Where, docs)
	})
}

func FuzzParseCondition(f *testing.F) {
	for _, tc := range goodConditions {
		f.Add(tc.in)
	}
	for _, tc := range badConditions {
		f.Add(tc.in)
	}
	for _, tc := range matchCases {
		f.Add(tc.cond)
	}
	docs := fuzzDocs(f)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseCondition(in)
		if err != nil {
			checkFuzzError(t, in, err)
			return
		}
		s := c.String()
		if len(s) > MaxInputLen {
			return // documented: the canonical form may outgrow the limit
		}
		c2, err := ParseCondition(s)
		if err != nil {
			t.Fatalf("ParseCondition(%q) rendered %q, which fails: %v", in, s, err)
		}
		if s2 := c2.String(); s2 != s {
			t.Fatalf("ParseCondition(%q) rendered %q, then %q", in, s, s2)
		}
		_ = c.Paths()
		checkSameMatches(t, c, c2, docs)
	})
}

// checkFuzzError checks that a parse error is one of the two documented
// types with an offset inside the input.
func checkFuzzError(t *testing.T, in string, err error) {
	var syn *SyntaxError
	var uns *UnsupportedError
	pos := -1
	switch {
	case errors.As(err, &syn):
		pos = syn.Pos
	case errors.As(err, &uns):
		pos = uns.Pos
	default:
		t.Fatalf("Parse(%q) returned %T: %v", in, err, err)
	}
	if pos < 0 || pos > len(in) {
		t.Fatalf("Parse(%q): offset %d outside the input: %v", in, pos, err)
	}
}

// checkSameMatches checks that a condition and its re-parsed rendering agree
// on every document.
func checkSameMatches(t *testing.T, c, c2 *Condition, docs []map[string]any) {
	for i, doc := range docs {
		if got, got2 := c.Match(doc), c2.Match(doc); got != got2 {
			t.Fatalf("%q and its rendering disagree on doc %d: %v, %v", c, i, got, got2)
		}
	}
}
