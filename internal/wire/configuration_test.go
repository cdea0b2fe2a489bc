package wire_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/wire"
)

// captureAddConfiguration is the body azure-iothub 1.16.6 sends for
// Registry.addConfiguration (shared/spec/wire/hub-service-registry.md §11).
const captureAddConfiguration = `{
  "id": "cap-config-1",
  "content": {"deviceContent": {"properties.desired.settings": {"mode": "eco"}}},
  "targetCondition": "tags.site='lab-9'",
  "priority": 10,
  "labels": {"team": "qa"},
  "metrics": {"queries": {"applied": "SELECT deviceId FROM devices WHERE properties.reported.settings.mode='eco'"}},
  "schemaVersion": "1.0"
}`

// dotnetEdgeDeployment is how the .NET service SDK serialises a
// Configuration: the absent kinds of content as null, read-only fields
// echoed with default values.
const dotnetEdgeDeployment = `{
  "id": "base-deploy", "schemaVersion": null, "labels": null,
  "content": {"deviceContent": null, "modulesContent": {
    "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": {}}},
    "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {"up": "FROM /messages/* INTO $upstream"}}},
    "filter": {"properties.desired.threshold": 21}
  }, "moduleContent": null},
  "contentType": null, "targetCondition": "*", "createdTimeUtc": "0001-01-01T00:00:00", "lastUpdatedTimeUtc": "0001-01-01T00:00:00",
  "priority": 3, "systemMetrics": {"results": {}, "queries": {}}, "metrics": {"results": {}, "queries": {}}, "etag": null
}`

func decodeConfiguration(t *testing.T, body string) hub.Configuration {
	t.Helper()
	var c wire.Configuration
	if err := wire.Decode([]byte(body), &c); err != nil {
		t.Fatal(err)
	}
	return c.ToConfiguration()
}

func TestConfigurationFromNodeCapture(t *testing.T) {
	c := decodeConfiguration(t, captureAddConfiguration)
	want := hub.Configuration{
		ID: "cap-config-1", SchemaVersion: "1.0", Labels: map[string]string{"team": "qa"},
		Content:         hub.ConfigurationContent{DeviceContent: map[string]any{"properties.desired.settings": map[string]any{"mode": "eco"}}},
		TargetCondition: "tags.site='lab-9'", Priority: 10,
		MetricQueries: map[string]string{"applied": "SELECT deviceId FROM devices WHERE properties.reported.settings.mode='eco'"},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	at := time.Date(2026, 11, 25, 21, 23, 37, 579_000_000, time.UTC)
	c.Created, c.Updated, c.ETag = at, at, "MQ=="
	r := hub.ConfigurationReport{Configuration: c,
		SystemMetrics: hub.ConfigurationMetrics{
			Queries: map[string]string{"targetedCount": "select deviceId from devices where tags.site='lab-9'", "appliedCount": "select deviceId from devices where configurations.[[cap-config-1]].status = 'Applied'"},
			Results: map[string]int{"targetedCount": 2, "appliedCount": 1},
		},
		Metrics: hub.ConfigurationMetrics{Queries: c.MetricQueries, Results: map[string]int{"applied": 1}},
	}
	got, err := json.MarshalIndent(wire.FromConfiguration(r), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "configuration-adm.json", append(got, '\n'))
}

func TestConfigurationFromDotnet(t *testing.T) {
	c := decodeConfiguration(t, dotnetEdgeDeployment)
	if c.Content.Kind() != hub.EdgeDeployment || c.SchemaVersion != "" || c.ETag != "" || !c.Created.IsZero() || len(c.Content.ModulesContent) != 3 {
		t.Fatalf("decoded: %+v", c)
	}
	c.SchemaVersion = "1.0"
	c.Created = time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	c.Updated, c.ETag = c.Created, "MQ=="
	got, err := json.MarshalIndent(wire.FromConfiguration(hub.ConfigurationReport{Configuration: c}), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "configuration-edge.json", append(got, '\n'))
}

func TestApplyConfigurationContentBody(t *testing.T) {
	var body wire.ConfigurationContent
	if err := wire.Decode([]byte(`{"modulesContent": {"$edgeHub": {"properties.desired": {"routes": {}}}}, "deviceContent": null}`), &body); err != nil {
		t.Fatal(err)
	}
	if c := body.ToContent(); c.Kind() != hub.EdgeDeployment || c.ModulesContent[hub.EdgeHub] == nil {
		t.Errorf("content: %+v", c)
	}
	empty, err := json.Marshal(wire.ConfigurationContent{DeviceContent: map[string]any{}})
	if err != nil || string(empty) != `{"deviceContent":{}}` {
		t.Errorf("an empty deviceContent renders as %s, %v", empty, err)
	}
}

func TestConfigurationContentKeepsRoutesReadable(t *testing.T) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	c := wire.ConfigurationContent{ModulesContent: map[string]map[string]any{"$edgeHub": {"properties.desired.routes.r": "FROM /messages/* WHERE a < 1 && b > 2 INTO $upstream"}}}
	if err := enc.Encode(c); err != nil {
		t.Fatal(err)
	}
	if want := `{"modulesContent":{"$edgeHub":{"properties.desired.routes.r":"FROM /messages/* WHERE a < 1 && b > 2 INTO $upstream"}}}` + "\n"; b.String() != want {
		t.Errorf("got %s", b.String())
	}
}
