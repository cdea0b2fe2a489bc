package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

func newHub(t *testing.T) (*hub.Service, *hub.Bus) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	bus := hub.NewBus()
	return hub.NewService(db, hub.Options{HostName: "hub.usher.test", Bus: bus}), bus
}

func provision(t *testing.T, s *hub.Service, id string, edge bool, tags map[string]any) {
	t.Helper()
	k, _ := sas.NewKey(32)
	if _, err := s.Provision(context.Background(), hub.ProvisionSpec{DeviceID: id, PrimaryKey: k, SecondaryKey: k, IoTEdge: edge, Tags: tags}); err != nil {
		t.Fatal(err)
	}
}

func TestMergePatch(t *testing.T) {
	doc := map[string]any{"a": 1, "b": map[string]any{"c": 2, "d": 3}, "e": []any{1}}
	got := hub.MergePatch(doc, map[string]any{"a": nil, "b": map[string]any{"c": 5, "x": map[string]any{"y": true}}, "e": "s", "$version": 4})
	want := map[string]any{"b": map[string]any{"c": 5, "d": 3, "x": map[string]any{"y": true}}, "e": "s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, ok := doc["b"].(map[string]any)["x"]; ok {
		t.Errorf("MergePatch modified its input")
	}
}

type recorder struct {
	patches []map[string]any
	version int64
}

func (r *recorder) DesiredChanged(p map[string]any, v int64) {
	r.patches = append(r.patches, p)
	r.version = v
}
func (r *recorder) InvokeMethod(context.Context, string, json.RawMessage) (int, json.RawMessage, error) {
	return 200, nil, nil
}
func (r *recorder) Close(string) {}

func TestPatchTwin(t *testing.T) {
	s, bus := newHub(t)
	provision(t, s, "d1", false, map[string]any{"site": "a"})
	rec := &recorder{}
	defer bus.Attach("d1", "", rec)()
	tw, err := s.PatchTwin(context.Background(), "d1", "", hub.TwinPatch{Tags: map[string]any{"env": "test"}, Desired: map[string]any{"interval": 5}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if tw.Tags["site"] != "a" || tw.Tags["env"] != "test" || tw.DesiredVersion != 2 || tw.Version != 2 {
		t.Errorf("twin after patch: %+v", tw)
	}
	if len(rec.patches) != 1 || rec.patches[0]["interval"] != 5 || rec.version != 2 {
		t.Errorf("desired push: %+v v%d", rec.patches, rec.version)
	}
	if _, err := s.PatchTwin(context.Background(), "d1", "", hub.TwinPatch{Tags: map[string]any{"x": 1}}, `"stale"`); !fault.Is(err, fault.PreconditionFailed) {
		t.Errorf("stale etag: %v", err)
	}
	if _, err := s.PatchTwin(context.Background(), "d1", "", hub.TwinPatch{Tags: map[string]any{"bad.key": 1}}, ""); !fault.Is(err, fault.Invalid) {
		t.Errorf("bad key: %v", err)
	}
	big := map[string]any{"pad": string(make([]byte, 4000)), "pad2": string(make([]byte, 4000)), "pad3": string(make([]byte, 4000))}
	if _, err := s.PatchTwin(context.Background(), "d1", "", hub.TwinPatch{Tags: big}, ""); !fault.Is(err, fault.TooLarge) {
		t.Errorf("tags over 8 KB: %v", err)
	}
	v, err := s.PatchReported(context.Background(), "d1", "", map[string]any{"fw": "1.0"})
	if err != nil || v != 2 {
		t.Errorf("reported patch: v%d %v", v, err)
	}
	if _, err := s.PatchTwin(context.Background(), "nobody", "", hub.TwinPatch{}, ""); !fault.Is(err, fault.NotFound) {
		t.Errorf("unknown device: %v", err)
	}
}

func TestQuery(t *testing.T) {
	s, _ := newHub(t)
	for i := 0; i < 7; i++ {
		provision(t, s, fmt.Sprintf("dev-%d", i), i%2 == 0, map[string]any{"environment": []string{"test", "prod"}[i%2], "i": i})
	}
	if _, err := s.PatchReported(context.Background(), "dev-3", "", map[string]any{"fw": "2.0"}); err != nil {
		t.Fatal(err)
	}
	ids := func(items []map[string]any) []string {
		var out []string
		for _, it := range items {
			out = append(out, it["deviceId"].(string))
		}
		return out
	}
	tests := []struct {
		name string
		q    string
		want []string
	}{
		{"ok/tag", "SELECT * FROM devices WHERE tags.environment = 'test'", []string{"dev-0", "dev-2", "dev-4", "dev-6"}},
		{"ok/collection prefix", "SELECT * FROM devices WHERE devices.tags.environment = 'prod'", []string{"dev-1", "dev-3", "dev-5"}},
		{"ok/reported", "SELECT * FROM devices WHERE properties.reported.fw = '2.0'", []string{"dev-3"}},
		{"ok/capability", "SELECT * FROM devices WHERE capabilities.iotEdge = true AND tags.i > 2", []string{"dev-4", "dev-6"}},
		{"ok/top", "SELECT TOP 2 * FROM devices", []string{"dev-0", "dev-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			page := hub.QueryPage{Size: 2}
			for n := 0; n < 10; n++ {
				res, err := s.Query(context.Background(), tc.q, page)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ids(res.Items)...)
				if res.Continuation == "" {
					break
				}
				page.Continuation = res.Continuation
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	res, err := s.Query(context.Background(), "SELECT COUNT() AS n FROM devices WHERE capabilities.iotEdge = true", hub.QueryPage{})
	if err != nil || res.ItemType != hub.ItemRaw || res.Items[0]["n"] != 4 {
		t.Errorf("count: %+v %v", res, err)
	}
	res, _ = s.Query(context.Background(), "SELECT COUNT() AS n, tags.environment FROM devices GROUP BY tags.environment", hub.QueryPage{})
	if len(res.Items) != 2 || res.Items[0]["environment"] != "prod" || res.Items[0]["n"] != 3 {
		t.Errorf("group by: %+v", res.Items)
	}
	if n, err := s.Count(context.Background(), "select deviceId from devices.modules where moduleId = '$edgeAgent'"); err != nil || n != 4 {
		t.Errorf("module count = %d %v, want 4", n, err)
	}
	res, _ = s.Query(context.Background(), "SELECT deviceId, tags.i AS idx FROM devices WHERE tags.i = 3", hub.QueryPage{})
	if diff := cmp.Diff([]map[string]any{{"deviceId": "dev-3", "idx": json.Number("3")}}, res.Items); diff != "" && fmt.Sprint(res.Items) != "[map[deviceId:dev-3 idx:3]]" {
		t.Errorf("projection: %v", res.Items)
	}
	if _, err := s.Query(context.Background(), "SELECT * FROM things", hub.QueryPage{}); !fault.Is(err, fault.Invalid) {
		t.Errorf("bad collection: %v", err)
	}
	if _, err := s.Query(context.Background(), "SELECT * FROM devices WHERE", hub.QueryPage{}); !fault.Is(err, fault.Invalid) {
		t.Errorf("syntax error: %v", err)
	}
}
