package storetest

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

func sampleConfiguration(id string) hub.Configuration {
	return hub.Configuration{
		ID: id, SchemaVersion: "1.0", Labels: map[string]string{"team": "qa"}, ContentType: "assignments",
		Content: hub.ConfigurationContent{ModulesContent: map[string]map[string]any{
			hub.EdgeAgent: {"properties.desired": map[string]any{"schemaVersion": "1.1", "modules": map[string]any{}}},
			"filter":      {"properties.desired.threshold": json.Number("21.5"), "properties.desired.list": []any{"a", json.Number("1")}},
		}},
		TargetCondition: "tags.environment='test'", Priority: 10,
		MetricQueries: map[string]string{"ok": "SELECT deviceId FROM devices WHERE properties.reported.ok = true"},
		Created:       t0, Updated: t0, ETag: "e1",
	}
}

// configurations checks hub.ConfigurationStore: round trips that keep
// absent and empty content apart, conditional writes, listing, and the
// per-device deployments.
func configurations(t *testing.T, s Store) {
	want := sampleConfiguration("base-1")
	mustNil(t, s.CreateConfiguration(ctx(), want), "create")
	got, err := s.Configuration(ctx(), "base-1")
	mustNil(t, err, "get")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip changed the configuration (-want +got):\n%s", diff)
	}
	_, err = s.Configuration(ctx(), "nope")
	wantKind(t, err, fault.NotFound, "get missing")
	wantKind(t, s.CreateConfiguration(ctx(), want), fault.Conflict, "second create")

	empty := hub.Configuration{ID: "adm-empty", Content: hub.ConfigurationContent{DeviceContent: map[string]any{}}, ETag: "x", Created: t0, Updated: t0}
	mustNil(t, s.CreateConfiguration(ctx(), empty), "create with empty content")
	got, err = s.Configuration(ctx(), "adm-empty")
	mustNil(t, err, "get empty")
	if got.Content.DeviceContent == nil || got.Content.ModulesContent != nil || got.Content.Kind() != hub.DeviceConfiguration {
		t.Errorf("empty deviceContent must stay present and the others absent: %+v", got.Content)
	}

	up := want
	up.Priority, up.ETag = 20, "e2"
	wantKind(t, s.UpdateConfiguration(ctx(), up, "stale"), fault.PreconditionFailed, "update with stale etag")
	mustNil(t, s.UpdateConfiguration(ctx(), up, "e1"), "update with current etag")
	got, _ = s.Configuration(ctx(), "base-1")
	if got.Priority != 20 || got.ETag != "e2" {
		t.Errorf("after update: priority %d etag %q", got.Priority, got.ETag)
	}
	wantKind(t, s.UpdateConfiguration(ctx(), sampleConfiguration("missing"), ""), fault.NotFound, "update missing")

	mustNil(t, s.CreateConfiguration(ctx(), sampleConfiguration("a-first")), "create a-first")
	list, err := s.Configurations(ctx(), 10)
	mustNil(t, err, "list")
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	if diff := cmp.Diff([]string{"a-first", "adm-empty", "base-1"}, ids); diff != "" {
		t.Errorf("list order (-want +got):\n%s", diff)
	}
	if list, _ := s.Configurations(ctx(), 2); len(list) != 2 {
		t.Errorf("limit 2 listed %d", len(list))
	}

	wantKind(t, s.DeleteConfiguration(ctx(), "base-1", "stale"), fault.PreconditionFailed, "delete stale")
	mustNil(t, s.DeleteConfiguration(ctx(), "base-1", "e2"), "delete current")
	wantKind(t, s.DeleteConfiguration(ctx(), "base-1", ""), fault.NotFound, "delete again")

	_, err = s.DeviceDeployment(ctx(), "edge-1")
	wantKind(t, err, fault.NotFound, "device deployment before any")
	dd := hub.DeviceDeployment{DeviceID: "edge-1", GenerationID: "638512345678901234", Applied: t0,
		ModulesContent: map[string]map[string]any{hub.EdgeHub: {"properties.desired": map[string]any{"routes": map[string]any{"up": "FROM /messages/* INTO $upstream"}}}}}
	mustNil(t, s.PutDeviceDeployment(ctx(), dd), "put device deployment")
	dd.GenerationID = "638512345678905678"
	mustNil(t, s.PutDeviceDeployment(ctx(), dd), "replace device deployment")
	gotDD, err := s.DeviceDeployment(ctx(), "edge-1")
	mustNil(t, err, "get device deployment")
	if diff := cmp.Diff(dd, gotDD); diff != "" {
		t.Errorf("device deployment round trip (-want +got):\n%s", diff)
	}
	mustNil(t, s.DeleteDeviceDeployment(ctx(), "edge-1"), "delete device deployment")
	mustNil(t, s.DeleteDeviceDeployment(ctx(), "edge-1"), "delete a missing device deployment")
	_, err = s.DeviceDeployment(ctx(), "edge-1")
	wantKind(t, err, fault.NotFound, "device deployment after delete")
}
