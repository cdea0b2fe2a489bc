package hub_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
)

// fakeConn is a connected device: it answers methods with answer (or
// blocks until the call's context ends when block is set) and records
// Close.
type fakeConn struct {
	mu     sync.Mutex
	closed []string
	calls  []string
	block  bool
	err    error
	status int
	answer json.RawMessage
}

func (c *fakeConn) DesiredChanged(map[string]any, int64) {}
func (c *fakeConn) InvokeMethod(ctx context.Context, name string, payload json.RawMessage) (int, json.RawMessage, error) {
	c.mu.Lock()
	c.calls = append(c.calls, name+" "+string(payload))
	c.mu.Unlock()
	if c.block {
		<-ctx.Done()
		return 0, nil, ctx.Err()
	}
	return c.status, c.answer, c.err
}
func (c *fakeConn) Close(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = append(c.closed, reason)
}
func (c *fakeConn) closes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.closed)
}

func wantFault(t *testing.T, err error, k fault.Kind, r fault.Reason) {
	t.Helper()
	if !fault.Is(err, k) || fault.ReasonOf(err) != r {
		t.Fatalf("got %v (reason %q), want a %v fault with reason %q", err, fault.ReasonOf(err), k, r)
	}
}

func keyBytes(t *testing.T, k string) int {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil {
		t.Fatalf("key %q is not base64: %v", k, err)
	}
	return len(b)
}

func TestCreateDevice(t *testing.T) {
	s, _ := newHub(t)
	ctx := context.Background()
	key, _ := sas.NewKey(32)
	yes := true
	tests := []struct {
		name   string
		spec   hub.DeviceSpec
		kind   fault.Kind // Internal = success
		reason fault.Reason
		check  func(*testing.T, hub.Device)
	}{
		{"ok/keys generated, enabled by default", hub.DeviceSpec{ID: "gen"}, fault.Internal, "", func(t *testing.T, d hub.Device) {
			if keyBytes(t, d.PrimaryKey) != 32 || keyBytes(t, d.SecondaryKey) != 32 || d.PrimaryKey == d.SecondaryKey {
				t.Errorf("generated keys: %q %q", d.PrimaryKey, d.SecondaryKey)
			}
			if d.Status != hub.Enabled || d.GenerationID == "" || d.ETag == "" || d.IoTEdge || d.DeviceScope != "" {
				t.Errorf("device: %+v", d)
			}
		}},
		{"ok/client keys kept, status disabled", hub.DeviceSpec{ID: "keys", PrimaryKey: key, SecondaryKey: key, Status: "Disabled", AuthType: "sas"}, fault.Internal, "", func(t *testing.T, d hub.Device) {
			if d.PrimaryKey != key || d.SecondaryKey != key || d.Status != hub.Disabled {
				t.Errorf("device: %+v", d)
			}
		}},
		{"ok/edge device gets $edgeAgent and $edgeHub", hub.DeviceSpec{ID: "edge", IoTEdge: &yes}, fault.Internal, "", func(t *testing.T, d hub.Device) {
			if !d.IoTEdge || d.DeviceScope != "ms-azure-iot-edge://edge-"+d.GenerationID {
				t.Errorf("device: %+v", d)
			}
			mods, err := s.Modules(ctx, "edge")
			if err != nil || len(mods) != 2 || mods[0].ID != hub.EdgeAgent || mods[1].ID != hub.EdgeHub || mods[0].GenerationID == "" {
				t.Fatalf("modules: %+v %v", mods, err)
			}
			if _, _, err := s.ModuleTwin(ctx, "edge", hub.EdgeHub); err != nil {
				t.Errorf("$edgeHub twin: %v", err)
			}
		}},
		{"409/exists", hub.DeviceSpec{ID: "gen"}, fault.Conflict, "", nil},
		{"400/id with a space", hub.DeviceSpec{ID: "a b"}, fault.Invalid, "", nil},
		{"400/8-byte key", hub.DeviceSpec{ID: "k8", PrimaryKey: base64.StdEncoding.EncodeToString([]byte("12345678"))}, fault.Invalid, "", nil},
		{"400/unknown status", hub.DeviceSpec{ID: "st", Status: "paused"}, fault.Invalid, "", nil},
		{"400/x509 not supported yet", hub.DeviceSpec{ID: "x", AuthType: "selfSigned"}, fault.Unsupported, "", nil},
		{"400/status reason over 128", hub.DeviceSpec{ID: "r", StatusReason: strings.Repeat("r", 129)}, fault.Invalid, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := s.CreateDevice(ctx, tc.spec)
			if tc.kind != fault.Internal {
				wantFault(t, err, tc.kind, tc.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Device(ctx, tc.spec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(d, got); diff != "" {
				t.Errorf("stored device differs from the answer (-answer +stored):\n%s", diff)
			}
			tc.check(t, d)
		})
	}
}

func TestUpdateDevice(t *testing.T) {
	s, bus := newHub(t)
	ctx := context.Background()
	d, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	conn := &fakeConn{}
	defer bus.Attach("d1", "", conn)()

	_, err = s.UpdateDevice(ctx, hub.DeviceSpec{ID: "d1"}, `"stale"`)
	wantFault(t, err, fault.PreconditionFailed, "")
	_, err = s.UpdateDevice(ctx, hub.DeviceSpec{ID: "nobody"}, "*")
	wantFault(t, err, fault.NotFound, "")

	yes := true
	u, err := s.UpdateDevice(ctx, hub.DeviceSpec{ID: "d1", IoTEdge: &yes, StatusReason: "maintenance"}, `"`+d.ETag+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if u.PrimaryKey != d.PrimaryKey || u.GenerationID != d.GenerationID || u.ETag == d.ETag || !u.IoTEdge || u.Status != hub.Enabled || u.StatusReason != "maintenance" {
		t.Errorf("after update: %+v", u)
	}
	if mods, _ := s.Modules(ctx, "d1"); len(mods) != 2 {
		t.Errorf("turning IoT Edge on made %d modules, want 2", len(mods))
	}
	if conn.closes() != 0 {
		t.Errorf("an enabled device was disconnected")
	}
	u, err = s.UpdateDevice(ctx, hub.DeviceSpec{ID: "d1", Status: hub.Disabled}, "*")
	if err != nil || u.Status != hub.Disabled || !u.IoTEdge {
		t.Fatalf("disable: %+v %v", u, err)
	}
	if conn.closes() != 1 {
		t.Errorf("disabling did not disconnect the device (%d closes)", conn.closes())
	}
}

func TestDeleteDevice(t *testing.T) {
	s, bus := newHub(t)
	ctx := context.Background()
	yes := true
	d, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: "edge", IoTEdge: &yes})
	if err != nil {
		t.Fatal(err)
	}
	device, agent := &fakeConn{}, &fakeConn{}
	defer bus.Attach("edge", "", device)()
	defer bus.Attach("edge", hub.EdgeAgent, agent)()

	wantFault(t, s.DeleteDevice(ctx, "edge", "stale"), fault.PreconditionFailed, "")
	if device.closes() != 0 {
		t.Errorf("a refused delete disconnected the device")
	}
	if err := s.DeleteDevice(ctx, "edge", d.ETag); err != nil {
		t.Fatal(err)
	}
	if device.closes() != 1 || agent.closes() != 1 {
		t.Errorf("delete closed %d device and %d module connections, want 1 and 1", device.closes(), agent.closes())
	}
	_, err = s.Device(ctx, "edge")
	wantFault(t, err, fault.NotFound, "")
	_, _, err = s.ModuleTwin(ctx, "edge", hub.EdgeAgent)
	wantFault(t, err, fault.NotFound, "")
	wantFault(t, s.DeleteDevice(ctx, "edge", "*"), fault.NotFound, "")
}

func TestDevicesTop(t *testing.T) {
	s, _ := newHub(t)
	for i := range 5 {
		if _, err := s.CreateDevice(context.Background(), hub.DeviceSpec{ID: fmt.Sprintf("d%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		top, want int
	}{{2, 2}, {0, 5}, {-1, 5}, {5000, 5}} {
		ds, err := s.Devices(context.Background(), tc.top)
		if err != nil || len(ds) != tc.want {
			t.Errorf("top %d: %d devices (%v), want %d", tc.top, len(ds), err, tc.want)
		}
	}
}

func TestModules(t *testing.T) {
	s, bus := newHub(t)
	ctx := context.Background()
	if _, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: "d1"}); err != nil {
		t.Fatal(err)
	}
	m, err := s.CreateModule(ctx, hub.ModuleSpec{DeviceID: "d1", ID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if m.GenerationID == "" || keyBytes(t, m.PrimaryKey) != 32 || m.ManagedBy != "" {
		t.Errorf("created module: %+v", m)
	}
	if _, _, err := s.ModuleTwin(ctx, "d1", "m1"); err != nil {
		t.Errorf("module twin: %v", err)
	}
	_, err = s.CreateModule(ctx, hub.ModuleSpec{DeviceID: "d1", ID: "m1"})
	wantFault(t, err, fault.Conflict, hub.ReasonModuleExists)
	_, err = s.CreateModule(ctx, hub.ModuleSpec{DeviceID: "nobody", ID: "m1"})
	wantFault(t, err, fault.NotFound, "")
	_, err = s.Module(ctx, "d1", "nope")
	wantFault(t, err, fault.NotFound, hub.ReasonModuleNotFound)
	_, err = s.Module(ctx, "nobody", "m1")
	wantFault(t, err, fault.NotFound, "")
	_, _, err = s.ModuleTwin(ctx, "d1", "nope")
	wantFault(t, err, fault.NotFound, hub.ReasonModuleNotFound)
	_, err = s.PatchTwin(ctx, "d1", "nope", hub.TwinPatch{Tags: map[string]any{"a": 1}}, "")
	wantFault(t, err, fault.NotFound, hub.ReasonModuleNotFound)
	_, err = s.PatchTwin(ctx, "nobody", "m1", hub.TwinPatch{Tags: map[string]any{"a": 1}}, "")
	wantFault(t, err, fault.NotFound, "")

	// aziot-identityd: a forced update with keys it derived.
	key, _ := sas.NewKey(32)
	u, err := s.UpdateModule(ctx, hub.ModuleSpec{DeviceID: "d1", ID: "m1", PrimaryKey: key, SecondaryKey: key}, "*")
	if err != nil {
		t.Fatal(err)
	}
	if u.PrimaryKey != key || u.GenerationID != m.GenerationID || u.ETag == m.ETag {
		t.Errorf("updated module: %+v", u)
	}
	_, err = s.UpdateModule(ctx, hub.ModuleSpec{DeviceID: "d1", ID: "m1"}, m.ETag)
	wantFault(t, err, fault.PreconditionFailed, "")
	_, err = s.UpdateModule(ctx, hub.ModuleSpec{DeviceID: "d1", ID: "nope"}, "*")
	wantFault(t, err, fault.NotFound, hub.ReasonModuleNotFound)

	conn := &fakeConn{}
	defer bus.Attach("d1", "m1", conn)()
	if err := s.DeleteModule(ctx, "d1", "m1", `"`+u.ETag+`"`); err != nil {
		t.Fatal(err)
	}
	if conn.closes() != 1 {
		t.Errorf("deleting a module did not close its connection")
	}
	wantFault(t, s.DeleteModule(ctx, "d1", "m1", "*"), fault.NotFound, hub.ReasonModuleNotFound)

	for i := range hub.MaxModules {
		if _, err := s.CreateModule(ctx, hub.ModuleSpec{DeviceID: "d1", ID: fmt.Sprintf("x%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.CreateModule(ctx, hub.ModuleSpec{DeviceID: "d1", ID: "one-too-many"})
	wantFault(t, err, fault.TooLarge, hub.ReasonTooManyModules)
}

func TestBulkDevices(t *testing.T) {
	s, _ := newHub(t)
	ctx := context.Background()
	if _, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: "old"}); err != nil {
		t.Fatal(err)
	}
	old2, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: "old2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"gone", "keep"} {
		if _, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	errs, err := s.BulkDevices(ctx, []hub.BulkItem{
		{Mode: hub.BulkCreate, Device: hub.DeviceSpec{ID: "new"}, Twin: hub.TwinPatch{Tags: map[string]any{"env": "test"}, Desired: map[string]any{"n": 1}}},
		{Mode: hub.BulkCreate, Device: hub.DeviceSpec{ID: "old"}},
		{Mode: hub.BulkUpdateIfMatchETag, Device: hub.DeviceSpec{ID: "gone", Status: hub.Disabled}, ETag: "stale"},
		{Mode: hub.BulkUpdateIfMatchETag, Device: hub.DeviceSpec{ID: "old2", StatusReason: "etag"}, ETag: old2.ETag},
		{Mode: hub.BulkDeleteIfMatchETag, Device: hub.DeviceSpec{ID: "keep"}},
		{Mode: hub.BulkDelete, Device: hub.DeviceSpec{ID: "never"}},
		{Mode: hub.BulkCreateOrUpdate, Device: hub.DeviceSpec{ID: "upsert"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.DeviceID+": "+fault.KindOf(e.Err).String())
	}
	want := []string{"old: Conflict", "gone: PreconditionFailed", "keep: PreconditionFailed", "never: NotFound"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("per-item errors (-want +got):\n%s", diff)
	}
	tw, _, err := s.Twin(ctx, "new")
	if err != nil || tw.Tags["env"] != "test" || fmt.Sprint(tw.Desired["n"]) != "1" {
		t.Errorf("created twin: %+v %v", tw, err)
	}
	if d, _ := s.Device(ctx, "old2"); d.StatusReason != "etag" || d.Status != hub.Enabled {
		t.Errorf("old2 after bulk: %+v", d)
	}
	if d, _ := s.Device(ctx, "gone"); d.Status != hub.Enabled {
		t.Errorf("a stale-etag update changed the device: %+v", d)
	}
	if _, err := s.Device(ctx, "upsert"); err != nil {
		t.Errorf("createOrUpdate did not create: %v", err)
	}

	many := make([]hub.BulkItem, hub.MaxBulkDevices+1)
	for i := range many {
		many[i] = hub.BulkItem{Mode: hub.BulkCreate, Device: hub.DeviceSpec{ID: fmt.Sprintf("m%d", i)}}
	}
	_, err = s.BulkDevices(ctx, many)
	wantFault(t, err, fault.TooLarge, hub.ReasonTooManyDevices)
	_, err = s.BulkDevices(ctx, []hub.BulkItem{{Mode: hub.BulkCreate, Device: hub.DeviceSpec{ID: "dup"}}, {Mode: hub.BulkDelete, Device: hub.DeviceSpec{ID: "dup"}}})
	wantFault(t, err, fault.Invalid, hub.ReasonDuplicateDevice)
	if _, err := s.Device(ctx, "dup"); !fault.Is(err, fault.NotFound) {
		t.Errorf("a refused bulk operation wrote a device: %v", err)
	}
	if _, err := hub.ParseBulkMode("updateTwin"); !fault.Is(err, fault.Unsupported) {
		t.Errorf("updateTwin: %v", err)
	}
	if m, err := hub.ParseBulkMode("DeleteIfMatchETag"); err != nil || m != hub.BulkDeleteIfMatchETag {
		t.Errorf("Node's capitalised mode: %q %v", m, err)
	}
}

func TestInvokeMethod(t *testing.T) {
	s, bus := newHub(t)
	ctx := context.Background()
	yes := true
	if _, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: "d1", IoTEdge: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: "offline"}); err != nil {
		t.Fatal(err)
	}
	dev := &fakeConn{status: 201, answer: json.RawMessage(`{"rebooting":true}`)}
	t.Cleanup(bus.Attach("d1", "", dev))
	agent := &fakeConn{status: 200}
	t.Cleanup(bus.Attach("d1", hub.EdgeAgent, agent))
	deaf := &fakeConn{err: fault.New(fault.Unavailable, "not subscribed")}
	t.Cleanup(bus.Attach("offline", "deaf", deaf))
	slow := &fakeConn{block: true}
	t.Cleanup(bus.Attach("d1", hub.EdgeHub, slow))

	t.Run("504/no answer within the timeout", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		_, err := s.InvokeMethod(ctx, hub.MethodCall{DeviceID: "d1", ModuleID: hub.EdgeHub, Name: "ping", ResponseTimeout: hub.MinMethodTimeout})
		wantFault(t, err, fault.Timeout, "")
		if d := time.Since(start); d < hub.MinMethodTimeout {
			t.Errorf("gave up after %s", d)
		}
	})
	tests := []struct {
		name   string
		call   hub.MethodCall
		want   hub.MethodResult
		kind   fault.Kind
		reason fault.Reason
	}{
		{"ok/device answers", hub.MethodCall{DeviceID: "d1", Name: "reboot", Payload: json.RawMessage(`{"delay":5}`)}, hub.MethodResult{Status: 201, Payload: json.RawMessage(`{"rebooting":true}`)}, fault.Internal, ""},
		{"ok/module answers without payload", hub.MethodCall{DeviceID: "d1", ModuleID: hub.EdgeAgent, Name: "ping", ResponseTimeout: 300 * time.Second}, hub.MethodResult{Status: 200, Payload: json.RawMessage(`null`)}, fault.Internal, ""},
		{"404/device not online", hub.MethodCall{DeviceID: "offline", Name: "reboot"}, hub.MethodResult{}, fault.NotFound, hub.ReasonDeviceNotOnline},
		{"404/unknown device", hub.MethodCall{DeviceID: "nobody", Name: "reboot"}, hub.MethodResult{}, fault.NotFound, ""},
		{"404/unknown module", hub.MethodCall{DeviceID: "d1", ModuleID: "nope", Name: "reboot"}, hub.MethodResult{}, fault.NotFound, hub.ReasonModuleNotFound},
		{"400/timeout under 5 s", hub.MethodCall{DeviceID: "d1", Name: "reboot", ResponseTimeout: 4 * time.Second}, hub.MethodResult{}, fault.Invalid, ""},
		{"400/timeout over 300 s", hub.MethodCall{DeviceID: "d1", Name: "reboot", ResponseTimeout: 301 * time.Second}, hub.MethodResult{}, fault.Invalid, ""},
		{"400/name with a slash", hub.MethodCall{DeviceID: "d1", Name: "a/b"}, hub.MethodResult{}, fault.Invalid, ""},
		{"400/no name", hub.MethodCall{DeviceID: "d1"}, hub.MethodResult{}, fault.Invalid, ""},
		{"400/payload not JSON", hub.MethodCall{DeviceID: "d1", Name: "x", Payload: json.RawMessage(`{`)}, hub.MethodResult{}, fault.Invalid, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.InvokeMethod(ctx, tc.call)
			if tc.kind != fault.Internal {
				wantFault(t, err, tc.kind, tc.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.want.Status || string(got.Payload) != string(tc.want.Payload) {
				t.Errorf("answer %d %s, want %d %s", got.Status, got.Payload, tc.want.Status, tc.want.Payload)
			}
		})
	}
	if len(dev.calls) != 1 || dev.calls[0] != `reboot {"delay":5}` {
		t.Errorf("the device got %q", dev.calls)
	}
}
