package seed

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
)

// jsonAsYAML rewrites the two escapes valid JSON may hold that the YAML
// parser refuses: "\/" and UTF-16 surrogate pairs ("\ud83d\ude00"), which
// YAML writes as "/" and "\U0001F600". A lone surrogate becomes U+FFFD, as
// encoding/json reads it. Nothing else changes, and no line break moves, so
// positions stay those of the file. Input that is not valid JSON is
// returned as it is.
func jsonAsYAML(data []byte) []byte {
	if !json.Valid(data) {
		return data
	}
	out := make([]byte, 0, len(data))
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '"':
			inString = !inString
		case inString && c == '\\':
			next := data[i+1] // valid JSON: an escape is never last
			switch {
			case next == '/':
				out = append(out, '/')
				i++
				continue
			case next == 'u':
				r, n := escapedRune(data[i:])
				if n > 0 {
					out = fmt.Appendf(out, `\U%08X`, r)
					i += n - 1
					continue
				}
			}
			out = append(out, c, next)
			i++
			continue
		}
		out = append(out, c)
	}
	return out
}

// escapedRune reads "\uXXXX" at the start of b. For a surrogate (paired
// or not) it returns the rune and how many bytes it spans; for any other
// code unit it returns n == 0, leaving the escape to YAML.
func escapedRune(b []byte) (rune, int) {
	hi, ok := hex4(b)
	if !ok || !utf16.IsSurrogate(rune(hi)) {
		return 0, 0
	}
	if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
		if lo, ok := hex4(b[6:]); ok {
			if r := utf16.DecodeRune(rune(hi), rune(lo)); r != 0xFFFD {
				return r, 12
			}
		}
	}
	return 0xFFFD, 6
}

func hex4(b []byte) (uint16, bool) {
	if len(b) < 6 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[2:6]), 16, 16)
	return uint16(v), err == nil
}
