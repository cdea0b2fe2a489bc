package seed

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

// Enrollments is what Apply needs of the enrollment use cases; *dps.Service
// has it. Errors as dps.Service documents them.
type Enrollments interface {
	Enrollment(ctx context.Context, id string) (dps.Enrollment, error)
	CreateEnrollment(ctx context.Context, e dps.Enrollment) (dps.Enrollment, error)
	PutEnrollment(ctx context.Context, e dps.Enrollment, ifMatch string) (dps.Enrollment, error)
	Group(ctx context.Context, id string) (dps.Group, error)
	CreateGroup(ctx context.Context, g dps.Group) (dps.Group, error)
	PutGroup(ctx context.Context, g dps.Group, ifMatch string) (dps.Group, error)
}

// Configurations is what Apply needs of the hub; *hub.Service has it.
type Configurations interface {
	Configuration(ctx context.Context, id string) (hub.ConfigurationReport, error)
	Configurations(ctx context.Context, top int) ([]hub.ConfigurationReport, error)
	PutConfiguration(ctx context.Context, c hub.Configuration, ifMatch string) (hub.ConfigurationReport, error)
	DeleteConfiguration(ctx context.Context, id, ifMatch string) error
}

var (
	_ Enrollments    = (*dps.Service)(nil)
	_ Configurations = (*hub.Service)(nil)
)

// Targets are the services a seed file is applied through.
type Targets struct {
	Policies       access.Store
	Enrollments    Enrollments
	Configurations Configurations
}

// Action is what Apply did with one record.
type Action string

// Actions.
const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
	// Replaced: a configuration whose content changed (content is
	// immutable in IoT Hub) was deleted and created again.
	Replaced Action = "replaced"
)

// Record kinds a Change names.
const (
	KindDPSPolicy     = "dps policy"
	KindHubPolicy     = "hub policy"
	KindEnrollment    = "enrollment"
	KindGroup         = "enrollment group"
	KindConfiguration = "configuration"
)

// Change is what happened to one record of the file.
type Change struct {
	Kind   string
	ID     string
	Action Action
	// Detail says more for the audit log (a policy's rights); never keys.
	Detail string
}

// maxAttempts bounds how often one record is read and written again when
// another writer (a second node starting with the same file) got there
// between the read and the write.
const maxAttempts = 3

// Apply brings the targets in line with f: records missing are created,
// records that differ are updated, equal records are left alone (no write,
// so no new etag), and records the file does not name are not touched. It
// checks what it can before the first write (the hub's limit on
// configurations); a database failure midway leaves the records written so
// far, and applying the same file again completes the job. It returns
// every record's change, in the file's order: policies, groups,
// enrollments, configurations.
func Apply(ctx context.Context, f *File, t Targets) ([]Change, error) {
	if err := checkConfigurationLimit(ctx, f, t.Configurations); err != nil {
		return nil, err
	}
	var out []Change
	step := func(kind, id, detail string, ensure func(context.Context) (Action, error)) error {
		act, err := retry(ctx, ensure)
		if err != nil {
			return fmt.Errorf("seed file %s: %s %q: %w", f.Name, kind, id, err)
		}
		out = append(out, Change{Kind: kind, ID: id, Action: act, Detail: detail})
		return nil
	}
	for _, p := range append(append([]access.Policy(nil), f.DPSPolicies...), f.HubPolicies...) {
		kind := KindDPSPolicy
		if p.Scope == access.Hub {
			kind = KindHubPolicy
		}
		if err := step(kind, p.Name, "rights "+p.Rights.String(), func(ctx context.Context) (Action, error) { return ensurePolicy(ctx, t.Policies, p) }); err != nil {
			return out, err
		}
	}
	for _, g := range f.Groups {
		if err := step(KindGroup, g.ID, "", func(ctx context.Context) (Action, error) { return ensureGroup(ctx, t.Enrollments, g) }); err != nil {
			return out, err
		}
	}
	for _, e := range f.Enrollments {
		if err := step(KindEnrollment, e.RegistrationID, "", func(ctx context.Context) (Action, error) { return ensureEnrollment(ctx, t.Enrollments, e) }); err != nil {
			return out, err
		}
	}
	for _, c := range f.Configurations {
		if err := step(KindConfiguration, c.ID, "", func(ctx context.Context) (Action, error) { return ensureConfiguration(ctx, t.Configurations, c) }); err != nil {
			return out, err
		}
	}
	return out, nil
}

// retry runs ensure again when a concurrent writer made its read stale.
func retry(ctx context.Context, ensure func(context.Context) (Action, error)) (Action, error) {
	for attempt := 1; ; attempt++ {
		act, err := ensure(ctx)
		raced := fault.Is(err, fault.Conflict) || fault.Is(err, fault.PreconditionFailed)
		if !raced || attempt == maxAttempts {
			return act, err
		}
	}
}

// checkConfigurationLimit fails before any write when the file's new
// configurations would take the hub past hub.MaxConfigurations.
func checkConfigurationLimit(ctx context.Context, f *File, hubSvc Configurations) error {
	if len(f.Configurations) == 0 {
		return nil
	}
	existing, err := hubSvc.Configurations(ctx, hub.MaxConfigurations)
	if err != nil {
		return fmt.Errorf("seed file %s: reading the hub's configurations: %w", f.Name, err)
	}
	have := map[string]bool{}
	for _, c := range existing {
		have[c.ID] = true
	}
	n := len(existing)
	for _, c := range f.Configurations {
		if !have[c.ID] {
			n++
		}
	}
	if n > hub.MaxConfigurations {
		return &Error{File: f.Name, Msg: fmt.Sprintf("the hub has %d configurations and the file adds %d; the limit is %d, so nothing was written", len(existing), n-len(existing), hub.MaxConfigurations)}
	}
	return nil
}

func ensurePolicy(ctx context.Context, st access.Store, want access.Policy) (Action, error) {
	have, err := st.Policy(ctx, want.Scope, want.Name)
	if fault.Is(err, fault.NotFound) {
		p, err := access.NewPolicy(want.Scope, want.Name, want.Rights)
		if err != nil {
			return "", err
		}
		p.PrimaryKey = orElse(want.PrimaryKey, p.PrimaryKey)
		p.SecondaryKey = orElse(want.SecondaryKey, p.SecondaryKey)
		return Created, st.CreatePolicy(ctx, p)
	}
	if err != nil {
		return "", err
	}
	want.PrimaryKey = orElse(want.PrimaryKey, have.PrimaryKey)
	want.SecondaryKey = orElse(want.SecondaryKey, have.SecondaryKey)
	if want == have {
		return Unchanged, nil
	}
	return Updated, st.UpdatePolicy(ctx, want)
}

// orElse is a unless it is empty, else b.
func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func ensureEnrollment(ctx context.Context, svc Enrollments, want dps.Enrollment) (Action, error) {
	have, err := svc.Enrollment(ctx, want.RegistrationID)
	if fault.Is(err, fault.NotFound) {
		_, err := svc.CreateEnrollment(ctx, want)
		return Created, err
	}
	if err != nil {
		return "", err
	}
	fillKeys(&want.Settings, &have.Settings)
	if same(enrollmentView(want), enrollmentView(have)) {
		return Unchanged, nil
	}
	_, err = svc.PutEnrollment(ctx, want, have.ETag)
	return Updated, err
}

func ensureGroup(ctx context.Context, svc Enrollments, want dps.Group) (Action, error) {
	have, err := svc.Group(ctx, want.ID)
	if fault.Is(err, fault.NotFound) {
		_, err := svc.CreateGroup(ctx, want)
		return Created, err
	}
	if err != nil {
		return "", err
	}
	fillKeys(&want.Settings, &have.Settings)
	if want.ID == have.ID && same(settingsView(want.Settings), settingsView(have.Settings)) {
		return Unchanged, nil
	}
	_, err = svc.PutGroup(ctx, want, have.ETag)
	return Updated, err
}

func ensureConfiguration(ctx context.Context, svc Configurations, want hub.Configuration) (Action, error) {
	r, err := svc.Configuration(ctx, want.ID)
	if fault.Is(err, fault.NotFound) {
		_, err := svc.PutConfiguration(ctx, want, "")
		return Created, err
	}
	if err != nil {
		return "", err
	}
	have := r.Configuration
	if !same(want.Content, have.Content) {
		// IoT Hub never changes a configuration's content; a seed file
		// that does means the deployment it declares is another one.
		if err := svc.DeleteConfiguration(ctx, want.ID, have.ETag); err != nil {
			return "", err
		}
		_, err := svc.PutConfiguration(ctx, want, "")
		return Replaced, err
	}
	if same(configurationView(want), configurationView(have)) {
		return Unchanged, nil
	}
	_, err = svc.PutConfiguration(ctx, want, have.ETag)
	return Updated, err
}

// fillKeys gives want the stored keys it leaves empty, so that omitted keys
// are kept rather than compared.
func fillKeys(want, have *dps.Settings) {
	want.Attestation.PrimaryKey = orElse(want.Attestation.PrimaryKey, have.Attestation.PrimaryKey)
	want.Attestation.SecondaryKey = orElse(want.Attestation.SecondaryKey, have.Attestation.SecondaryKey)
}

// same compares two values as JSON: free-form documents hold json.Number
// and maps, which == cannot compare, and encoding/json sorts map keys.
func same(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// enrollmentView is what an enrollment's comparison looks at: everything
// but its etag and timestamps, with empty collections as absent ones.
func enrollmentView(e dps.Enrollment) any {
	return struct {
		ID, DeviceID string
		Info         map[string]any
		Settings     any
	}{e.RegistrationID, e.DeviceID, emptyAsNil(e.OptionalDeviceInformation), settingsView(e.Settings)}
}

func settingsView(s dps.Settings) any {
	s.ETag = ""
	s.Created, s.Updated = zeroTime, zeroTime
	if len(s.IoTHubs) == 0 {
		s.IoTHubs = nil
	}
	if t := s.InitialTwin; t != nil {
		t = &dps.InitialTwin{Tags: emptyAsNil(t.Tags), Desired: emptyAsNil(t.Desired)}
		if t.Tags == nil && t.Desired == nil {
			t = nil
		}
		s.InitialTwin = t
	}
	return s
}

func configurationView(c hub.Configuration) any {
	c.ETag = ""
	c.Created, c.Updated = zeroTime, zeroTime
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	if len(c.MetricQueries) == 0 {
		c.MetricQueries = nil
	}
	if c.SchemaVersion == "" {
		c.SchemaVersion = "1.0"
	}
	return c
}

var zeroTime time.Time

func emptyAsNil(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return m
}
