package metrics

import (
	"context"
	"time"

	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/dps"
)

// DPSStore returns s timed by operation (enrollment.read, group.list,
// operation.put, …): the store calls registration and the service API
// make. With a nil *Metrics it returns s itself. Methods dps.Store gains
// later pass through untimed.
func (m *Metrics) DPSStore(s dps.Store) dps.Store {
	if m == nil {
		return s
	}
	return &dpsStore{Store: s, m: m}
}

type dpsStore struct {
	dps.Store
	m *Metrics
}

// timed runs fn and records its duration under op.
func timed[T any](m *Metrics, op string, fn func() (T, error)) (T, error) {
	start := time.Now()
	v, err := fn()
	m.StoreOperation(op, time.Since(start))
	return v, err
}

func timedErr(m *Metrics, op string, fn func() error) error {
	_, err := timed(m, op, func() (struct{}, error) { return struct{}{}, fn() })
	return err
}

func (s *dpsStore) Enrollment(ctx context.Context, id string) (dps.Enrollment, error) {
	return timed(s.m, "enrollment.read", func() (dps.Enrollment, error) { return s.Store.Enrollment(ctx, id) })
}

func (s *dpsStore) CreateEnrollment(ctx context.Context, e dps.Enrollment) error {
	return timedErr(s.m, "enrollment.create", func() error { return s.Store.CreateEnrollment(ctx, e) })
}

func (s *dpsStore) UpdateEnrollment(ctx context.Context, e dps.Enrollment, etag string) error {
	return timedErr(s.m, "enrollment.update", func() error { return s.Store.UpdateEnrollment(ctx, e, etag) })
}

func (s *dpsStore) DeleteEnrollment(ctx context.Context, id, etag string) error {
	return timedErr(s.m, "enrollment.delete", func() error { return s.Store.DeleteEnrollment(ctx, id, etag) })
}

func (s *dpsStore) Enrollments(ctx context.Context, after string, limit int) ([]dps.Enrollment, error) {
	return timed(s.m, "enrollment.list", func() ([]dps.Enrollment, error) { return s.Store.Enrollments(ctx, after, limit) })
}

func (s *dpsStore) Group(ctx context.Context, id string) (dps.Group, error) {
	return timed(s.m, "group.read", func() (dps.Group, error) { return s.Store.Group(ctx, id) })
}

func (s *dpsStore) CreateGroup(ctx context.Context, g dps.Group) error {
	return timedErr(s.m, "group.create", func() error { return s.Store.CreateGroup(ctx, g) })
}

func (s *dpsStore) UpdateGroup(ctx context.Context, g dps.Group, etag string) error {
	return timedErr(s.m, "group.update", func() error { return s.Store.UpdateGroup(ctx, g, etag) })
}

func (s *dpsStore) DeleteGroup(ctx context.Context, id, etag string) error {
	return timedErr(s.m, "group.delete", func() error { return s.Store.DeleteGroup(ctx, id, etag) })
}

func (s *dpsStore) Groups(ctx context.Context, after string, limit int) ([]dps.Group, error) {
	return timed(s.m, "group.list", func() ([]dps.Group, error) { return s.Store.Groups(ctx, after, limit) })
}

func (s *dpsStore) Registration(ctx context.Context, id string) (dps.Registration, error) {
	return timed(s.m, "registration.read", func() (dps.Registration, error) { return s.Store.Registration(ctx, id) })
}

func (s *dpsStore) PutRegistration(ctx context.Context, r dps.Registration) error {
	return timedErr(s.m, "registration.put", func() error { return s.Store.PutRegistration(ctx, r) })
}

func (s *dpsStore) DeleteRegistration(ctx context.Context, id, etag string) error {
	return timedErr(s.m, "registration.delete", func() error { return s.Store.DeleteRegistration(ctx, id, etag) })
}

func (s *dpsStore) Registrations(ctx context.Context, groupID, after string, limit int) ([]dps.Registration, error) {
	return timed(s.m, "registration.list", func() ([]dps.Registration, error) {
		return s.Store.Registrations(ctx, groupID, after, limit)
	})
}

func (s *dpsStore) PutOperation(ctx context.Context, op dps.Operation, record *dps.Registration) error {
	return timedErr(s.m, "operation.put", func() error { return s.Store.PutOperation(ctx, op, record) })
}

func (s *dpsStore) Operation(ctx context.Context, id string) (dps.Operation, error) {
	return timed(s.m, "operation.read", func() (dps.Operation, error) { return s.Store.Operation(ctx, id) })
}

func (s *dpsStore) DeleteOperationsBefore(ctx context.Context, t time.Time) (int, error) {
	return timed(s.m, "operation.expire", func() (int, error) { return s.Store.DeleteOperationsBefore(ctx, t) })
}

// AuditStore returns s timed by operation (audit.append, audit.query,
// audit.prune); with a nil *Metrics, s itself.
func (m *Metrics) AuditStore(s audit.Store) audit.Store {
	if m == nil {
		return s
	}
	return &auditStore{s: s, m: m}
}

type auditStore struct {
	s audit.Store
	m *Metrics
}

func (a *auditStore) AppendAudit(ctx context.Context, entries []audit.Entry) error {
	return timedErr(a.m, "audit.append", func() error { return a.s.AppendAudit(ctx, entries) })
}

func (a *auditStore) AuditEntries(ctx context.Context, q audit.Query) ([]audit.Entry, error) {
	return timed(a.m, "audit.query", func() ([]audit.Entry, error) { return a.s.AuditEntries(ctx, q) })
}

func (a *auditStore) PruneAudit(ctx context.Context, before time.Time, keep int) (int, error) {
	return timed(a.m, "audit.prune", func() (int, error) { return a.s.PruneAudit(ctx, before, keep) })
}
