package seed_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/seed"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

// world is a SQLite store with the services a seed file is applied
// through.
type world struct {
	db      *sqlite.DB
	dps     *dps.Service
	hub     *hub.Service
	targets seed.Targets
}

func newWorld(t *testing.T) *world {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := &world{db: db, dps: dps.NewService(db, dps.Options{}),
		hub: hub.NewService(db, hub.Options{HostName: "hub.test", Bus: hub.NewBus(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})}
	w.targets = seed.Targets{Policies: db, Enrollments: w.dps, Configurations: w.hub}
	return w
}

func (w *world) apply(t *testing.T, f *seed.File) []seed.Change {
	t.Helper()
	changes, err := seed.Apply(context.Background(), f, w.targets)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return changes
}

// state is every etag and key the example file touches, to see that a
// second start changes nothing.
func (w *world) state(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, id := range []string{"ci-device-001", "ci-device-disabled"} {
		e, err := w.dps.Enrollment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		out["enrollment "+id] = e.ETag + " " + e.Attestation.PrimaryKey + " " + e.Attestation.SecondaryKey
	}
	g, err := w.dps.Group(ctx, "ci-edge-devices")
	if err != nil {
		t.Fatal(err)
	}
	out["group"] = g.ETag + " " + g.Attestation.PrimaryKey
	c, err := w.hub.Configuration(ctx, "ci-edge-baseline")
	if err != nil {
		t.Fatal(err)
	}
	out["configuration"] = c.ETag
	for _, s := range []struct {
		scope access.Scope
		name  string
	}{{access.DPS, "ci-pipeline"}, {access.Hub, "ci-service"}} {
		p, err := w.db.Policy(ctx, s.scope, s.name)
		if err != nil {
			t.Fatal(err)
		}
		out["policy "+s.name] = fmt.Sprint(p)
	}
	return out
}

func exampleFile(t *testing.T) (*seed.File, string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "seed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, string(data)), string(data)
}

func actions(changes []seed.Change) map[seed.Action]int {
	out := map[seed.Action]int{}
	for _, c := range changes {
		out[c.Action]++
	}
	return out
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	f, text := exampleFile(t)
	// A record the file does not name, written before the first start.
	other, err := w.dps.CreateEnrollment(ctx, dps.Enrollment{RegistrationID: "not-in-the-file", Settings: dps.Settings{Attestation: dps.Attestation{Type: dps.SymmetricKey}}})
	if err != nil {
		t.Fatal(err)
	}

	if got := actions(w.apply(t, f)); got[seed.Created] != 6 || len(got) != 1 {
		t.Fatalf("first apply: %v, want 6 created", got)
	}
	first := w.state(t)

	t.Run("ok/fixed keys are used exactly", func(t *testing.T) {
		e, _ := w.dps.Enrollment(ctx, "ci-device-001")
		if e.Attestation.PrimaryKey != f.Enrollments[0].Attestation.PrimaryKey || e.InitialTwin.Tags["environment"] != "test" {
			t.Errorf("enrollment = %+v, want the file's keys and tags", e)
		}
		p, _ := w.db.Policy(ctx, access.DPS, "ci-pipeline")
		if p.PrimaryKey != f.DPSPolicies[0].PrimaryKey || p.SecondaryKey == "" || p.Rights != access.EnrollmentRead|access.EnrollmentWrite|access.RegistrationStatusRead {
			t.Errorf("policy = %+v, want the file's primary key and rights and a generated secondary key", p)
		}
	})

	t.Run("ok/applying again changes nothing", func(t *testing.T) {
		again := mustParse(t, text)
		if got := actions(w.apply(t, again)); got[seed.Unchanged] != 6 || len(got) != 1 {
			t.Errorf("second apply: %v, want 6 unchanged", got)
		}
		if diff := cmp.Diff(first, w.state(t)); diff != "" {
			t.Errorf("state after the second apply (-first +second):\n%s", diff)
		}
	})

	t.Run("ok/records not in the file are left alone", func(t *testing.T) {
		e, err := w.dps.Enrollment(ctx, "not-in-the-file")
		if err != nil || e.ETag != other.ETag {
			t.Errorf("enrollment not in the file: %+v, %v; want it untouched (etag %s)", e, err, other.ETag)
		}
	})

	t.Run("ok/a changed file updates what differs", func(t *testing.T) {
		changed := strings.NewReplacer(
			"priority: 10", "priority: 20",
			"telemetryInterval: 30", "telemetryInterval: 60",
			"rights: RegistryRead, ServiceConnect", "rights: RegistryRead",
		).Replace(text)
		got := w.apply(t, mustParse(t, changed))
		want := map[string]seed.Action{"ci-pipeline": seed.Unchanged, "ci-service": seed.Updated, "ci-edge-devices": seed.Updated,
			"ci-device-001": seed.Unchanged, "ci-device-disabled": seed.Unchanged, "ci-edge-baseline": seed.Updated}
		for _, c := range got {
			if want[c.ID] != c.Action {
				t.Errorf("%s %s: %s, want %s", c.Kind, c.ID, c.Action, want[c.ID])
			}
		}
		now := w.state(t)
		if now["enrollment ci-device-disabled"] != first["enrollment ci-device-disabled"] {
			t.Errorf("generated keys or etag of ci-device-disabled changed: %s → %s", first["enrollment ci-device-disabled"], now["enrollment ci-device-disabled"])
		}
		g, _ := w.dps.Group(ctx, "ci-edge-devices")
		if fmt.Sprint(g.InitialTwin.Desired["telemetryInterval"]) != "60" {
			t.Errorf("group desired = %v, want telemetryInterval 60", g.InitialTwin.Desired)
		}
		c, _ := w.hub.Configuration(ctx, "ci-edge-baseline")
		if c.Priority != 20 {
			t.Errorf("configuration priority = %d, want 20", c.Priority)
		}
	})

	t.Run("ok/changed content replaces the configuration", func(t *testing.T) {
		changed := strings.Replace(text, "SendInterval: 5\n", "SendInterval: 10\n", 1)
		for _, c := range w.apply(t, mustParse(t, changed)) {
			if c.ID == "ci-edge-baseline" && c.Action != seed.Replaced {
				t.Errorf("configuration: %s, want replaced", c.Action)
			}
		}
		c, err := w.hub.Configuration(ctx, "ci-edge-baseline")
		if err != nil {
			t.Fatal(err)
		}
		if v := c.Content.ModulesContent["tempsensor"]["properties.desired"].(map[string]any)["SendInterval"]; fmt.Sprint(v) != "10" {
			t.Errorf("tempsensor SendInterval = %v, want 10", v)
		}
	})
}

// TestApplyConfigurationLimit: a file that would take the hub past its
// limit of configurations fails before it writes anything.
func TestApplyConfigurationLimit(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	for i := range hub.MaxConfigurations {
		c := hub.Configuration{ID: fmt.Sprintf("existing-%03d", i), Content: hub.ConfigurationContent{DeviceContent: map[string]any{"properties.desired.a": 1.0}}}
		if _, err := w.hub.PutConfiguration(ctx, c, ""); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := exampleFile(t)
	_, err := seed.Apply(ctx, f, w.targets)
	if err == nil || !strings.Contains(err.Error(), "the limit is 100, so nothing was written") {
		t.Fatalf("Apply = %v, want the configuration limit", err)
	}
	if _, err := w.db.Policy(ctx, access.DPS, "ci-pipeline"); !fault.Is(err, fault.NotFound) {
		t.Errorf("policy ci-pipeline: %v, want NotFound (nothing written)", err)
	}
	if _, err := w.dps.Group(ctx, "ci-edge-devices"); !fault.Is(err, fault.NotFound) {
		t.Errorf("group: %v, want NotFound (nothing written)", err)
	}
}

// TestApplyOwnerPolicy: a file may fix the keys of the owner policy that
// first start created, so a pipeline knows its connection string.
func TestApplyOwnerPolicy(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	owner, err := access.NewPolicy(access.DPS, access.DPSOwner, access.AllRights(access.DPS))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.db.CreatePolicy(ctx, owner); err != nil {
		t.Fatal(err)
	}
	const key = "uS9GCGoziXQ6t8mSI4aLYaQ/fCplpn9ayZh6CNSTo7w="
	text := "version: 1\ndps:\n  policies:\n    - keyName: " + access.DPSOwner + "\n      rights: [ServiceConfig, EnrollmentRead, EnrollmentWrite, RegistrationStatusRead, RegistrationStatusWrite]\n      primaryKey: " + key + "\n"
	for i, want := range []seed.Action{seed.Updated, seed.Unchanged} {
		got := w.apply(t, mustParse(t, text))
		if len(got) != 1 || got[0].Action != want {
			t.Errorf("apply %d: %+v, want %s", i+1, got, want)
		}
	}
	p, err := w.db.Policy(ctx, access.DPS, access.DPSOwner)
	if err != nil {
		t.Fatal(err)
	}
	if p.PrimaryKey != key || p.SecondaryKey != owner.SecondaryKey || p.Rights != owner.Rights {
		t.Errorf("owner policy = %+v, want the file's primary key, the generated secondary key and all rights", p)
	}
}
