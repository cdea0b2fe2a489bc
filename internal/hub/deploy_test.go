package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// deployEnv is a hub over a real store whose clock advances one second per
// reading, so configurations get distinct createdTimeUtc values, and which
// records what each step left in the twins.
type deployEnv struct {
	t     *testing.T
	s     *hub.Service
	db    *sqlite.DB
	bus   *hub.Bus
	steps []deployStep
}

// deployStep is what one step of a scenario left behind: every twin's
// desired properties, desired version and configuration statuses, and each
// configuration's metric results.
type deployStep struct {
	Step    string                    `json:"step"`
	Twins   map[string]twinState      `json:"twins"`
	Metrics map[string]map[string]int `json:"metrics,omitempty"`
}

type twinState struct {
	Desired        map[string]any    `json:"desired"`
	Version        int64             `json:"$version"`
	Configurations map[string]string `json:"configurations,omitempty"`
}

func newDeployEnv(t *testing.T) *deployEnv {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var mu sync.Mutex
	clock := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	bus := hub.NewBus()
	return &deployEnv{t: t, db: db, bus: bus, s: hub.NewService(db, hub.Options{HostName: "hub.usher.test", Bus: bus, Now: now})}
}

func (e *deployEnv) provision(id string, edge bool, tags map[string]any) {
	e.t.Helper()
	k, _ := sas.NewKey(32)
	if _, err := e.s.Provision(context.Background(), hub.ProvisionSpec{DeviceID: id, PrimaryKey: k, SecondaryKey: k, IoTEdge: edge, Tags: tags}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *deployEnv) module(deviceID, moduleID string) {
	e.t.Helper()
	if _, err := e.s.CreateModule(context.Background(), hub.ModuleSpec{DeviceID: deviceID, ID: moduleID}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *deployEnv) put(c hub.Configuration) {
	e.t.Helper()
	if _, err := e.s.PutConfiguration(context.Background(), c, ""); err != nil {
		e.t.Fatalf("create %s: %v", c.ID, err)
	}
}

func (e *deployEnv) retarget(id, condition string) {
	e.t.Helper()
	r, err := e.s.Configuration(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	c := r.Configuration
	c.TargetCondition = condition
	if _, err := e.s.PutConfiguration(context.Background(), c, r.ETag); err != nil {
		e.t.Fatalf("update %s: %v", id, err)
	}
}

func (e *deployEnv) remove(id string) {
	e.t.Helper()
	if err := e.s.DeleteConfiguration(context.Background(), id, "*"); err != nil {
		e.t.Fatalf("delete %s: %v", id, err)
	}
}

func (e *deployEnv) tags(deviceID string, tags map[string]any) {
	e.t.Helper()
	if _, err := e.s.PatchTwin(context.Background(), deviceID, "", hub.TwinPatch{Tags: tags}, ""); err != nil {
		e.t.Fatal(err)
	}
}

func (e *deployEnv) twin(deviceID, moduleID string) hub.Twin {
	e.t.Helper()
	tw, err := e.db.Twin(context.Background(), deviceID, moduleID)
	if err != nil {
		e.t.Fatalf("twin %s/%s: %v", deviceID, moduleID, err)
	}
	return tw
}

// step records the state of every twin and every configuration's metrics.
func (e *deployEnv) step(name string) {
	e.t.Helper()
	ctx := context.Background()
	st := deployStep{Step: name, Twins: map[string]twinState{}, Metrics: map[string]map[string]int{}}
	for _, modules := range []bool{false, true} {
		recs, err := e.db.TwinRecords(ctx, modules, hub.TwinKey{}, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range recs {
			key := r.Twin.DeviceID
			if r.Twin.ModuleID != "" {
				key += "/" + r.Twin.ModuleID
			}
			desired := r.Twin.Desired
			if desired == nil {
				desired = map[string]any{}
			}
			st.Twins[key] = twinState{Desired: desired, Version: r.Twin.DesiredVersion, Configurations: r.Twin.Configurations}
		}
	}
	list, err := e.s.Configurations(ctx, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range list {
		m := map[string]int{}
		for k, v := range c.SystemMetrics.Results {
			m[k] = v
		}
		for k, v := range c.Metrics.Results {
			m["custom."+k] = v
		}
		st.Metrics[c.ID] = m
	}
	e.steps = append(e.steps, st)
}

// golden compares the recorded steps with testdata/deploy/<name>.json.
func (e *deployEnv) golden(name string) {
	e.t.Helper()
	got, err := json.MarshalIndent(e.steps, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "deploy", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		e.t.Errorf("%s differs (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

// edgeBase is a standard deployment: full $edgeAgent and $edgeHub desired
// properties with the given modules and routes, and user module desired
// properties.
func edgeBase(id string, priority int, target string, modules, routes map[string]any, user map[string]map[string]any) hub.Configuration {
	content := map[string]map[string]any{
		hub.EdgeAgent: {"properties.desired": map[string]any{
			"schemaVersion": "1.1",
			"runtime":       map[string]any{"type": "docker", "settings": map[string]any{}},
			"systemModules": map[string]any{
				"edgeAgent": map[string]any{"type": "docker", "settings": map[string]any{"image": "mcr.microsoft.com/azureiotedge-agent:1.5"}},
				"edgeHub":   map[string]any{"type": "docker", "status": "running", "restartPolicy": "always", "settings": map[string]any{"image": "mcr.microsoft.com/azureiotedge-hub:1.5"}},
			},
			"modules": modules,
		}},
		hub.EdgeHub: {"properties.desired": map[string]any{"schemaVersion": "1.1", "routes": routes, "storeAndForwardConfiguration": map[string]any{"timeToLiveSecs": 7200}}},
	}
	for m, desired := range user {
		content[m] = map[string]any{"properties.desired": desired}
	}
	return hub.Configuration{ID: id, Priority: priority, TargetCondition: target, Content: hub.ConfigurationContent{ModulesContent: content}}
}

func dockerModule(image string) map[string]any {
	return map[string]any{"type": "docker", "status": "running", "restartPolicy": "always", "version": "1.0", "settings": map[string]any{"image": image}}
}

func TestDeployBaseAndLayers(t *testing.T) {
	e := newDeployEnv(t)
	e.provision("edge-1", true, map[string]any{"environment": "test"})
	e.provision("edge-2", true, map[string]any{"environment": "prod"})
	e.provision("plain-1", false, map[string]any{"environment": "test"})
	e.module("edge-1", "filter")
	e.module("edge-1", "sensor")
	agent := &recorder{}
	defer e.bus.Attach("edge-1", hub.EdgeAgent, agent)()

	e.put(edgeBase("base", 10, "tags.environment='test'",
		map[string]any{"filter": dockerModule("example/filter:1")},
		map[string]any{"up": "FROM /messages/* INTO $upstream"},
		map[string]map[string]any{"filter": {"threshold": 21}}))
	e.step("base deployment targets edge-1 only")
	if len(agent.patches) != 1 || agent.version != 2 {
		t.Fatalf("edgeAgent pushes after the base: %d, version %d", len(agent.patches), agent.version)
	}

	e.put(hub.Configuration{ID: "layer-sensor", Priority: 20, TargetCondition: "tags.environment='test'", Content: hub.ConfigurationContent{ModulesContent: map[string]map[string]any{
		hub.EdgeAgent: {"properties.desired.modules.sensor": dockerModule("example/sensor:2")},
		hub.EdgeHub:   {"properties.desired.routes.sensorToFilter": "FROM /messages/modules/sensor/* INTO BrokeredEndpoint(\"/modules/filter/inputs/in\")"},
		"sensor":      {"properties.desired.settings": map[string]any{"interval": 5}},
		"filter":      {"properties.desired.layered": true},
	}}})
	e.step("a higher layer merges on top")

	e.put(hub.Configuration{ID: "layer-low", Priority: 5, TargetCondition: "*", Content: hub.ConfigurationContent{ModulesContent: map[string]map[string]any{
		hub.EdgeAgent: {"properties.desired.modules.ignored": dockerModule("example/ignored:1")},
	}}})
	e.step("a layer below the base is only targeted")

	before := len(agent.patches)
	if err := e.s.EvaluateDeployments(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.step("a periodic pass changes nothing")
	if len(agent.patches) != before {
		t.Errorf("a pass without changes pushed %d desired patches", len(agent.patches)-before)
	}
	if last := agent.patches[len(agent.patches)-1]; last["modules"] == nil || len(last) != 1 {
		t.Errorf("the layer reached edgeAgent as %v, want a merge patch of modules only", last)
	}
	e.golden("base-and-layers")
}

func TestDeployPriorityTieNewestWins(t *testing.T) {
	e := newDeployEnv(t)
	e.provision("edge-1", true, map[string]any{"environment": "test"})
	e.put(edgeBase("older", 10, "tags.environment='test'", map[string]any{"a": dockerModule("example/a:1")}, map[string]any{}, nil))
	e.put(edgeBase("newer", 10, "*", map[string]any{"b": dockerModule("example/b:1")}, map[string]any{}, nil))
	e.step("equal priority: the newest createdTimeUtc wins")
	if st := e.twin("edge-1", hub.EdgeAgent).Configurations; st["newer"] != hub.StatusApplied || st["older"] != hub.StatusTargeted {
		t.Errorf("statuses %v", st)
	}
	e.golden("priority-tie")
}

func TestDeployUntargeting(t *testing.T) {
	e := newDeployEnv(t)
	e.provision("edge-1", true, map[string]any{"environment": "test"})
	e.put(edgeBase("test-only", 20, "tags.environment='test'", map[string]any{"t": dockerModule("example/t:1")}, map[string]any{}, nil))
	e.put(edgeBase("test-or-prod", 10, "tags.environment IN ['test', 'prod']", map[string]any{"p": dockerModule("example/p:1")}, map[string]any{}, nil))
	e.step("the higher of two deployments applies")
	e.tags("edge-1", map[string]any{"environment": "prod"})
	e.step("tags change: the device falls to the next-best deployment")
	e.tags("edge-1", map[string]any{"environment": "lab"})
	e.step("nothing targets the device: it keeps its last content")
	e.tags("edge-1", map[string]any{"environment": "test"})
	e.step("back in test: the higher deployment applies again")
	e.retarget("test-only", "tags.environment='nowhere'")
	e.step("a target condition change moves the device too")
	e.golden("untargeting")
}

func TestDeployHigherPriorityReplaces(t *testing.T) {
	e := newDeployEnv(t)
	e.provision("edge-1", true, map[string]any{"environment": "test"})
	e.put(edgeBase("v1", 10, "tags.environment='test'", map[string]any{"app": dockerModule("example/app:1")}, map[string]any{}, nil))
	e.step("v1 applies")
	e.put(edgeBase("v2", 11, "tags.environment='test'", map[string]any{"app": dockerModule("example/app:2")}, map[string]any{}, nil))
	e.step("v2 with a higher priority replaces it")
	e.remove("v2")
	e.step("deleting v2 brings v1 back")
	e.remove("v1")
	e.step("deleting the last one leaves the modules")
	e.golden("higher-priority")
}

func TestDeployADM(t *testing.T) {
	e := newDeployEnv(t)
	e.provision("dev-1", false, map[string]any{"site": "lab", "ring": 1})
	e.provision("dev-2", false, map[string]any{"site": "lab", "ring": 2})
	if _, err := e.s.PatchTwin(context.Background(), "dev-1", "", hub.TwinPatch{Desired: map[string]any{"own": "kept", "settings": map[string]any{"user": true}}}, ""); err != nil {
		t.Fatal(err)
	}
	e.put(hub.Configuration{ID: "lab-eco", Priority: 10, TargetCondition: "tags.site='lab'",
		Content:       hub.ConfigurationContent{DeviceContent: map[string]any{"properties.desired.settings": map[string]any{"mode": "eco", "level": 1}}},
		MetricQueries: map[string]string{"eco": "SELECT deviceId FROM devices WHERE properties.desired.settings.mode = 'eco'"}})
	e.put(hub.Configuration{ID: "ring1-turbo", Priority: 20, TargetCondition: "tags.ring = 1",
		Content: hub.ConfigurationContent{DeviceContent: map[string]any{"properties.desired.settings.mode": "turbo", "properties.desired.telemetry": map[string]any{"interval": 10}}}})
	e.put(hub.Configuration{ID: "shadowed", Priority: 1, TargetCondition: "tags.ring = 1",
		Content: hub.ConfigurationContent{DeviceContent: map[string]any{"properties.desired.settings.mode": "slow"}}})
	e.step("per path the highest priority wins; the shadowed one is only targeted")
	e.tags("dev-1", map[string]any{"ring": 2})
	e.step("leaving ring 1 removes its values and the next configuration applies")
	e.remove("lab-eco")
	e.step("deleting a configuration removes the values it set")
	e.golden("adm")
}

func TestDeployDeviceContent(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	e.provision("edge-1", true, nil)
	content := map[string]map[string]any{
		hub.EdgeAgent: {"properties.desired": map[string]any{"schemaVersion": "1.1", "modules": map[string]any{"late": dockerModule("example/late:1")}}},
		hub.EdgeHub:   {"properties.desired": map[string]any{"schemaVersion": "1.1", "routes": map[string]any{}}},
		"late":        {"properties.desired": map[string]any{"greeting": "hello"}},
	}
	if err := e.s.ApplyConfigurationContent(ctx, "edge-1", hub.ConfigurationContent{ModulesContent: content}); err != nil {
		t.Fatal(err)
	}
	e.step("per-device content: the late module has no twin yet")
	e.module("edge-1", "late")
	if err := e.s.EvaluateDevice(ctx, "edge-1"); err != nil {
		t.Fatal(err)
	}
	e.step("the module appears and gets its desired properties")
	e.put(edgeBase("auto", 1, "*", map[string]any{}, map[string]any{}, nil))
	e.step("an automatic deployment takes over")
	e.remove("auto")
	e.step("it is deleted: the device keeps the automatic content")
	e.golden("device-content")

	e.provision("plain", false, nil)
	for name, tc := range map[string]struct {
		device  string
		content hub.ConfigurationContent
		kind    fault.Kind
	}{
		"400/not an edge device": {"plain", hub.ConfigurationContent{ModulesContent: content}, fault.Invalid},
		"404/unknown device":     {"nobody", hub.ConfigurationContent{ModulesContent: content}, fault.NotFound},
		"400/no modulesContent":  {"edge-1", hub.ConfigurationContent{}, fault.Invalid},
		"400/bad path":           {"edge-1", hub.ConfigurationContent{ModulesContent: map[string]map[string]any{hub.EdgeHub: {"tags.x": 1}}}, fault.Invalid},
	} {
		t.Run(name, func(t *testing.T) {
			if err := e.s.ApplyConfigurationContent(ctx, tc.device, tc.content); !fault.Is(err, tc.kind) {
				t.Errorf("got %v, want a %v fault", err, tc.kind)
			}
		})
	}
	e.put(edgeBase("auto2", 1, "*", map[string]any{}, map[string]any{}, nil))
	if err := e.s.ApplyConfigurationContent(ctx, "edge-1", hub.ConfigurationContent{ModulesContent: content}); !fault.Is(err, fault.Invalid) {
		t.Errorf("per-device content on a device an automatic deployment targets: %v", err)
	}
}

func TestDeployMetrics(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	for _, id := range []string{"edge-1", "edge-2", "edge-3"} {
		e.provision(id, true, map[string]any{"environment": "test"})
	}
	e.provision("plain", false, map[string]any{"environment": "test"})
	e.put(edgeBase("base", 1, "tags.environment='test'", map[string]any{}, map[string]any{}, nil))
	v := e.twin("edge-1", hub.EdgeAgent).DesiredVersion
	report := func(id string, version int64, code int) {
		t.Helper()
		if _, err := e.s.PatchReported(ctx, id, hub.EdgeAgent, map[string]any{"lastDesiredVersion": version, "lastDesiredStatus": map[string]any{"code": code}}); err != nil {
			t.Fatal(err)
		}
	}
	report("edge-1", v, 200)
	report("edge-2", v, 400)
	report("edge-3", v-1, 200) // not caught up yet
	r, err := e.s.Configuration(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"targetedCount": 3, "appliedCount": 3, "reportedSuccessfulCount": 1, "reportedFailedCount": 1}
	if diff := cmp.Diff(want, r.SystemMetrics.Results); diff != "" {
		t.Errorf("system metrics (-want +got):\n%s", diff)
	}
	wantQueries := map[string]string{
		"targetedCount":           "select deviceId from devices where capabilities.iotEdge = true and (tags.environment='test')",
		"appliedCount":            "select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[base]].status = 'Applied'",
		"reportedSuccessfulCount": "select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[base]].status = 'Applied' and properties.desired.$version = properties.reported.lastDesiredVersion and properties.reported.lastDesiredStatus.code = 200",
		"reportedFailedCount":     "select deviceId from devices.modules where moduleId = '$edgeAgent' and configurations.[[base]].status = 'Applied' and properties.desired.$version = properties.reported.lastDesiredVersion and properties.reported.lastDesiredStatus.code != 200",
	}
	if diff := cmp.Diff(wantQueries, r.SystemMetrics.Queries); diff != "" {
		t.Errorf("system metric queries (-want +got):\n%s", diff)
	}

	e.put(hub.Configuration{ID: "nothing", TargetCondition: "", Content: hub.ConfigurationContent{DeviceContent: map[string]any{}},
		MetricQueries: map[string]string{"edge": "SELECT deviceId FROM devices WHERE capabilities.iotEdge = true"}})
	r, err = e.s.Configuration(ctx, "nothing")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"targetedCount": 0, "appliedCount": 0}, r.SystemMetrics.Results); diff != "" {
		t.Errorf("an empty target condition targets nothing (-want +got):\n%s", diff)
	}
	if r.SystemMetrics.Queries["targetedCount"] != "" || r.Metrics.Results["edge"] != 3 {
		t.Errorf("queries %v, custom results %v", r.SystemMetrics.Queries, r.Metrics.Results)
	}
}

func TestConfigurationRules(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	adm := func(id string) hub.Configuration {
		return hub.Configuration{ID: id, TargetCondition: "*", Content: hub.ConfigurationContent{DeviceContent: map[string]any{"properties.desired.x": 1}}}
	}
	with := func(c hub.Configuration, f func(*hub.Configuration)) hub.Configuration { f(&c); return c }
	tests := []struct {
		name   string
		c      hub.Configuration
		kind   fault.Kind
		reason fault.Reason
	}{
		{"400/upper case id", adm("Upper"), fault.Invalid, ""},
		{"400/id with a slash", adm("a/b"), fault.Invalid, ""},
		{"400/id too long", adm(string(bytes.Repeat([]byte("a"), 129))), fault.Invalid, ""},
		{"400/no content", with(adm("c"), func(c *hub.Configuration) { c.Content = hub.ConfigurationContent{} }), fault.Invalid, hub.ReasonInvalidConfigurationContent},
		{"400/two contents", with(adm("c"), func(c *hub.Configuration) { c.Content.ModuleContent = map[string]any{} }), fault.Invalid, hub.ReasonInvalidConfigurationContent},
		{"400/path outside desired", with(adm("c"), func(c *hub.Configuration) { c.Content.DeviceContent = map[string]any{"tags.x": 1} }), fault.Invalid, hub.ReasonInvalidConfigurationContent},
		{"400/desired not an object", with(adm("c"), func(c *hub.Configuration) { c.Content.DeviceContent = map[string]any{"properties.desired": 1} }), fault.Invalid, hub.ReasonInvalidConfigurationContent},
		{"400/bad module id", with(adm("c"), func(c *hub.Configuration) {
			c.Content = hub.ConfigurationContent{ModulesContent: map[string]map[string]any{"bad/module": {"properties.desired": map[string]any{}}}}
		}), fault.Invalid, hub.ReasonInvalidConfigurationContent},
		{"400/bad target condition", with(adm("c"), func(c *hub.Configuration) { c.TargetCondition = "tags.x = " }), fault.Invalid, hub.ReasonInvalidTargetCondition},
		{"400/negative priority", with(adm("c"), func(c *hub.Configuration) { c.Priority = -1 }), fault.Invalid, ""},
		{"400/bad metric query", with(adm("c"), func(c *hub.Configuration) { c.MetricQueries = map[string]string{"m": "SELECT FROM"} }), fault.Invalid, hub.ReasonInvalidMetricQuery},
		{"400/metric over enrollments", with(adm("c"), func(c *hub.Configuration) { c.MetricQueries = map[string]string{"m": "SELECT * FROM enrollments"} }), fault.Invalid, hub.ReasonInvalidMetricQuery},
		{"400/six metric queries", with(adm("c"), func(c *hub.Configuration) {
			c.MetricQueries = map[string]string{}
			for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
				c.MetricQueries[n] = "SELECT deviceId FROM devices"
			}
		}), fault.Invalid, hub.ReasonInvalidMetricQuery},
		{"200/module target condition form", with(adm("mods"), func(c *hub.Configuration) {
			c.Content = hub.ConfigurationContent{ModuleContent: map[string]any{"properties.desired.x": 1}}
			c.TargetCondition = "FROM devices.modules WHERE moduleId = 'filter'"
		}), 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.s.PutConfiguration(ctx, tc.c, "")
			if tc.kind == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !fault.Is(err, tc.kind) || tc.reason != "" && fault.ReasonOf(err) != tc.reason {
				t.Errorf("got %v (reason %q), want %v %q", err, fault.ReasonOf(err), tc.kind, tc.reason)
			}
		})
	}

	r, err := e.s.PutConfiguration(ctx, adm("cfg"), "")
	if err != nil {
		t.Fatal(err)
	}
	if r.SchemaVersion != "1.0" || r.ETag == "" || r.Created.IsZero() || !r.Created.Equal(r.Updated) {
		t.Errorf("created: %+v", r.Configuration)
	}
	_, err = e.s.PutConfiguration(ctx, adm("cfg"), "")
	wantReason(t, err, fault.Conflict, hub.ReasonConfigurationExists, "create of an existing ID")
	_, err = e.s.PutConfiguration(ctx, adm("cfg"), `"stale"`)
	wantReason(t, err, fault.PreconditionFailed, "", "update with a stale etag")
	_, err = e.s.PutConfiguration(ctx, with(adm("cfg"), func(c *hub.Configuration) { c.Content.DeviceContent = map[string]any{"properties.desired.x": 2} }), "*")
	wantReason(t, err, fault.Invalid, hub.ReasonImmutableContent, "content change")
	_, err = e.s.PutConfiguration(ctx, adm("missing"), `"some-etag"`)
	wantReason(t, err, fault.NotFound, hub.ReasonConfigurationNotFound, "update of a missing configuration")

	up, err := e.s.PutConfiguration(ctx, with(adm("cfg"), func(c *hub.Configuration) { c.Priority, c.Content = 7, hub.ConfigurationContent{} }), `"`+r.ETag+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if up.Priority != 7 || up.ETag == r.ETag || !up.Created.Equal(r.Created) || !up.Updated.After(r.Updated) || up.Content.DeviceContent == nil {
		t.Errorf("updated: %+v", up.Configuration)
	}
	if _, err := e.s.PutConfiguration(ctx, adm("upsert"), "*"); err != nil {
		t.Errorf(`If-Match "*" creates a missing configuration: %v`, err)
	}

	wantReason(t, e.s.DeleteConfiguration(ctx, "cfg", "stale"), fault.PreconditionFailed, "", "delete with a stale etag")
	if err := e.s.DeleteConfiguration(ctx, "cfg", up.ETag); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.Configuration(ctx, "cfg")
	wantReason(t, err, fault.NotFound, hub.ReasonConfigurationNotFound, "get after delete")

	qt := e.s.TestQueries("tags.x = ", map[string]string{"ok": "SELECT deviceId FROM devices", "bad": "SELECT deviceId FROM nowhere"})
	if qt.TargetConditionError == "" || len(qt.CustomMetricQueryErrors) != 1 || qt.CustomMetricQueryErrors["bad"] == "" {
		t.Errorf("query test: %+v", qt)
	}
}

func wantReason(t *testing.T, err error, k fault.Kind, r fault.Reason, what string) {
	t.Helper()
	if !fault.Is(err, k) || r != "" && fault.ReasonOf(err) != r {
		t.Errorf("%s: got %v (reason %q), want %v %q", what, err, fault.ReasonOf(err), k, r)
	}
}

func TestConfigurationLimit(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	for i := range hub.MaxConfigurations {
		c := hub.Configuration{ID: "c" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Content: hub.ConfigurationContent{DeviceContent: map[string]any{}}}
		if _, err := e.s.PutConfiguration(ctx, c, ""); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.s.PutConfiguration(ctx, hub.Configuration{ID: "one-more", Content: hub.ConfigurationContent{DeviceContent: map[string]any{}}}, "")
	wantReason(t, err, fault.TooLarge, hub.ReasonTooManyConfigurations, "configuration 101")
}

// TestDeployConcurrentChanges races tag changes, configuration writes and
// periodic passes; afterwards every device shows the deployment its final
// tags select, and another pass writes nothing.
func TestDeployConcurrentChanges(t *testing.T) {
	e := newDeployEnv(t)
	ctx := context.Background()
	devices := []string{"e0", "e1", "e2", "e3", "e4", "e5"}
	for _, id := range devices {
		e.provision(id, true, map[string]any{"g": "a"})
	}
	var wg sync.WaitGroup
	for i, id := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 6 {
				g := []string{"a", "b"}[(i+n)%2]
				if _, err := e.s.PatchTwin(ctx, id, "", hub.TwinPatch{Tags: map[string]any{"g": g}}, ""); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, g := range []string{"a", "b"} {
			if _, err := e.s.PutConfiguration(ctx, edgeBase("deploy-"+g, 1, "tags.g='"+g+"'", map[string]any{g: dockerModule("example/" + g)}, map[string]any{}, nil), ""); err != nil {
				t.Error(err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 3 {
			if err := e.s.EvaluateDeployments(ctx); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	versions := map[string]int64{}
	for _, id := range devices {
		g := e.twin(id, "").Tags["g"].(string)
		agent := e.twin(id, hub.EdgeAgent)
		if diff := cmp.Diff(map[string]string{"deploy-" + g: hub.StatusApplied}, agent.Configurations); diff != "" {
			t.Errorf("%s with g=%s (-want +got):\n%s", id, g, diff)
		}
		if _, ok := agent.Desired["modules"].(map[string]any)[g]; !ok {
			t.Errorf("%s with g=%s has modules %v", id, g, agent.Desired["modules"])
		}
		versions[id] = agent.DesiredVersion
	}
	if err := e.s.EvaluateDeployments(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range devices {
		if v := e.twin(id, hub.EdgeAgent).DesiredVersion; v != versions[id] {
			t.Errorf("%s: a pass after the race moved the desired version from %d to %d", id, versions[id], v)
		}
	}
}
