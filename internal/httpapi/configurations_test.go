package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

// edgeDeployment is a standard IoT Edge deployment as the az CLI sends it.
func edgeDeployment(id string, priority int, target string) map[string]any {
	return map[string]any{
		"id": id, "schemaVersion": "1.0", "labels": map[string]any{"stage": "test"}, "contentType": "assignments",
		"targetCondition": target, "priority": priority,
		"content": map[string]any{
			"deviceContent": nil, "moduleContent": nil, // .NET sends the absent kinds as null
			"modulesContent": map[string]any{
				"$edgeAgent": map[string]any{"properties.desired": map[string]any{
					"schemaVersion": "1.1",
					"runtime":       map[string]any{"type": "docker", "settings": map[string]any{"minDockerVersion": "v1.25"}},
					"systemModules": map[string]any{
						"edgeAgent": map[string]any{"type": "docker", "settings": map[string]any{"image": "mcr.microsoft.com/azureiotedge-agent:1.5", "createOptions": "{}"}},
						"edgeHub": map[string]any{"type": "docker", "status": "running", "restartPolicy": "always",
							"settings": map[string]any{"image": "mcr.microsoft.com/azureiotedge-hub:1.5", "createOptions": "{}"}},
					},
					"modules": map[string]any{"sensor": map[string]any{"version": "1.0", "type": "docker", "status": "running", "restartPolicy": "always",
						"settings": map[string]any{"image": "mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5", "createOptions": "{}"}}},
				}},
				"$edgeHub": map[string]any{"properties.desired": map[string]any{"schemaVersion": "1.1",
					"routes": map[string]any{"upstream": "FROM /messages/* INTO $upstream"}, "storeAndForwardConfiguration": map[string]any{"timeToLiveSecs": 7200}}},
			},
		},
		"metrics": map[string]any{"queries": map[string]any{"running": "SELECT deviceId FROM devices.modules WHERE moduleId = '$edgeAgent' AND properties.reported.lastDesiredStatus.code = 200"}},
		// read-only fields clients echo
		"etag": "ignored", "createdTimeUtc": "0001-01-01T00:00:00", "systemMetrics": map[string]any{"results": map[string]any{}, "queries": map[string]any{}},
	}
}

// provisionEdge enrolls and registers an IoT Edge device through DPS with
// tags environment=<env>.
func (a *testAPI) provisionEdge(t *testing.T, id, env string) {
	t.Helper()
	e := symEnrollment(id)
	e["capabilities"] = map[string]any{"iotEdge": true}
	e["initialTwin"] = map[string]any{"tags": map[string]any{"environment": env}}
	key := a.enroll(t, e)
	if _, poll := a.register(t, id, a.deviceToken(t, id, key), nil); poll.status != 200 {
		t.Fatalf("register %s: %d %s", id, poll.status, poll.body)
	}
}

func (a *testAPI) moduleTwin(t *testing.T, deviceID, moduleID string) hub.Twin {
	t.Helper()
	tw, err := a.db.Twin(context.Background(), deviceID, moduleID)
	if err != nil {
		t.Fatalf("twin %s/%s: %v", deviceID, moduleID, err)
	}
	return tw
}

// asJSON normalises a value through JSON, so Go maps and stored twins
// compare alike.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	var out any
	if err := json.Unmarshal(must(t, v), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEdgeDeploymentOverHTTPS(t *testing.T) {
	a := newTestAPI(t)
	auth := map[string]string{"Authorization": a.hubToken(t)}
	a.provisionEdge(t, "edge-early", "test")
	a.provisionEdge(t, "edge-prod", "prod")

	body := edgeDeployment("deploy-test", 10, "tags.environment='test'")
	r := a.do(t, "PUT", "/configurations/deploy-test?api-version=2021-04-12", body, auth)
	if r.status != 200 {
		t.Fatalf("PUT configuration: %d %s", r.status, r.body)
	}
	created := decodeInto[wire.Configuration](t, r)
	if created.ID != "deploy-test" || created.ETag == "" || r.header.Get("ETag") != `"`+created.ETag+`"` || created.CreatedTimeUTC == "" ||
		created.Content == nil || created.Content.ModulesContent == nil || *created.SchemaVersion != "1.0" || *created.ContentType != "assignments" {
		t.Errorf("created configuration: %s", r.body)
	}
	var raw map[string]any
	_ = json.Unmarshal(r.body, &raw)
	if content := raw["content"].(map[string]any); len(content) != 1 {
		t.Errorf("the answer's content must carry modulesContent only: %v", content)
	}

	a.provisionEdge(t, "edge-late", "test") // provisioned after the deployment exists
	want := asJSON(t, body["content"].(map[string]any)["modulesContent"].(map[string]any)["$edgeAgent"].(map[string]any)["properties.desired"])
	for _, id := range []string{"edge-early", "edge-late"} {
		agent := a.moduleTwin(t, id, hub.EdgeAgent)
		if diff := cmp.Diff(want, asJSON(t, agent.Desired)); diff != "" {
			t.Errorf("%s: $edgeAgent desired differs from the deployment (-want +got):\n%s", id, diff)
		}
		if agent.Configurations["deploy-test"] != hub.StatusApplied || agent.DesiredVersion != 2 {
			t.Errorf("%s: $edgeAgent configurations %v, desired version %d", id, agent.Configurations, agent.DesiredVersion)
		}
		if routes := a.moduleTwin(t, id, hub.EdgeHub).Desired["routes"]; asJSON(t, routes).(map[string]any)["upstream"] == nil {
			t.Errorf("%s: $edgeHub routes %v", id, routes)
		}
	}
	if d := a.moduleTwin(t, "edge-prod", hub.EdgeAgent); len(d.Desired) != 0 || len(d.Configurations) != 0 {
		t.Errorf("an untargeted device changed: %+v", d)
	}

	got := decodeInto[wire.Configuration](t, a.do(t, "GET", "/configurations/deploy-test?api-version=2021-04-12", nil, auth))
	wantResults := map[string]int{"targetedCount": 2, "appliedCount": 2, "reportedSuccessfulCount": 0, "reportedFailedCount": 0}
	if diff := cmp.Diff(wantResults, got.SystemMetrics.Results); diff != "" || got.Metrics.Results["running"] != 0 || got.ETag != created.ETag {
		t.Errorf("GET configuration metrics (-want +got):\n%s\n%+v", diff, got)
	}
	if q := got.SystemMetrics.Queries["appliedCount"]; !strings.Contains(q, "configurations.[[deploy-test]].status = 'Applied'") {
		t.Errorf("appliedCount query %q", q)
	}

	// Moving a device out of the target set leaves its modules; updating
	// the deployment's condition with its etag re-evaluates every device.
	upd := edgeDeployment("deploy-test", 10, "tags.environment IN ['test', 'prod']")
	r = a.do(t, "PUT", "/configurations/deploy-test?api-version=2021-04-12", upd, map[string]string{"Authorization": a.hubToken(t), "If-Match": `"` + created.ETag + `"`})
	if r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	if agent := a.moduleTwin(t, "edge-prod", hub.EdgeAgent); agent.Configurations["deploy-test"] != hub.StatusApplied {
		t.Errorf("edge-prod after the target condition widened: %v", agent.Configurations)
	}

	list := decodeInto[[]wire.Configuration](t, a.do(t, "GET", "/configurations?top=5&api-version=2021-04-12", nil, auth))
	if len(list) != 1 || list[0].ID != "deploy-test" || list[0].SystemMetrics.Results["appliedCount"] != 3 {
		t.Errorf("list: %+v", list)
	}
}

func TestConfigurationErrorsOverHTTPS(t *testing.T) {
	a := newTestAPI(t)
	auth := func(extra ...string) map[string]string {
		h := map[string]string{"Authorization": a.hubToken(t)}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		return h
	}
	adm := map[string]any{"id": "adm-1", "content": map[string]any{"deviceContent": map[string]any{"properties.desired.settings": map[string]any{"mode": "eco"}}},
		"targetCondition": "tags.site='lab-9'", "priority": 10}
	r := a.do(t, "PUT", "/configurations/adm-1?api-version=2021-04-12", adm, auth())
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	etag := decodeInto[wire.Configuration](t, r).ETag

	reader, err := access.NewPolicy(access.Hub, "configreader", access.RegistryRead)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.db.CreatePolicy(context.Background(), reader); err != nil {
		t.Fatal(err)
	}
	readTok, err := sas.SignKey(hubHost, reader.Name, reader.PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	changed := func(f func(map[string]any)) map[string]any {
		var c map[string]any
		_ = json.Unmarshal(must(t, adm), &c)
		f(c)
		return c
	}

	tests := []struct {
		name, method, path string
		body               any
		headers            map[string]string
		status             int
		message            string
	}{
		{"404/unknown configuration", "GET", "/configurations/nope", nil, auth(), 404, "not found"},
		{"409/create of an existing id", "PUT", "/configurations/adm-1", adm, auth(), 409, "already exists"},
		{"412/stale etag", "PUT", "/configurations/adm-1", adm, auth("If-Match", `"stale"`), 412, "etag"},
		{"400/content changed", "PUT", "/configurations/adm-1", changed(func(c map[string]any) {
			c["content"] = map[string]any{"deviceContent": map[string]any{"properties.desired.settings": map[string]any{"mode": "turbo"}}}
		}), auth("If-Match", "*"), 400, "cannot change"},
		{"400/invalid target condition", "PUT", "/configurations/adm-2", changed(func(c map[string]any) { c["id"], c["targetCondition"] = "adm-2", "tags.site = " }), auth(), 400, "targetCondition"},
		{"400/id mismatch", "PUT", "/configurations/adm-3", adm, auth(), 400, "does not match"},
		{"400/upper case id", "PUT", "/configurations/ADM", changed(func(c map[string]any) { c["id"] = "ADM" }), auth(), 400, "lower case"},
		{"400/two kinds of content", "PUT", "/configurations/adm-4", changed(func(c map[string]any) {
			c["id"], c["content"] = "adm-4", map[string]any{"deviceContent": map[string]any{}, "modulesContent": map[string]any{}}
		}), auth(), 400, "exactly one"},
		{"401/read-only policy writes", "PUT", "/configurations/adm-5", changed(func(c map[string]any) { c["id"] = "adm-5" }), map[string]string{"Authorization": readTok}, 401, ""},
		{"200/read-only policy reads", "GET", "/configurations/adm-1", nil, map[string]string{"Authorization": readTok}, 200, ""},
		{"400/top not a number", "GET", "/configurations?top=x", nil, auth(), 400, "top"},
		{"412/delete with stale etag", "DELETE", "/configurations/adm-1", nil, auth("If-Match", `"stale"`), 412, ""},
		{"404/apply to unknown device", "POST", "/devices/nobody/applyConfigurationContent", map[string]any{"modulesContent": map[string]any{}}, auth(), 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sep := "?"
			if strings.Contains(tc.path, "?") {
				sep = "&"
			}
			r := a.do(t, tc.method, tc.path+sep+"api-version=2021-04-12", tc.body, tc.headers)
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.status < 300 {
				return
			}
			if r.header.Get("iothub-errorcode") == "" {
				t.Errorf("no iothub-errorcode header")
			}
			body := decodeInto[wire.HubErrorBody](t, r)
			if !strings.HasPrefix(body.Message, "ErrorCode:") || !strings.Contains(body.Message, tc.message) {
				t.Errorf("Message %q does not carry %q", body.Message, tc.message)
			}
		})
	}

	r = a.do(t, "POST", "/configurations/testQueries?api-version=2021-04-12",
		map[string]any{"targetCondition": "tags.x = ", "customMetricQueries": map[string]any{"ok": "SELECT deviceId FROM devices", "bad": "SELECT deviceId FROM"}}, auth())
	qt := decodeInto[wire.ConfigurationQueriesTestResponse](t, r)
	if r.status != 200 || qt.TargetConditionError == "" || len(qt.CustomMetricQueryErrors) != 1 || qt.CustomMetricQueryErrors["bad"] == "" {
		t.Errorf("testQueries: %d %s", r.status, r.body)
	}
	r = a.do(t, "POST", "/configurations/testQueries?api-version=2021-04-12", map[string]any{"targetCondition": "*"}, auth())
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"targetConditionError":"","customMetricQueryErrors":{}}` {
		t.Errorf("testQueries without problems: %d %s", r.status, r.body)
	}

	if r := a.do(t, "DELETE", "/configurations/adm-1?api-version=2021-04-12", nil, auth("If-Match", `"`+etag+`"`)); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := a.do(t, "GET", "/configurations/adm-1?api-version=2021-04-12", nil, auth()); r.status != 404 {
		t.Errorf("GET after delete: %d", r.status)
	}
	if list := decodeInto[[]wire.Configuration](t, a.do(t, "GET", "/configurations?api-version=2021-04-12", nil, auth())); len(list) != 0 {
		t.Errorf("list after delete: %+v", list)
	}
}

func TestApplyConfigurationContentOverHTTPS(t *testing.T) {
	a := newTestAPI(t)
	auth := map[string]string{"Authorization": a.hubToken(t)}
	a.provisionEdge(t, "edge-1", "lab")
	content := edgeDeployment("unused", 0, "")["content"].(map[string]any)
	r := a.do(t, "POST", "/devices/edge-1/applyConfigurationContent?api-version=2021-04-12", content, auth)
	if r.status != 204 {
		t.Fatalf("apply: %d %s", r.status, r.body)
	}
	want := asJSON(t, content["modulesContent"].(map[string]any)["$edgeHub"].(map[string]any)["properties.desired"])
	if diff := cmp.Diff(want, asJSON(t, a.moduleTwin(t, "edge-1", hub.EdgeHub).Desired)); diff != "" {
		t.Errorf("$edgeHub desired (-want +got):\n%s", diff)
	}

	// The legacy body name (old az CLI set-modules) works too.
	legacy := map[string]any{"moduleContent": map[string]any{"$edgeHub": map[string]any{"properties.desired": map[string]any{"schemaVersion": "1.1", "routes": map[string]any{}}}}}
	if r := a.do(t, "POST", "/devices/edge-1/applyConfigurationContent?api-version=2021-04-12", legacy, auth); r.status != 204 {
		t.Fatalf("apply legacy: %d %s", r.status, r.body)
	}
	if routes := a.moduleTwin(t, "edge-1", hub.EdgeHub).Desired["routes"].(map[string]any); len(routes) != 0 {
		t.Errorf("routes after the legacy apply: %v", routes)
	}

	if r := a.do(t, "PUT", "/configurations/everyone?api-version=2021-04-12", edgeDeployment("everyone", 1, "*"), auth); r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := a.do(t, "POST", "/devices/edge-1/applyConfigurationContent?api-version=2021-04-12", content, auth); r.status != 400 {
		t.Errorf("per-device content on a device an automatic deployment targets: %d %s", r.status, r.body)
	}
}
