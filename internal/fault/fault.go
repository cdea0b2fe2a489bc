// Package fault is Usher's one error type. Domain code says what went wrong
// with a Kind and a message that is safe to show to a caller; transports turn
// the Kind into a status and body exactly once (see package wire). Internal
// causes travel in Cause and are logged, never sent.
package fault

import (
	"errors"
	"fmt"
)

// Kind classifies an error. The list is append-only: never reorder or reuse
// a value, because stores and logs may persist the number.
type Kind int

// Kinds of failure. Each maps to one status per surface in package wire.
const (
	Internal             Kind = iota // a bug or an unexpected dependency failure
	Invalid                          // a request that is well-formed but breaks a rule
	NotFound                         // the named thing does not exist
	Conflict                         // the thing exists already, or a concurrent change won
	PreconditionFailed               // If-Match (etag) does not match
	TooLarge                         // the request body or an item is over a limit
	Unauthenticated                  // no, malformed, wrong or expired credentials
	Forbidden                        // valid credentials without the right needed
	Throttled                        // too many requests; retry later
	Unavailable                      // not ready or shutting down; retry later
	Malformed                        // the body is not parseable (bad JSON)
	Unsupported                      // a feature Azure has and Usher does not (yet)
	MethodNotAllowed                 // the path exists but not with this verb
	UnsupportedMediaType             // the body's Content-Type is not JSON
	Timeout                          // a party the request waited for did not answer in time
)

var kindNames = [...]string{
	Internal:             "Internal",
	Invalid:              "Invalid",
	NotFound:             "NotFound",
	Conflict:             "Conflict",
	PreconditionFailed:   "PreconditionFailed",
	TooLarge:             "TooLarge",
	Unauthenticated:      "Unauthenticated",
	Forbidden:            "Forbidden",
	Throttled:            "Throttled",
	Unavailable:          "Unavailable",
	Malformed:            "Malformed",
	Unsupported:          "Unsupported",
	MethodNotAllowed:     "MethodNotAllowed",
	UnsupportedMediaType: "UnsupportedMediaType",
	Timeout:              "Timeout",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Reason refines a Kind where a surface names failures more finely than
// by status: IoT Hub answers 404 with ModuleNotFound or DeviceNotOnline, not
// only DeviceNotFound. A domain package declares its reasons as constants;
// package wire maps each one once. "" means the Kind says it all.
type Reason string

// Error is the error type every Usher package returns for failures a caller
// may act on.
type Error struct {
	Kind    Kind
	Reason  Reason // optional refinement of Kind
	Message string // safe to show to the caller
	Cause   error  // internal detail; logged, never sent
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Kind.String() + ": " + e.Message + ": " + e.Cause.Error()
	}
	return e.Kind.String() + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// New returns an error of kind k with a caller-safe message.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// NewReason returns an error of kind k refined by reason r, with a
// caller-safe message.
func NewReason(k Kind, r Reason, format string, args ...any) error {
	return &Error{Kind: k, Reason: r, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k whose cause is err. The message is shown to
// the caller; err is not.
func Wrap(k Kind, err error, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Cause: err}
}

// KindOf reports the Kind of err: the Kind of the first *Error in its chain,
// or Internal when there is none.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Internal
}

// ReasonOf reports the Reason of the first *Error in err's chain, or "".
func ReasonOf(err error) Reason {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return ""
}

// Is reports whether err is a fault of kind k.
func Is(err error, k Kind) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.Kind == k
}

// MessageOf returns the caller-safe message of err, or a generic text when
// err carries none (so internal details never leak).
func MessageOf(err error) string {
	var fe *Error
	if errors.As(err, &fe) && fe.Message != "" {
		return fe.Message
	}
	return "An internal error occurred."
}
