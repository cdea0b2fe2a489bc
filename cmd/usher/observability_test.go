package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/deviceclient"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

// genericDenial is all a device learns about a failed attestation.
const genericDenial = "the device could not be authenticated"

// register registers a device over transport and returns the result and
// the error deviceclient gives.
func (s *testServer) register(t *testing.T, transport, regID, key string) (deviceclient.Result, error) {
	t.Helper()
	addr := s.Info.HTTPSAddr
	if transport == deviceclient.MQTT {
		addr = s.Info.MQTTAddr
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return deviceclient.Register(ctx, deviceclient.Options{Endpoint: addr, IDScope: s.Info.IDScope, RegistrationID: regID, Key: key,
		Transport: transport, RootCAs: pool(t, s.Info.CAFile), ServerName: "localhost"})
}

// refusedWith checks that err is DPS's generic 401 and returns its
// tracking ID.
func refusedWith(t *testing.T, err error) string {
	t.Helper()
	var se *deviceclient.ServiceError
	if !errors.As(err, &se) {
		t.Fatalf("registration error = %v, want a 401 from DPS", err)
	}
	if se.Status != 401 || se.Message != genericDenial || se.TrackingID == "" {
		t.Fatalf("device saw %d %q (trackingId %q), want 401 %q with a tracking ID", se.Status, se.Message, se.TrackingID, genericDenial)
	}
	return se.TrackingID
}

// metricsURL reads the metrics address from the banner.
func (s *testServer) metricsURL(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`Metrics:\s+(http://\S+/metrics)`).FindStringSubmatch(s.Banner)
	if m == nil {
		t.Fatalf("the banner names no metrics address:\n%s", s.Banner)
	}
	return m[1]
}

// scrape fetches the metrics as sample lines keyed by name{labels}, with
// labels in the order the exposition sorts them (by name).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsAfterRegistrations registers devices over HTTPS and MQTT,
// refuses one on each, and reads the counts back from /metrics on its own
// listener.
func TestMetricsAfterRegistrations(t *testing.T) {
	s := startServer(t, "--metrics-addr", "127.0.0.1:0")
	url := s.metricsURL(t)
	if host, _, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/metrics")); host != "127.0.0.1" || strings.Contains(url, s.Info.HTTPSAddr) {
		t.Fatalf("metrics URL %s: want its own listener on 127.0.0.1", url)
	}
	key := createdKey(t, s, "enrollment", "create", "--enrollment-id", "metered-1")
	key2 := createdKey(t, s, "enrollment", "create", "--enrollment-id", "metered-2")
	other := createdKey(t, s, "enrollment", "create", "--enrollment-id", "bystander")
	for _, tc := range []struct{ transport, id, key string }{{"https", "metered-1", key}, {"mqtt", "metered-2", key2}} {
		if r, err := s.register(t, tc.transport, tc.id, tc.key); err != nil || r.Status != "assigned" {
			t.Fatalf("%s registration: %+v, %v", tc.transport, r, err)
		}
	}
	for _, tr := range []string{"https", "mqtt"} {
		_, err := s.register(t, tr, "metered-1", other)
		refusedWith(t, err)
	}

	got := scrape(t, url)
	want := map[string]float64{
		`usher_registrations_total{outcome="assigned",transport="https"}`:        1,
		`usher_registrations_total{outcome="assigned",transport="mqtt"}`:         1,
		`usher_registrations_total{outcome="unauthenticated",transport="https"}`: 1,
		`usher_registrations_total{outcome="unauthenticated",transport="mqtt"}`:  1,
		`usher_registrations_total{outcome="failed",transport="https"}`:          0,
		`usher_registrations_total{outcome="throttled",transport="mqtt"}`:        0,
		`usher_registration_duration_seconds_count{transport="https"}`:           2,
		`usher_registration_duration_seconds_count{transport="mqtt"}`:            2,
		`usher_http_requests_total{route="device-register",status="202"}`:        1,
		`usher_http_requests_total{route="device-register",status="401"}`:        1,
		`usher_http_requests_total{route="device-poll",status="200"}`:            1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for _, k := range []string{
		`usher_store_operation_duration_seconds_count{operation="operation.put"}`,
		`usher_store_operation_duration_seconds_count{operation="enrollment.read"}`,
		`usher_store_operation_duration_seconds_count{operation="audit.append"}`,
		`usher_http_requests_total{route="enrollments",status="200"}`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if got[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}
	if _, ok := got[`usher_mqtt_connections{kind="dps"}`]; !ok {
		t.Errorf("usher_mqtt_connections{kind=\"dps\"} is missing")
	}
	// Only /metrics is served there.
	resp, err := http.Get(strings.TrimSuffix(url, "/metrics") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /healthz on the metrics listener = %d, want 404", resp.StatusCode)
	}
	// And not on the HTTPS listener.
	resp, err = caClient(t, s.Info.CAFile).Get("https://" + s.Info.HTTPSAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /metrics on the HTTPS listener = %d, want 404", resp.StatusCode)
	}
}

// TestNoMetricsListenerByDefault: without --metrics-addr nothing new
// listens and the banner names no metrics.
func TestNoMetricsListenerByDefault(t *testing.T) {
	s := startServer(t)
	if strings.Contains(s.Banner, "Metrics:") {
		t.Errorf("the banner names metrics without --metrics-addr:\n%s", s.Banner)
	}
	if got := DefaultConfig().MetricsAddr; got != "" {
		t.Errorf("default metrics-addr = %q, want empty", got)
	}
}

// logLine is the part of a JSON log line the tests read.
type logLine struct {
	Msg        string `json:"msg"`
	Level      string `json:"level"`
	TrackingID string `json:"trackingId"`
	Status     int    `json:"status"`
	Route      string `json:"route"`
	Err        string `json:"err"`
}

// logLines returns the JSON log lines with tracking ID id.
func logLines(t *testing.T, log, id string) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(log, "\n") {
		var v logLine
		if json.Unmarshal([]byte(l), &v) == nil && v.TrackingID == id {
			out = append(out, v)
		}
	}
	return out
}

// TestTrackingIDInErrorBodyAndLog: the trackingId a refused device gets,
// over HTTPS and MQTT, names the request's JSON log line, which carries
// the internal reason the device does not see.
func TestTrackingIDInErrorBodyAndLog(t *testing.T) {
	s := startServer(t, "--log-format", "json", "--log-level", "debug")
	createdKey(t, s, "enrollment", "create", "--enrollment-id", "tracked")
	wrong := createdKey(t, s, "enrollment", "create", "--enrollment-id", "other")
	for _, tc := range []struct{ transport, msg string }{{"https", "https request"}, {"mqtt", "MQTT DPS request"}} {
		t.Run(tc.transport, func(t *testing.T) {
			_, err := s.register(t, tc.transport, "tracked", wrong)
			id := refusedWith(t, err)
			var lines []logLine
			deadline := time.Now().Add(10 * time.Second)
			for len(lines) == 0 && time.Now().Before(deadline) {
				lines = logLines(t, s.Stderr.String(), id)
				if len(lines) == 0 {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("%d log lines carry trackingId %s, want 1; log:\n%s", len(lines), id, s.Stderr.String())
			}
			l := lines[0]
			if l.Msg != tc.msg || l.Status != 401 || l.Level != "DEBUG" {
				t.Errorf("log line = %+v, want %q at DEBUG with status 401", l, tc.msg)
			}
			if !strings.Contains(l.Err, "signature does not match the individual enrollment's keys") {
				t.Errorf("the log line's err %q lacks the internal reason", l.Err)
			}
		})
	}
	// Every HTTPS answer names its tracking ID, success or not.
	resp, err := caClient(t, s.Info.CAFile).Get("https://" + s.Info.HTTPSAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("x-ms-request-id"); id == "" || len(logLines(t, s.Stderr.String(), id)) != 1 {
		t.Errorf("healthz answered x-ms-request-id %q, which names no single log line", id)
	}
	if strings.Contains(s.Stderr.String(), "SharedAccessSignature") {
		t.Errorf("the log holds a SAS token")
	}
}

// auditEntries runs `usher audit --json` with args until check accepts
// the entries or 15 s pass (refusals are written in the background).
func auditEntries(t *testing.T, s *testServer, check func([]wire.AuditEntry) bool, args ...string) []wire.AuditEntry {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := s.mustUsher(t, append([]string{"audit", "--json"}, args...)...)
		entries := mustDecode[[]wire.AuditEntry](t, out)
		if check(entries) || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func find(entries []wire.AuditEntry, kind, action, subject string) *wire.AuditEntry {
	for i := range entries {
		e := &entries[i]
		if e.Kind == kind && e.Action == action && strings.EqualFold(e.Subject, subject) {
			return e
		}
	}
	return nil
}

// TestAuditLog changes enrollments, groups and policies, has devices
// refused for several reasons, and reads it all back with `usher audit`
// and GET /audit: who, what, etags, plain reasons, never a key.
func TestAuditLog(t *testing.T) {
	s := startServer(t)
	var secrets []string
	keep := func(keys ...string) {
		for _, k := range keys {
			if k != "" {
				secrets = append(secrets, k)
			}
		}
	}
	// Enrollment: create, update, delete.
	created := mustDecode[record](t, s.mustUsher(t, "enrollment", "create", "--enrollment-id", "audited", "--show-keys"))
	keep(created.keys(t))
	updated := mustDecode[record](t, s.mustUsher(t, "enrollment", "update", "--enrollment-id", "audited", "--provisioning-status", "disabled"))
	s.mustUsher(t, "enrollment", "delete", "--enrollment-id", "audited")
	// Group: create, update, delete.
	group := mustDecode[record](t, s.mustUsher(t, "enrollment-group", "create", "--group-id", "audited-group", "--show-keys"))
	keep(group.keys(t))
	s.mustUsher(t, "enrollment-group", "update", "--group-id", "audited-group", "--provisioning-status", "disabled")
	s.mustUsher(t, "enrollment-group", "delete", "--group-id", "audited-group")
	// Policy: create, renew a key, delete.
	pol := mustDecode[policyView](t, s.mustUsher(t, "policy", "create", "auditor", "--rights", "EnrollmentRead"))
	keep(pol.PrimaryKey, pol.SecondaryKey)
	renewed := mustDecode[policyView](t, s.mustUsher(t, "policy", "renew-key", "auditor", "--key", "primary"))
	keep(renewed.PrimaryKey)
	s.mustUsher(t, "policy", "delete", "auditor")

	// Refused devices, each for its own reason.
	devKey := createdKey(t, s, "enrollment", "create", "--enrollment-id", "dev-a")
	offKey := createdKey(t, s, "enrollment", "create", "--enrollment-id", "dev-off", "--provisioning-status", "disabled")
	wrongKey := createdKey(t, s, "enrollment", "create", "--enrollment-id", "dev-b")
	keep(devKey, offKey, wrongKey)
	_, err := s.register(t, "https", "dev-a", wrongKey)
	wrongTrack := refusedWith(t, err)
	_, err = s.register(t, "mqtt", "stranger", devKey)
	strangerTrack := refusedWith(t, err)
	if r, err := s.register(t, "https", "dev-off", offKey); r.Status != "disabled" {
		t.Fatalf("disabled enrollment: %+v, %v", r, err)
	}
	expiredTrack := registerExpired(t, s, "dev-a", devKey)

	all := auditEntries(t, s, func(es []wire.AuditEntry) bool { return len(es) >= 9+3+4 }, "--top", "1000")
	owner := access.DPSOwner
	for _, c := range []struct {
		kind, action, subject, actor, transport string
	}{
		{"enrollment", "create", "audited", owner, "https"},
		{"enrollment", "update", "audited", owner, "https"},
		{"enrollment", "delete", "audited", owner, "https"},
		{"group", "create", "audited-group", owner, "https"},
		{"group", "update", "audited-group", owner, "https"},
		{"group", "delete", "audited-group", owner, "https"},
		{"policy", "create", "auditor", "local:", "cli"},
		{"policy", "update", "auditor", "local:", "cli"},
		{"policy", "delete", "auditor", "local:", "cli"},
	} {
		e := find(all, c.kind, c.action, c.subject)
		if e == nil {
			t.Errorf("no %s %s of %s in the audit log", c.kind, c.action, c.subject)
			continue
		}
		if !strings.HasPrefix(e.Actor, c.actor) || e.Transport != c.transport || e.TimestampUTC == "" {
			t.Errorf("%s %s: actor %q via %q at %q, want %q via %q", c.kind, c.action, e.Actor, e.Transport, e.TimestampUTC, c.actor, c.transport)
		}
	}
	if e := find(all, "enrollment", "update", "audited"); e != nil && (e.ETagBefore != created.ETag || e.ETagAfter != updated.ETag) {
		t.Errorf("update etags %q → %q, want %q → %q", e.ETagBefore, e.ETagAfter, created.ETag, updated.ETag)
	}
	if e := find(all, "enrollment", "delete", "audited"); e != nil && (e.ETagBefore != updated.ETag || e.ETagAfter != "") {
		t.Errorf("delete etags %q → %q, want %q → \"\"", e.ETagBefore, e.ETagAfter, updated.ETag)
	}
	if e := find(all, "enrollment", "create", "audited"); e != nil && (e.ETagBefore != "" || e.ETagAfter != created.ETag) {
		t.Errorf("create etags %q → %q, want \"\" → %q", e.ETagBefore, e.ETagAfter, created.ETag)
	}
	if e := find(all, "policy", "create", "auditor"); e != nil && (e.Scope != "dps" || e.Detail != "rights EnrollmentRead") {
		t.Errorf("policy create: scope %q detail %q", e.Scope, e.Detail)
	}

	refusals := []struct {
		subject, transport, tracking, reason string
	}{
		{"dev-a", "https", wrongTrack, "signature does not match the individual enrollment's keys"},
		{"stranger", "mqtt", strangerTrack, "no enrollment or enrollment group admits this registration ID and key"},
		{"dev-off", "https", "", "the individual enrollment is disabled"},
		{"dev-a", "https", expiredTrack, "token expired at "},
	}
	for _, r := range refusals {
		var e *wire.AuditEntry
		for i := range all {
			if all[i].Kind == "attestation" && all[i].Subject == r.subject && strings.HasPrefix(all[i].Reason, r.reason) {
				e = &all[i]
			}
		}
		if e == nil {
			t.Errorf("no refusal of %s for %q in the audit log", r.subject, r.reason)
			continue
		}
		if e.Action != "refused" || e.Transport != r.transport || e.SourceAddress != "127.0.0.1" || e.Scope != s.Info.IDScope || e.Actor != "" {
			t.Errorf("refusal of %s: %+v", r.subject, *e)
		}
		if r.tracking != "" && e.TrackingID != r.tracking {
			t.Errorf("refusal of %s has trackingId %q; the device was told %q", r.subject, e.TrackingID, r.tracking)
		}
	}

	// Filters.
	only := auditEntries(t, s, func([]wire.AuditEntry) bool { return true }, "--kind", "attestation", "--registration-id", "DEV-A", "--since", "1h")
	if len(only) != 2 {
		t.Errorf("--kind attestation --registration-id DEV-A: %d entries, want 2: %+v", len(only), only)
	}
	if top := auditEntries(t, s, func([]wire.AuditEntry) bool { return true }, "--top", "3"); len(top) != 3 || top[0].Seq != all[0].Seq {
		t.Errorf("--top 3: %d entries starting at %v, want the newest 3", len(top), top)
	}
	if out, _, err := s.usher(t, "audit", "--kind", "nonsense"); err == nil {
		t.Errorf("--kind nonsense was accepted: %s", out)
	}

	// The table says it in plain words.
	table := s.mustUsher(t, "audit", "--top", "1000")
	for _, want := range []string{"Time", "Subject", "Who", "signature does not match the individual enrollment's keys", "127.0.0.1", owner, wrongTrack} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}

	// No key material anywhere.
	raw := s.mustUsher(t, "audit", "--json", "--top", "1000")
	for _, k := range secrets {
		if strings.Contains(raw, k) || strings.Contains(table, k) {
			t.Errorf("the audit log shows key %s…", k[:8])
		}
	}

	// GET /audit needs ServiceConfig.
	api := func(policy, key string) (int, []byte) {
		tok, err := sas.SignKey("localhost", policy, key, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "https://"+s.Info.HTTPSAddr+"/audit?api-version=2021-10-01&kind=attestation&top=2", nil)
		req.Header.Set("Authorization", tok)
		resp, err := caClient(t, s.Info.CAFile).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && resp.Header.Get("x-ms-continuation") == "" {
			t.Errorf("a full page of GET /audit has no x-ms-continuation")
		}
		return resp.StatusCode, b
	}
	ownerPolicy := mustDecode[policyView](t, s.mustUsher(t, "policy", "show", access.DPSOwner))
	status, body := api(ownerPolicy.Name, ownerPolicy.PrimaryKey)
	if page := mustDecode[[]wire.AuditEntry](t, string(body)); status != 200 || len(page) != 2 || page[0].Kind != "attestation" {
		t.Errorf("GET /audit as owner = %d %s", status, body)
	}
	reader := mustDecode[policyView](t, s.mustUsher(t, "policy", "create", "reader", "--rights", "EnrollmentRead,EnrollmentWrite,RegistrationStatusRead"))
	status, body = api(reader.Name, reader.PrimaryKey)
	if status != 401 || !strings.Contains(string(body), "ServiceConfig") {
		t.Errorf("GET /audit without ServiceConfig = %d %s, want 401 naming ServiceConfig", status, body)
	}
}

// registerExpired sends a registration with an expired token straight to
// the device API and returns the answer's tracking ID.
func registerExpired(t *testing.T, s *testServer, regID, key string) string {
	t.Helper()
	tok, err := sas.SignKey(s.Info.IDScope+"/registrations/"+regID, "registration", key, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, "https://"+s.Info.HTTPSAddr+"/"+s.Info.IDScope+"/registrations/"+regID+"/register?api-version=2021-06-01",
		strings.NewReader(`{"registrationId":"`+regID+`"}`))
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := caClient(t, s.Info.CAFile).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body wire.ErrorDetails
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 401 || body.Message != genericDenial || body.TrackingID == "" {
		t.Fatalf("expired token: %d %+v, want 401 %q", resp.StatusCode, body, genericDenial)
	}
	return body.TrackingID
}

func TestObservabilitySettings(t *testing.T) {
	tests := []struct {
		name            string
		flags           []string
		wantErr         string
		wantAge         time.Duration
		wantMaxEntries  int
		wantMetricsAddr string
	}{
		{"ok/defaults: no metrics, audit's own retention", nil, "", 0, 0, ""},
		{"ok/metrics and retention", []string{"--metrics-addr", "127.0.0.1:9464", "--audit-max-age", "30d", "--audit-max-entries", "5000"}, "", 30 * 24 * time.Hour, 5000, "127.0.0.1:9464"},
		{"ok/retention as a duration", []string{"--audit-max-age", "36h"}, "", 36 * time.Hour, 0, ""},
		{"invalid/metrics address", []string{"--metrics-addr", "9464"}, `metrics-addr "9464" is not host:port`, 0, 0, ""},
		{"invalid/age", []string{"--audit-max-age", "forever"}, "audit-max-age", 0, 0, ""},
		{"invalid/negative age", []string{"--audit-max-age", "-1h"}, "audit-max-age", 0, 0, ""},
		{"invalid/entries", []string{"--audit-max-entries", "0"}, "audit-max-entries", 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			addConfigFlags(fs)
			if err := fs.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(fs, noEnv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			age, n := cfg.auditRetention()
			if age != tc.wantAge || n != tc.wantMaxEntries || cfg.MetricsAddr != tc.wantMetricsAddr {
				t.Errorf("got age %v, max entries %d, metrics %q; want %v, %d, %q", age, n, cfg.MetricsAddr, tc.wantAge, tc.wantMaxEntries, tc.wantMetricsAddr)
			}
		})
	}
}

// TestAuditLogHub changes hub devices, twins and deployments through the
// hub's service API and reads the audit entries back: who, what, etags,
// never a key; what a device does itself (provisioning, reported
// properties) is not an operator's change and is not recorded.
func TestAuditLogHub(t *testing.T) {
	s := startServer(t)
	type device struct {
		ETag string `json:"etag"`
		Auth struct {
			SymmetricKey struct {
				PrimaryKey string `json:"primaryKey"`
			} `json:"symmetricKey"`
		} `json:"authentication"`
	}
	dev := mustDecode[device](t, s.mustUsher(t, "hub", "device", "create", "--device-id", "audited-dev"))
	disabled := mustDecode[device](t, s.mustUsher(t, "hub", "device", "update", "--device-id", "audited-dev", "--status", "disabled"))
	s.mustUsher(t, "hub", "twin", "update", "--device-id", "audited-dev", "--tags", `{"environment":"audit"}`)
	s.mustUsher(t, "hub", "deployment", "create", "--deployment-id", "audited-deployment", "--target-condition", "tags.environment='audit'", "--priority", "3",
		"--content", `{"modulesContent":{"$edgeAgent":{"properties.desired":{"schemaVersion":"1.1","runtime":{"type":"docker","settings":{}},"systemModules":{},"modules":{}}},"$edgeHub":{"properties.desired":{"schemaVersion":"1.1","routes":{},"storeAndForwardConfiguration":{"timeToLiveSecs":7200}}}}}`)
	s.mustUsher(t, "hub", "deployment", "delete", "--deployment-id", "audited-deployment")
	s.mustUsher(t, "hub", "device", "delete", "--device-id", "audited-dev")
	provisionDevice(t, s, "provisioned-dev") // the hub creates this device: not an operator's change

	entries := auditEntries(t, s, func(es []wire.AuditEntry) bool { return len(es) >= 6 }, "--top", "1000")
	hubOwner := "iothubowner"
	for _, c := range []struct{ kind, action, subject, detail string }{
		{"device", "create", "audited-dev", "status enabled"},
		{"device", "update", "audited-dev", "status disabled"},
		{"twin", "update", "audited-dev", "patched tags"},
		{"configuration", "create", "audited-deployment", `priority 3, target condition "tags.environment='audit'"`},
		{"configuration", "delete", "audited-deployment", ""},
		{"device", "delete", "audited-dev", ""},
	} {
		e := find(entries, c.kind, c.action, c.subject)
		if e == nil {
			t.Errorf("no %s %s of %s in the audit log", c.kind, c.action, c.subject)
			continue
		}
		if e.Actor != hubOwner || e.Transport != "https" || e.Detail != c.detail {
			t.Errorf("%s %s: actor %q via %q, detail %q; want %q via https, %q", c.kind, c.action, e.Actor, e.Transport, e.Detail, hubOwner, c.detail)
		}
	}
	// The audit log quotes every etag, as DPS's API does; the hub's JSON
	// shows them bare.
	if e := find(entries, "device", "update", "audited-dev"); e != nil && (e.ETagBefore != `"`+dev.ETag+`"` || e.ETagAfter != `"`+disabled.ETag+`"`) {
		t.Errorf("device update etags %q → %q, want %q → %q", e.ETagBefore, e.ETagAfter, dev.ETag, disabled.ETag)
	}
	for _, e := range entries {
		if strings.EqualFold(e.Subject, "provisioned-dev") && e.Kind != "enrollment" {
			t.Errorf("provisioning was audited as an operator's change: %+v", e)
		}
	}
	if only := auditEntries(t, s, func([]wire.AuditEntry) bool { return true }, "--kind", "twin"); len(only) != 1 {
		t.Errorf("--kind twin: %d entries, want 1: %+v", len(only), only)
	}
	raw := s.mustUsher(t, "audit", "--json", "--top", "1000")
	if strings.Contains(raw, dev.Auth.SymmetricKey.PrimaryKey) {
		t.Error("the audit log shows the device's key")
	}
}
