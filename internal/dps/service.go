package dps

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/twinquery"
)

// Service holds the enrollment use cases. Transports decode requests, call
// it, and encode what it returns.
type Service struct {
	store       Store
	now         func() time.Time
	enrollments kind[Enrollment]
	groups      kind[Group]
}

// Options configure a Service. Zero values choose sensible defaults.
type Options struct {
	Now     func() time.Time // clock; time.Now when nil
	Auditor Auditor          // told of every change; nil records nothing
	// InitialTwinLimits checks an enrollment's or group's initial twin
	// against the limits of the hub its devices are assigned to, so a twin
	// the hub would refuse is refused when the enrollment is written rather
	// than when a device registers. nil checks nothing.
	InitialTwinLimits func(*InitialTwin) error
}

// NewService returns the enrollment use cases over store.
func NewService(store Store, opts Options) *Service {
	s := &Service{store: store, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	s.enrollments = kind[Enrollment]{
		noun:     "enrollment",
		audit:    KindEnrollment,
		auditor:  opts.Auditor,
		id:       func(e *Enrollment) string { return e.RegistrationID },
		settings: func(e *Enrollment) *Settings { return &e.Settings },
		validate: func(e *Enrollment) error { return validated(e.Validate(), opts.InitialTwinLimits, e.InitialTwin) },
		get:      store.Enrollment,
		create:   store.CreateEnrollment,
		update:   store.UpdateEnrollment,
		del:      store.DeleteEnrollment,
		list:     store.Enrollments,
		where:    enrollmentLister(store),
		doc:      enrollmentDoc,
		fields:   enrollmentFields,
		from:     "enrollments",
	}
	s.groups = kind[Group]{
		noun:     "enrollment group",
		audit:    KindGroup,
		auditor:  opts.Auditor,
		id:       func(g *Group) string { return g.ID },
		settings: func(g *Group) *Settings { return &g.Settings },
		validate: func(g *Group) error { return validated(g.Validate(), opts.InitialTwinLimits, g.InitialTwin) },
		get:      store.Group,
		create:   store.CreateGroup,
		update:   store.UpdateGroup,
		del:      store.DeleteGroup,
		list:     store.Groups,
		doc:      groupDoc,
		fields:   groupFields,
		from:     "enrollmentGroups",
	}
	return s
}

// validated is err, else the initial twin's check when there is one of each.
func validated(err error, limits func(*InitialTwin) error, twin *InitialTwin) error {
	if err != nil || limits == nil || twin == nil {
		return err
	}
	return limits(twin)
}

// Enrollment returns an individual enrollment with its keys. Callers that
// show it to a reader without the attestation right mask the keys.
func (s *Service) Enrollment(ctx context.Context, id string) (Enrollment, error) {
	return s.enrollments.fetch(ctx, id)
}

// PutEnrollment creates or replaces an individual enrollment (Azure's PUT).
// ifMatch is the request's If-Match ("" for none). Keys the request omits are
// kept on update and generated on create.
func (s *Service) PutEnrollment(ctx context.Context, e Enrollment, ifMatch string) (Enrollment, error) {
	return s.enrollments.put(ctx, s.now, e, ifMatch, false)
}

// CreateEnrollment creates an enrollment and fails with fault.Conflict when
// one exists (bulk "create").
func (s *Service) CreateEnrollment(ctx context.Context, e Enrollment) (Enrollment, error) {
	return s.enrollments.put(ctx, s.now, e, "", true)
}

// DeleteEnrollment deletes an enrollment. It never touches hub devices.
func (s *Service) DeleteEnrollment(ctx context.Context, id, ifMatch string) error {
	return s.enrollments.remove(ctx, id, ifMatch)
}

// QueryEnrollments returns one page of the enrollments q selects.
func (s *Service) QueryEnrollments(ctx context.Context, q string, page Page) ([]Enrollment, string, error) {
	return s.enrollments.query(ctx, q, page)
}

// Group returns an enrollment group with its keys.
func (s *Service) Group(ctx context.Context, id string) (Group, error) {
	return s.groups.fetch(ctx, id)
}

// PutGroup creates or replaces an enrollment group (Azure's PUT).
func (s *Service) PutGroup(ctx context.Context, g Group, ifMatch string) (Group, error) {
	return s.groups.put(ctx, s.now, g, ifMatch, false)
}

// CreateGroup creates a group and fails with fault.Conflict when one exists.
func (s *Service) CreateGroup(ctx context.Context, g Group) (Group, error) {
	return s.groups.put(ctx, s.now, g, "", true)
}

// DeleteGroup deletes a group. Its devices' registrations and hub identities
// stay.
func (s *Service) DeleteGroup(ctx context.Context, id, ifMatch string) error {
	return s.groups.remove(ctx, id, ifMatch)
}

// QueryGroups returns one page of the groups q selects.
func (s *Service) QueryGroups(ctx context.Context, q string, page Page) ([]Group, string, error) {
	return s.groups.query(ctx, q, page)
}

// kind is the machinery individual enrollments and groups share; the
// function fields adapt it to one record type.
type kind[T any] struct {
	noun     string
	audit    string  // the Change.Kind of this record type
	auditor  Auditor // nil: changes are not recorded
	id       func(*T) string
	settings func(*T) *Settings
	validate func(*T) error
	get      func(context.Context, string) (T, error)
	create   func(context.Context, T) error
	update   func(context.Context, T, string) error
	del      func(context.Context, string, string) error
	list     lister[T]
	where    func(*twinquery.Condition) lister[T] // nil, or the records a condition may match (indexes)
	doc      func(*T) map[string]any
	fields   map[string]bool
	from     string
}

func (k kind[T]) fetch(ctx context.Context, id string) (T, error) {
	rec, err := k.get(ctx, id)
	if fault.Is(err, fault.NotFound) {
		return rec, fault.New(fault.NotFound, "%s %q does not exist", k.noun, id)
	}
	return rec, err
}

// maxPutAttempts bounds retries when a concurrent writer changes a record
// between our read and our conditional write (only when the caller gave no
// If-Match of its own).
const maxPutAttempts = 5

func (k kind[T]) put(ctx context.Context, now func() time.Time, rec T, ifMatch string, createOnly bool) (T, error) {
	var zero T
	if err := k.validate(&rec); err != nil {
		return zero, err
	}
	want := normalizeETag(ifMatch)
	for attempt := 0; ; attempt++ {
		out, before, err := k.tryPut(ctx, now(), rec, want, createOnly)
		if err == nil {
			k.changed(ctx, out, before)
		}
		retry := want == "" && !createOnly && (fault.Is(err, fault.Conflict) || fault.Is(err, fault.PreconditionFailed))
		if !retry || attempt+1 == maxPutAttempts {
			return out, err
		}
	}
}

// changed tells the auditor of a record written over one whose etag was
// before ("" when it was created).
func (k kind[T]) changed(ctx context.Context, rec T, before string) {
	if k.auditor == nil {
		return
	}
	action := "update"
	if before == "" {
		action = "create"
	}
	k.auditor.Changed(ctx, Change{Kind: k.audit, ID: k.id(&rec), Action: action, ETagBefore: before, ETagAfter: k.settings(&rec).ETag})
}

// tryPut writes rec once and returns it with the etag of the record it
// replaced ("" when it created one).
func (k kind[T]) tryPut(ctx context.Context, now time.Time, rec T, want string, createOnly bool) (T, string, error) {
	var zero T
	id := k.id(&rec)
	set := k.settings(&rec)
	stored, err := k.get(ctx, id)
	switch {
	case fault.Is(err, fault.NotFound):
		if want != "" && want != "*" {
			return zero, "", fault.New(fault.PreconditionFailed, "%s %q does not exist, so If-Match %q cannot match", k.noun, id, want)
		}
		if err := fillKeys(&set.Attestation, nil); err != nil {
			return zero, "", err
		}
		set.Created, set.Updated, set.ETag = now, now, newETag()
		if err := k.create(ctx, rec); err != nil {
			if fault.Is(err, fault.Conflict) {
				return zero, "", fault.New(fault.Conflict, "%s %q already exists", k.noun, id)
			}
			return zero, "", err
		}
		return rec, "", nil
	case err != nil:
		return zero, "", err
	}
	if createOnly {
		return zero, "", fault.New(fault.Conflict, "%s %q already exists", k.noun, id)
	}
	old := k.settings(&stored)
	if want != "" && want != "*" && want != old.ETag {
		return zero, "", fault.New(fault.PreconditionFailed, "If-Match %q does not match the current etag of %s %q", want, k.noun, id)
	}
	if err := fillKeys(&set.Attestation, &old.Attestation); err != nil {
		return zero, "", err
	}
	set.Created, set.Updated, set.ETag = old.Created, now, newETag()
	if err := k.update(ctx, rec, old.ETag); err != nil {
		return zero, "", err
	}
	return rec, old.ETag, nil
}

func (k kind[T]) remove(ctx context.Context, id, ifMatch string) error {
	want := normalizeETag(ifMatch)
	if want == "*" {
		want = ""
	}
	before := want
	if before == "" && k.auditor != nil {
		if rec, err := k.get(ctx, id); err == nil { // for the audit log only
			before = k.settings(&rec).ETag
		}
	}
	err := k.del(ctx, id, want)
	if err == nil && k.auditor != nil {
		k.auditor.Changed(ctx, Change{Kind: k.audit, ID: id, Action: "delete", ETagBefore: before})
	}
	switch {
	case fault.Is(err, fault.NotFound):
		return fault.New(fault.NotFound, "%s %q does not exist", k.noun, id)
	case fault.Is(err, fault.PreconditionFailed):
		return fault.New(fault.PreconditionFailed, "If-Match %q does not match the current etag of %s %q", want, k.noun, id)
	}
	return err
}

// normalizeETag turns an If-Match value as clients send it (quoted, unquoted,
// weak, "*") into the bare etag, "*", or "" for none.
func normalizeETag(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}

func newETag() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
