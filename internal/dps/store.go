package dps

import (
	"context"
	"time"
)

// Store persists enrollments, groups and registration records. Stores are
// dumb: they apply no rules beyond atomic etag preconditions, so every rule
// lives here once. IDs are passed as given; stores key them by IDKey.
//
// Errors: fault.NotFound when the record is absent, fault.Conflict when a
// create finds one, fault.PreconditionFailed when an etag does not match.
// An etag argument of "" means "unconditional".
type Store interface {
	Enrollment(ctx context.Context, registrationID string) (Enrollment, error)
	CreateEnrollment(ctx context.Context, e Enrollment) error
	// UpdateEnrollment replaces the record whose stored etag equals etag.
	UpdateEnrollment(ctx context.Context, e Enrollment, etag string) error
	DeleteEnrollment(ctx context.Context, registrationID, etag string) error
	// Enrollments lists up to limit records whose IDKey sorts after after.
	Enrollments(ctx context.Context, after string, limit int) ([]Enrollment, error)
	// EnrollmentsWhere lists, in IDKey order, up to f.Limit records whose
	// IDKey sorts after f.After and that have f's status and tag, through
	// indexes the store keeps in the transaction of every enrollment write
	// (so they never lag): a status column and the IndexedTags of each
	// record. Strings compare bytewise. No error kinds beyond
	// fault.Internal.
	EnrollmentsWhere(ctx context.Context, f ListFilter) ([]Enrollment, error)

	Group(ctx context.Context, id string) (Group, error)
	CreateGroup(ctx context.Context, g Group) error
	UpdateGroup(ctx context.Context, g Group, etag string) error
	DeleteGroup(ctx context.Context, id, etag string) error
	Groups(ctx context.Context, after string, limit int) ([]Group, error)

	Registration(ctx context.Context, registrationID string) (Registration, error)
	// PutRegistration creates or replaces a registration record.
	PutRegistration(ctx context.Context, r Registration) error
	DeleteRegistration(ctx context.Context, registrationID, etag string) error
	// Registrations lists records of one group (groupID "" lists those of
	// individual enrollments) whose IDKey sorts after after.
	Registrations(ctx context.Context, groupID, after string, limit int) ([]Registration, error)

	// PutOperation creates or replaces a registration operation and, when
	// record is not nil, creates or replaces that registration record in the
	// same transaction: a device never sees an operation whose record is
	// missing, and a registration costs one write.
	PutOperation(ctx context.Context, op Operation, record *Registration) error
	Operation(ctx context.Context, id string) (Operation, error)
	// DeleteOperationsBefore removes operations created before t and says
	// how many.
	DeleteOperationsBefore(ctx context.Context, t time.Time) (int, error)
}
