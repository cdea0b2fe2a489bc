package twinquery

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// kind is the type of a value during evaluation.
type kind uint8

const (
	kUndef kind = iota // absent path, or the result of a meaningless operation
	kNull
	kBool
	kNum
	kStr
	kArr
	kObj
	kOther // a Go value of a type JSON decoding does not produce
)

// value is a document or constant value, normalised for evaluation.
type value struct {
	k kind
	b bool
	n float64
	s string
	a []any
	o map[string]any
}

func boolV(b bool) value      { return value{k: kBool, b: b} }
func numV(n float64) value    { return value{k: kNum, n: n} }
func strV(s string) value     { return value{k: kStr, s: s} }
func isTrue(v value) bool     { return v.k == kBool && v.b }
func bothNum(l, r value) bool { return l.k == kNum && r.k == kNum }

// arrV builds an array constant from scalar constants.
func arrV(items []value) value {
	a := make([]any, len(items))
	for i, it := range items {
		a[i] = it.toAny()
	}
	return value{k: kArr, a: a}
}

// toAny converts a scalar constant back to a document value.
func (v value) toAny() any {
	switch v.k {
	case kBool:
		return v.b
	case kNum:
		return v.n
	case kStr:
		return v.s
	}
	return nil
}

// fromAny normalises a decoded JSON value. All Go integer and float types and
// json.Number become numbers.
func fromAny(x any) value {
	switch x := x.(type) {
	case nil:
		return value{k: kNull}
	case bool:
		return boolV(x)
	case string:
		return strV(x)
	case []any:
		return value{k: kArr, a: x}
	case map[string]any:
		return value{k: kObj, o: x}
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return numV(f)
		}
		return value{k: kOther}
	}
	if f, ok := toFloat(x); ok {
		return numV(f)
	}
	return value{k: kOther}
}

func toFloat(x any) (float64, bool) {
	switch x := x.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

// equal reports deep equality of two defined values of the same kind.
func equal(l, r value) bool {
	if l.k != r.k {
		return false
	}
	switch l.k {
	case kNull:
		return true
	case kBool:
		return l.b == r.b
	case kNum:
		return l.n == r.n
	case kStr:
		return l.s == r.s
	case kArr:
		return equalArrays(l.a, r.a)
	case kObj:
		return equalObjects(l.o, r.o)
	}
	return false
}

func equalArrays(l, r []any) bool {
	if len(l) != len(r) {
		return false
	}
	for i := range l {
		if !equal(fromAny(l[i]), fromAny(r[i])) {
			return false
		}
	}
	return true
}

func equalObjects(l, r map[string]any) bool {
	if len(l) != len(r) {
		return false
	}
	for k, lv := range l {
		rv, ok := r[k]
		if !ok || !equal(fromAny(lv), fromAny(rv)) {
			return false
		}
	}
	return true
}

// writeValue renders a constant in query syntax.
func writeValue(b *strings.Builder, v value) {
	switch v.k {
	case kUndef:
		b.WriteString("undefined")
	case kNull:
		b.WriteString("null")
	case kBool:
		b.WriteString(strconv.FormatBool(v.b))
	case kNum:
		b.WriteString(formatNum(v.n))
	case kStr:
		quoteString(b, v.s)
	case kArr:
		writeArray(b, v.a)
	}
}

func formatNum(n float64) string {
	if math.IsInf(n, 0) || math.IsNaN(n) {
		return "undefined" // never produced by the parser
	}
	return strconv.FormatFloat(n, 'g', -1, 64)
}

func writeArray(b *strings.Builder, items []any) {
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		writeValue(b, fromAny(it))
	}
	b.WriteByte(']')
}

// quoteString writes s in single quotes, escaping quotes, backslashes and
// control characters. Other bytes, even invalid UTF-8, are written as is.
func quoteString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
}
