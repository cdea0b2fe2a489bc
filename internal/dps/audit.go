package dps

import (
	"context"
	"errors"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// Auditor records what changed and who was refused, for the operator's
// audit log. The Service reports every enrollment and group it created,
// updated or deleted; the Registrar every device it refused, with the
// reason in plain words that the device itself never sees. Who and how
// come from the context's Origin. Implementations must not block for long
// and report their own failures (the change has happened either way).
type Auditor interface {
	Changed(ctx context.Context, c Change)
	Refused(ctx context.Context, r Refusal)
}

// Record kinds a Change names.
const (
	KindEnrollment = "enrollment"
	KindGroup      = "group"
)

// Change is one enrollment or group written or deleted. It carries no key
// material.
type Change struct {
	Kind       string // KindEnrollment or KindGroup
	ID         string // registration ID or group ID
	Action     string // "create", "update" or "delete"
	ETagBefore string // "" on create
	ETagAfter  string // "" on delete
}

// Refusal is one device the Registrar would not provision: a failed
// attestation, or a device whose enrollment is disabled.
type Refusal struct {
	IDScope        string
	RegistrationID string
	Reason         string // in plain words, for the operator only
	Time           time.Time
}

// reasonOf returns the internal reason of a refusal built by denied (its
// cause's message), else the error's own message.
func reasonOf(err error) string {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Cause != nil {
		return fault.MessageOf(fe.Cause)
	}
	return fault.MessageOf(err)
}

// RegistrationOutcome names how a registration request ended, for metrics:
// the finished operation's status (assigned, failed, disabled) or the kind
// of error that answered it instead.
func RegistrationOutcome(op Operation, err error) string {
	if err == nil {
		return string(op.Status)
	}
	switch fault.KindOf(err) {
	case fault.Unauthenticated, fault.Forbidden:
		return "unauthenticated"
	case fault.Throttled:
		return "throttled"
	case fault.Invalid, fault.Malformed, fault.TooLarge, fault.Unsupported, fault.UnsupportedMediaType, fault.NotFound:
		return "invalid"
	case fault.Unavailable, fault.Timeout:
		return "unavailable"
	}
	return "error"
}

// nopAuditor records nothing.
type nopAuditor struct{}

func (nopAuditor) Changed(context.Context, Change)  {}
func (nopAuditor) Refused(context.Context, Refusal) {}
