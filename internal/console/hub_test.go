package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/usher-iot/usher/internal/hub"
)

func TestHubPages(t *testing.T) {
	tc := newTestConsole(t)
	ctx := context.Background()
	edge := true
	for _, spec := range []hub.DeviceSpec{{ID: "thermo-1"}, {ID: "edge-1", IoTEdge: &edge}, {ID: "odd$id'(1)"}} {
		if _, err := tc.hub.CreateDevice(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tc.hub.PatchTwin(ctx, "thermo-1", "", hub.TwinPatch{Tags: map[string]any{"environment": "test"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.hub.PutConfiguration(ctx, hub.Configuration{
		ID: "eco-mode", TargetCondition: "tags.environment='test'", Priority: 7,
		Content: hub.ConfigurationContent{DeviceContent: map[string]any{"properties.desired.mode": "eco"}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	b := tc.signedIn(t, tc.owner)

	t.Run("devices", func(t *testing.T) {
		r := b.get("/console/hub/devices")
		for _, id := range []string{"thermo-1", "edge-1", "odd$id'(1)"} {
			if !has(r.body, "tr[data-device-id="+id+"]") {
				t.Errorf("table#devices has no row for %s", id)
			}
		}
	})
	t.Run("device twin", func(t *testing.T) {
		for _, path := range []string{"/console/hub/devices/thermo-1", "/console/hub/devices/odd$id%27%281%29"} {
			r := b.get(path)
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d", path, r.status)
			}
			var twin map[string]any
			if err := json.Unmarshal([]byte(text(r.body, "twin")), &twin); err != nil {
				t.Fatalf("pre#twin is not JSON: %v\n%s", err, text(r.body, "twin"))
			}
			if twin["deviceId"] == "" || twin["properties"] == nil {
				t.Errorf("pre#twin = %v", twin)
			}
			if !strings.Contains(text(r.body, "twin"), "\n  ") {
				t.Errorf("pre#twin is not pretty-printed")
			}
		}
		r := b.get("/console/hub/devices/thermo-1")
		if twin := text(r.body, "twin"); !strings.Contains(twin, `"environment": "test"`) || !strings.Contains(twin, `"eco-mode"`) {
			t.Errorf("the twin lacks its tag or its configuration: %s", twin)
		}
	})
	t.Run("404/unknown device", func(t *testing.T) {
		if r := b.get("/console/hub/devices/nope"); r.status != http.StatusNotFound || text(r.body, "error-message") == "" {
			t.Errorf("status %d", r.status)
		}
	})
	t.Run("deployments", func(t *testing.T) {
		r := b.get("/console/hub/deployments")
		if !has(r.body, "table#deployments") || !has(r.body, "tr[data-deployment-id=eco-mode]") {
			t.Fatal("no row for eco-mode")
		}
		for _, want := range []string{"tags.environment=&#39;test&#39;", "<td>7</td>", "targetedCount: 1", "appliedCount: 1", "Device configuration"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("table#deployments lacks %q", want)
			}
		}
	})
	t.Run("overview counts", func(t *testing.T) {
		r := b.get("/console/")
		for id, want := range map[string]string{"count-devices": "3", "count-deployments": "1", "count-enrollments": "0", "count-groups": "0"} {
			if got := text(r.body, id); got != want {
				t.Errorf("#%s = %q, want %s", id, got, want)
			}
		}
	})
}
