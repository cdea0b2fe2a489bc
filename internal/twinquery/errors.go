package twinquery

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SyntaxError reports malformed query text. Its message is short, plain and
// names the offending token, so it can be returned to API users as is.
type SyntaxError struct {
	Pos int    // byte offset in the input where the problem starts
	Msg string // what is wrong, e.g. "unexpected ')'"
}

// Error returns the message and the offset, e.g. "unexpected ')' at offset 12".
func (e *SyntaxError) Error() string {
	return e.Msg + " at offset " + strconv.Itoa(e.Pos)
}

// UnsupportedError reports Azure IoT Hub query syntax that is valid but not
// implemented here, such as an unknown function.
type UnsupportedError struct {
	Feature string // what is not supported, e.g. "function ST_DISTANCE"
	Pos     int    // byte offset in the input where the feature starts
}

// Error returns e.g. "unsupported function ST_DISTANCE at offset 20".
func (e *UnsupportedError) Error() string {
	return "unsupported " + e.Feature + " at offset " + strconv.Itoa(e.Pos)
}

func syntaxErr(pos int, msg string) error {
	return &SyntaxError{Pos: pos, Msg: msg}
}

func unsupported(pos int, feature string) error {
	return &UnsupportedError{Feature: feature, Pos: pos}
}

// maxShown is how many bytes of user text an error message quotes.
const maxShown = 40

// clip shortens s to at most maxShown bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// show quotes user text for an error message: clipped, in single quotes,
// with invalid UTF-8 and non-printable characters escaped.
func show(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	s = clip(s)
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[0]), 16))
		case unicode.IsGraphic(r):
			b.WriteString(s[:size])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[size:]
	}
	b.WriteByte('\'')
	return b.String()
}

// describe names a token for an error message.
func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		return "string " + show(t.str)
	}
	return show(t.text)
}
