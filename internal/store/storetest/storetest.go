// Package storetest is the conformance suite every Usher store passes. A
// backend's test calls Run with a function that opens a fresh, empty store;
// passing it is what makes a backend usable.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/instance"
)

// Store is everything a backend implements.
type Store interface {
	dps.Store
	access.Store
	instance.Store
	hub.MessageStore
	hub.RegistryStore
	hub.ConfigurationStore
}

// Run runs the suite. open returns a new empty store; it is called once per
// subtest.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"enrollment/round trip", enrollmentRoundTrip},
		{"enrollment/case-insensitive ids", caseInsensitive},
		{"enrollment/create conflict", createConflict},
		{"enrollment/conditional update", conditionalUpdate},
		{"enrollment/conditional delete", conditionalDelete},
		{"enrollment/list order and paging", listPaging},
		{"enrollment/concurrent conditional updates", concurrentUpdates},
		{"enrollment/index for queries", enrollmentIndex},
		{"group/round trip and list", groupRoundTrip},
		{"registration/put list delete", registrations},
		{"operation/put with record, get, expire", operations},
		{"policy/crud", policies},
		{"setting/first writer wins", settings},
		{"hub/registry", hubRegistry},
		{"message/bounded log followed by sequence", messageLog},
		{"configuration/crud and device deployments", configurations},
		{"audit/append, query, prune", auditLog},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var t0 = time.Date(2026, 11, 25, 21, 23, 36, 239_000_000, time.UTC)

func sampleEnrollment(id string) dps.Enrollment {
	return dps.Enrollment{
		RegistrationID:            id,
		DeviceID:                  "dev-" + id,
		OptionalDeviceInformation: map[string]any{"k": "v"},
		Settings: dps.Settings{
			Attestation: dps.Attestation{Type: dps.SymmetricKey, PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2Nzg=", SecondaryKey: "c2Vjb25kYXJ5LWtleS0xMjM0NTY="},
			IoTEdge:     true,
			InitialTwin: &dps.InitialTwin{
				Tags:    map[string]any{"environment": "test", "n": json.Number("3"), "nested": map[string]any{"a": []any{json.Number("1"), "x"}}},
				Desired: map[string]any{"telemetryInterval": json.Number("30.5")},
			},
			ProvisioningStatus: dps.Enabled,
			ReprovisionPolicy:  &dps.ReprovisionPolicy{UpdateHubAssignment: true},
			AllocationPolicy:   "hashed",
			IoTHubs:            []string{"hub.example"},
			CustomAllocation:   &dps.CustomAllocation{WebhookURL: "https://hook.example/x", APIVersion: "2019-03-31"},
			ETag:               "e1",
			Created:            t0,
			Updated:            t0.Add(time.Second),
		},
	}
}

func ctx() context.Context { return context.Background() }

func mustNil(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantKind(t *testing.T, err error, k fault.Kind, what string) {
	t.Helper()
	if !fault.Is(err, k) {
		t.Fatalf("%s: got %v, want a %v fault", what, err, k)
	}
}

func enrollmentRoundTrip(t *testing.T, s Store) {
	want := sampleEnrollment("Dev-1")
	mustNil(t, s.CreateEnrollment(ctx(), want), "create")
	got, err := s.Enrollment(ctx(), "Dev-1")
	mustNil(t, err, "get")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip changed the enrollment (-want +got):\n%s", diff)
	}
	_, err = s.Enrollment(ctx(), "nope")
	wantKind(t, err, fault.NotFound, "get missing")
}

func caseInsensitive(t *testing.T, s Store) {
	mustNil(t, s.CreateEnrollment(ctx(), sampleEnrollment("MixedCase")), "create")
	got, err := s.Enrollment(ctx(), "mixedcase")
	mustNil(t, err, "get by lower case")
	if got.RegistrationID != "MixedCase" {
		t.Errorf("registrationId = %q, want the spelling it was created with", got.RegistrationID)
	}
	wantKind(t, s.CreateEnrollment(ctx(), sampleEnrollment("MIXEDCASE")), fault.Conflict, "create with other case")
}

func createConflict(t *testing.T, s Store) {
	mustNil(t, s.CreateEnrollment(ctx(), sampleEnrollment("a")), "create")
	wantKind(t, s.CreateEnrollment(ctx(), sampleEnrollment("a")), fault.Conflict, "second create")
}

func conditionalUpdate(t *testing.T, s Store) {
	e := sampleEnrollment("a")
	mustNil(t, s.CreateEnrollment(ctx(), e), "create")
	e.ETag, e.DeviceID = "e2", "changed"
	wantKind(t, s.UpdateEnrollment(ctx(), e, "stale"), fault.PreconditionFailed, "update with stale etag")
	got, _ := s.Enrollment(ctx(), "a")
	if got.DeviceID != "dev-a" {
		t.Fatalf("a refused update changed the record: deviceId %q", got.DeviceID)
	}
	mustNil(t, s.UpdateEnrollment(ctx(), e, "e1"), "update with current etag")
	got, _ = s.Enrollment(ctx(), "a")
	if got.DeviceID != "changed" || got.ETag != "e2" {
		t.Fatalf("after update: deviceId %q etag %q", got.DeviceID, got.ETag)
	}
	e.ETag = "e3"
	mustNil(t, s.UpdateEnrollment(ctx(), e, ""), "unconditional update")
	wantKind(t, s.UpdateEnrollment(ctx(), sampleEnrollment("missing"), ""), fault.NotFound, "update missing")
}

func conditionalDelete(t *testing.T, s Store) {
	mustNil(t, s.CreateEnrollment(ctx(), sampleEnrollment("a")), "create")
	wantKind(t, s.DeleteEnrollment(ctx(), "a", "stale"), fault.PreconditionFailed, "delete stale")
	mustNil(t, s.DeleteEnrollment(ctx(), "A", "e1"), "delete current")
	wantKind(t, s.DeleteEnrollment(ctx(), "a", ""), fault.NotFound, "delete again")
}

func listPaging(t *testing.T, s Store) {
	for _, id := range []string{"c", "A", "b", "D", "e"} {
		mustNil(t, s.CreateEnrollment(ctx(), sampleEnrollment(id)), "create "+id)
	}
	var got []string
	after := ""
	for {
		page, err := s.Enrollments(ctx(), after, 2)
		mustNil(t, err, "list")
		if len(page) > 2 {
			t.Fatalf("page of %d items, limit 2", len(page))
		}
		for _, e := range page {
			got = append(got, e.RegistrationID)
		}
		if len(page) < 2 {
			break
		}
		after = dps.IDKey(page[len(page)-1].RegistrationID)
	}
	if diff := cmp.Diff([]string{"A", "b", "c", "D", "e"}, got); diff != "" {
		t.Errorf("list order (-want +got):\n%s", diff)
	}
}

// concurrentUpdates races conditional updates: exactly one writer per etag
// generation may win.
func concurrentUpdates(t *testing.T, s Store) {
	mustNil(t, s.CreateEnrollment(ctx(), sampleEnrollment("race")), "create")
	const writers = 8
	var wg sync.WaitGroup
	wins := make(chan int, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			e := sampleEnrollment("race")
			e.ETag = fmt.Sprintf("w%d", i)
			if err := s.UpdateEnrollment(ctx(), e, "e1"); err == nil {
				wins <- i
			} else if !fault.Is(err, fault.PreconditionFailed) {
				t.Errorf("writer %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d writers won the same etag generation, want exactly 1", n)
	}
}

func groupRoundTrip(t *testing.T, s Store) {
	g := dps.Group{ID: "Group-1", Settings: sampleEnrollment("x").Settings}
	mustNil(t, s.CreateGroup(ctx(), g), "create")
	got, err := s.Group(ctx(), "group-1")
	mustNil(t, err, "get")
	if diff := cmp.Diff(g, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	g.ETag = "e2"
	mustNil(t, s.UpdateGroup(ctx(), g, "e1"), "update")
	list, err := s.Groups(ctx(), "", 10)
	mustNil(t, err, "list")
	if len(list) != 1 || list[0].ETag != "e2" {
		t.Fatalf("list = %+v", list)
	}
	wantKind(t, s.DeleteGroup(ctx(), "GROUP-1", "e1"), fault.PreconditionFailed, "delete stale")
	mustNil(t, s.DeleteGroup(ctx(), "GROUP-1", "e2"), "delete")
	_, err = s.Group(ctx(), "group-1")
	wantKind(t, err, fault.NotFound, "get deleted")
}

func registrations(t *testing.T, s Store) {
	for i, id := range []string{"r3", "R1", "r2"} {
		r := dps.Registration{RegistrationID: id, GroupID: "G", DeviceID: id, AssignedHub: "hub.example", Status: dps.Assigned,
			Substatus: "initialAssignment", ETag: fmt.Sprint(i), Created: t0, Updated: t0, Payload: map[string]any{"a": json.Number("1")}}
		mustNil(t, s.PutRegistration(ctx(), r), "put")
	}
	mustNil(t, s.PutRegistration(ctx(), dps.Registration{RegistrationID: "solo", Status: dps.Assigned, ETag: "x", Created: t0, Updated: t0}), "put individual")
	list, err := s.Registrations(ctx(), "g", "", 10)
	mustNil(t, err, "list group")
	var ids []string
	for _, r := range list {
		ids = append(ids, r.RegistrationID)
	}
	if diff := cmp.Diff([]string{"R1", "r2", "r3"}, ids); diff != "" {
		t.Errorf("group registrations (-want +got):\n%s", diff)
	}
	got, err := s.Registration(ctx(), "r1")
	mustNil(t, err, "get")
	if got.Payload["a"] != json.Number("1") {
		t.Errorf("payload = %v", got.Payload)
	}
	r := got
	r.ETag, r.Status = "new", dps.Failed
	mustNil(t, s.PutRegistration(ctx(), r), "replace")
	wantKind(t, s.DeleteRegistration(ctx(), "r1", "1"), fault.PreconditionFailed, "delete stale")
	mustNil(t, s.DeleteRegistration(ctx(), "r1", "new"), "delete")
	_, err = s.Registration(ctx(), "r1")
	wantKind(t, err, fault.NotFound, "get deleted")
}

func operations(t *testing.T, s Store) {
	rec := dps.Registration{RegistrationID: "dev-1", GroupID: "G", DeviceID: "dev-1", AssignedHub: "hub.example", Status: dps.Assigned,
		ETag: "e1", Created: t0, Updated: t0}
	old := dps.Operation{ID: "5.old", RegistrationID: "dev-1", Status: dps.Assigned, Registration: rec, Created: t0.Add(-48 * time.Hour)}
	mustNil(t, s.PutOperation(ctx(), old, nil), "put operation without record")
	_, err := s.Registration(ctx(), "dev-1")
	wantKind(t, err, fault.NotFound, "record after an operation without one")
	op := dps.Operation{ID: "5.new", RegistrationID: "dev-1", Status: dps.Assigned, Registration: rec, Created: t0}
	mustNil(t, s.PutOperation(ctx(), op, &rec), "put operation with record")
	got, err := s.Operation(ctx(), "5.new")
	mustNil(t, err, "get operation")
	if diff := cmp.Diff(op, got); diff != "" {
		t.Errorf("operation (-want +got):\n%s", diff)
	}
	gotRec, err := s.Registration(ctx(), "DEV-1")
	mustNil(t, err, "record written with the operation")
	if gotRec.ETag != "e1" || gotRec.AssignedHub != "hub.example" {
		t.Errorf("record = %+v", gotRec)
	}
	n, err := s.DeleteOperationsBefore(ctx(), t0.Add(-time.Hour))
	mustNil(t, err, "expire")
	if n != 1 {
		t.Errorf("expired %d operations, want 1", n)
	}
	_, err = s.Operation(ctx(), "5.old")
	wantKind(t, err, fault.NotFound, "expired operation")
	_, err = s.Operation(ctx(), "5.new")
	mustNil(t, err, "kept operation")
}

func policies(t *testing.T, s Store) {
	p := access.Policy{Scope: access.DPS, Name: "Reader", PrimaryKey: "a2V5MQ==", SecondaryKey: "a2V5Mg==", Rights: access.EnrollmentRead}
	mustNil(t, s.CreatePolicy(ctx(), p), "create")
	wantKind(t, s.CreatePolicy(ctx(), p), fault.Conflict, "create again")
	hub := p
	hub.Scope = access.Hub
	mustNil(t, s.CreatePolicy(ctx(), hub), "same name in the other scope")
	got, err := s.Policy(ctx(), access.DPS, "reader")
	mustNil(t, err, "get")
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("policy round trip (-want +got):\n%s", diff)
	}
	p.Rights |= access.EnrollmentWrite
	mustNil(t, s.UpdatePolicy(ctx(), p), "update")
	list, err := s.Policies(ctx(), access.DPS)
	mustNil(t, err, "list")
	if len(list) != 1 || list[0].Rights != p.Rights {
		t.Fatalf("list = %+v", list)
	}
	mustNil(t, s.DeletePolicy(ctx(), access.DPS, "READER"), "delete")
	_, err = s.Policy(ctx(), access.DPS, "reader")
	wantKind(t, err, fault.NotFound, "get deleted")
	wantKind(t, s.UpdatePolicy(ctx(), p), fault.NotFound, "update deleted")
}

func settings(t *testing.T, s Store) {
	_, err := s.Setting(ctx(), "k")
	wantKind(t, err, fault.NotFound, "unset")
	v, err := s.InitSetting(ctx(), "k", "first")
	mustNil(t, err, "init")
	if v != "first" {
		t.Fatalf("init returned %q", v)
	}
	v, _ = s.InitSetting(ctx(), "k", "second")
	if v != "first" {
		t.Fatalf("second init returned %q, want the first value", v)
	}
	mustNil(t, s.PutSetting(ctx(), "k", "third"), "put")
	if v, _ := s.Setting(ctx(), "k"); v != "third" {
		t.Fatalf("after put: %q", v)
	}
}
