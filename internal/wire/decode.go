package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/usher-iot/usher/internal/fault"
)

// Decode parses one JSON value from body into v. Numbers inside free-form
// objects stay json.Number, so twin values round-trip exactly. It returns
// fault.Malformed for syntax errors and fault.Invalid, naming the field, when
// a value has the wrong type.
func Decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fault.New(fault.Malformed, "the request body is empty; a JSON object is required")
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
