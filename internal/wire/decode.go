package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/usher-iot/usher/internal/fault"
)

// MaxDepth is how deeply arrays and objects may nest in a body Decode
// accepts: 64, the default limit of the .NET JSON readers Azure's services
// are built on (Json.NET 13, System.Text.Json). Twins allow 10 levels below
// tags and properties, so no valid document comes near it.
const MaxDepth = 64

// Decode parses one JSON value from body into v. Numbers inside free-form
// objects stay json.Number, so twin values round-trip exactly. It returns
// fault.Malformed for syntax errors and fault.Invalid, naming the field, when
// a value has the wrong type.
//
// Before decoding it refuses, as fault.Malformed, what encoding/json would
// accept but no Azure client could read back: bytes that are not UTF-8
// (encoding/json would silently replace them with U+FFFD, so two different
// keys could become one), nesting deeper than MaxDepth, and numbers beyond
// float64's range (1e400 would be stored verbatim and read back as
// infinity, or not at all).
//
// A key given twice in one object is not an error: the last value wins, at
// every level and for struct fields and free-form objects alike, as Json.NET
// (which Azure's services use) and encoding/json both do. Fields that are
// checked against each other (an ID in the path and in the body) are checked
// after decoding, so they see the same value that is stored.
func Decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fault.New(fault.Malformed, "the request body is empty; a JSON object is required")
	}
	if !utf8.Valid(body) {
		return fault.New(fault.Malformed, "the request body is not valid UTF-8")
	}
	if err := checkLimits(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return decodeFault(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fault.New(fault.Malformed, "the request body has data after the JSON value")
	}
	return nil
}

// checkLimits scans body once for nesting deeper than MaxDepth and for
// numbers no float64 holds, skipping strings. It reports nothing else: the
// decoder finds every syntax error, and on bodies that are not JSON the scan
// only has to end.
func checkLimits(body []byte) error {
	depth := 0
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case c == '"':
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					i++
				}
			}
		case c == '{' || c == '[':
			if depth++; depth > MaxDepth {
				return fault.New(fault.Malformed, "the request body nests objects and arrays deeper than %d levels", MaxDepth)
			}
		case c == '}' || c == ']':
			depth--
		case c == '-' || '0' <= c && c <= '9':
			j := i + 1
			for j < len(body) && isNumberByte(body[j]) {
				j++
			}
			if err := checkNumber(body[i:j]); err != nil {
				return err
			}
			i = j - 1
		}
	}
	return nil
}

func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// checkNumber refuses a number token beyond float64's range. Only a token
// with an exponent or over 300 characters can be.
func checkNumber(tok []byte) error {
	if len(tok) <= 300 && !bytes.ContainsAny(tok, "eE") {
		return nil
	}
	if _, err := strconv.ParseFloat(string(tok), 64); errors.Is(err, strconv.ErrRange) {
		shown := string(tok)
		if len(shown) > 40 {
			shown = shown[:40] + "…"
		}
		return fault.New(fault.Malformed, "the number %s in the request body is out of range", shown)
	}
	return nil
}

func decodeFault(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fault.New(fault.Malformed, "the request body is not valid JSON: %s (at byte %d)", syn.Error(), syn.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return fault.New(fault.Malformed, "the request body must be a JSON object, not %s", typ.Value)
		}
		return fault.New(fault.Invalid, "field %s must be %s, not %s", field, want(typ), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.New(fault.Malformed, "the request body is not valid JSON: it ends too early")
	}
	return fault.New(fault.Malformed, "the request body is not valid JSON: %s", err.Error())
}

func want(typ *json.UnmarshalTypeError) string {
	switch typ.Type.Kind().String() {
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int32", "int64", "float64":
		return "a number"
	}
	return "a " + typ.Type.String()
}
