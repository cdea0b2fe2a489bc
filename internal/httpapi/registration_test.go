package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

// enroll creates an individual enrollment with generated keys through the
// service API and returns its primary key.
func (a *testAPI) enroll(t *testing.T, body map[string]any) string {
	t.Helper()
	id := body["registrationId"].(string)
	r := a.do(t, "PUT", "/enrollments/"+url.PathEscape(id), body, nil)
	if r.status != 200 {
		t.Fatalf("create enrollment %s: %d %s", id, r.status, r.body)
	}
	return *decodeInto[wire.IndividualEnrollment](t, r).Attestation.SymmetricKey.PrimaryKey
}

func (a *testAPI) enrollGroup(t *testing.T, body map[string]any) (primary, secondary string) {
	t.Helper()
	r := a.do(t, "PUT", "/enrollmentGroups/"+body["enrollmentGroupId"].(string), body, nil)
	if r.status != 200 {
		t.Fatalf("create group: %d %s", r.status, r.body)
	}
	k := decodeInto[wire.EnrollmentGroup](t, r).Attestation.SymmetricKey
	return *k.PrimaryKey, *k.SecondaryKey
}

// deviceToken signs a device token the way the Node SDK does (raw sr).
func (a *testAPI) deviceToken(t testing.TB, regID, key string) string {
	t.Helper()
	tok, err := sas.SignKey(a.idScope+"/registrations/"+regID, "registration", key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// register runs PUT register and the poll, and returns both answers.
func (a *testAPI) register(t testing.TB, regID, token string, body any) (response, response) {
	t.Helper()
	base := "/" + a.idScope + "/registrations/" + url.PathEscape(regID)
	if body == nil {
		body = map[string]any{"registrationId": regID}
	}
	put := a.do(t, "PUT", base+"/register?api-version=2019-03-31", body, map[string]string{"Authorization": token})
	if put.status != 202 {
		return put, response{}
	}
	op := decodeInto[wire.RegistrationOperationStatus](t, put)
	poll := a.do(t, "GET", base+"/operations/"+op.OperationID+"?api-version=2019-03-31", `{}`, map[string]string{"Authorization": token})
	return put, poll
}

func TestRegisterIndividualOverHTTPS(t *testing.T) {
	a := newTestAPI(t)
	e := symEnrollment("dev-1")
	e["capabilities"] = map[string]any{"iotEdge": true}
	key := a.enroll(t, e)
	put, poll := a.register(t, "dev-1", a.deviceToken(t, "dev-1", key), map[string]any{"registrationId": "dev-1", "payload": map[string]any{"model": "x1", "n": 3}})
	if put.status != 202 || put.header.Get("Retry-After") != "1" {
		t.Fatalf("PUT register = %d, Retry-After %q, %s", put.status, put.header.Get("Retry-After"), put.body)
	}
	first := decodeInto[map[string]any](t, put)
	if first["status"] != "assigning" || first["operationId"] == "" || first["registrationState"].(map[string]any)["registrationId"] != "dev-1" {
		t.Errorf("first answer must be assigning with operationId and registrationState.registrationId: %s", put.body)
	}
	if poll.status != 200 {
		t.Fatalf("poll = %d %s", poll.status, poll.body)
	}
	op := decodeInto[wire.RegistrationOperationStatus](t, poll)
	rs := op.RegistrationState
	if op.Status != "assigned" || rs.Status != "assigned" || rs.AssignedHub != hubHost || rs.DeviceID != "dev-1" || rs.Substatus != "initialAssignment" || rs.CreatedDateTimeUTC == "" || rs.ETag == "" {
		t.Errorf("poll answer: %s", poll.body)
	}
	if rs.Payload["model"] != "x1" {
		t.Errorf("payload not echoed: %s", poll.body)
	}
	d, err := a.db.Device(context.Background(), "dev-1")
	if err != nil {
		t.Fatalf("no hub device: %v", err)
	}
	if d.PrimaryKey != key || !d.IoTEdge || d.Status != "enabled" || !strings.HasPrefix(d.DeviceScope, "ms-azure-iot-edge://dev-1-") {
		t.Errorf("hub device: %+v", d)
	}
	for _, m := range []string{"$edgeAgent", "$edgeHub"} {
		if _, err := a.db.Module(context.Background(), "dev-1", m); err != nil {
			t.Errorf("edge device lacks module %s: %v", m, err)
		}
	}
	tw, _ := a.db.Twin(context.Background(), "dev-1", "")
	if tw.Tags["environment"] != "test" || tw.Desired["n"] != json.Number("1") {
		t.Errorf("twin not seeded from the initial twin: %+v", tw)
	}
	reg := decodeInto[wire.DeviceRegistrationState](t, a.do(t, "GET", "/registrations/dev-1", nil, nil))
	if reg.Status != "assigned" || reg.AssignedHub != hubHost || reg.Payload["model"] != "x1" {
		t.Errorf("service API registration state: %+v", reg)
	}
	status := a.do(t, "POST", "/"+a.idScope+"/registrations/dev-1?api-version=2021-06-01", `{"registrationId":"dev-1"}`, map[string]string{"Authorization": a.deviceToken(t, "dev-1", key)})
	if status.status != 200 || decodeInto[wire.DeviceRegistrationResult](t, status).AssignedHub != hubHost {
		t.Errorf("device status lookup: %d %s", status.status, status.body)
	}
}

// TestTokenForms registers with every token form real clients send
// (dps-protocol.md §3.1).
func TestTokenForms(t *testing.T) {
	a := newTestAPI(t)
	key := a.enroll(t, symEnrollment("Sn-007"))
	k, _ := base64Decode(key)
	scope := a.idScope
	sign := func(sr, se, skn string, order string) string {
		tok := sas.Sign(sr, "", k, time.Unix(mustAtoi(t, se), 0))
		sig := tok[strings.Index(tok, "sig=")+4 : strings.Index(tok, "&se=")]
		parts := map[string]string{"sr": "sr=" + sr, "sig": "sig=" + sig, "se": "se=" + se, "skn": "skn=" + skn}
		var out []string
		for _, f := range strings.Split(order, ",") {
			out = append(out, parts[f])
		}
		return "SharedAccessSignature " + strings.Join(out, "&")
	}
	inHour := fmt.Sprint(time.Now().Add(time.Hour).Unix())
	in30s := fmt.Sprint(time.Now().Add(30 * time.Second).Unix())
	justExpired := fmt.Sprint(time.Now().Add(-30 * time.Second).Unix())
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"ok/node raw sr", sign(scope+"/registrations/Sn-007", inHour, "registration", "sr,sig,skn,se"), true},
		{"ok/c sdk lower-case escapes", sign(scope+"%2fregistrations%2fSn-007", inHour, "registration", "sr,sig,se,skn"), true},
		{"ok/c# and python upper-case escapes", sign(scope+"%2Fregistrations%2FSn-007", inHour, "registration", "sr,sig,se,skn"), true},
		{"ok/aziot lower-cased, 30 s lifetime", sign(strings.ToLower(scope)+"/registrations/sn-007", in30s, "registration", "sr,sig,se,skn"), true},
		{"ok/no skn (python, embedded c)", sign(scope+"%2Fregistrations%2FSn-007", inHour, "", "sr,sig,se"), true},
		{"ok/expired within clock skew", sign(scope+"/registrations/Sn-007", justExpired, "registration", "sr,sig,skn,se"), true},
		{"401/expired beyond skew", sign(scope+"/registrations/Sn-007", fmt.Sprint(time.Now().Add(-10*time.Minute).Unix()), "registration", "sr,sig,skn,se"), false},
		{"401/signed over another encoding than sent", strings.Replace(sign(scope+"/registrations/Sn-007", inHour, "registration", "sr,sig,skn,se"), "sr="+scope+"/", "sr="+scope+"%2F", 1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			put, poll := a.register(t, "Sn-007", tc.token, map[string]any{"registrationId": "Sn-007", "payload": nil})
			if !tc.ok {
				if put.status != 401 || put.errorBody(t).ErrorCode != 401002 {
					t.Fatalf("got %d %s, want 401 401002", put.status, put.body)
				}
				return
			}
			if poll.status != 200 || decodeInto[wire.RegistrationOperationStatus](t, poll).Status != "assigned" {
				t.Fatalf("PUT %d %s; poll %d %s", put.status, put.body, poll.status, poll.body)
			}
		})
	}
}

func TestRegistrationRefusals(t *testing.T) {
	a := newTestAPI(t)
	key := a.enroll(t, symEnrollment("good"))
	disabled := symEnrollment("off")
	disabled["provisioningStatus"] = "disabled"
	offKey := a.enroll(t, disabled)
	gp, _ := a.enrollGroup(t, map[string]any{"enrollmentGroupId": "fleet", "attestation": map[string]any{"type": "symmetricKey"}})
	offGroup, _ := a.enrollGroup(t, map[string]any{"enrollmentGroupId": "fleet-off", "attestation": map[string]any{"type": "symmetricKey"}, "provisioningStatus": "disabled"})
	blocked := symEnrollment("blocked-member")
	blocked["provisioningStatus"] = "disabled"
	a.enroll(t, blocked)
	derive := func(groupKey, id string) string {
		k, err := sas.DeriveDeviceKey(groupKey, id)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	wrongScope, _ := sas.SignKey("0ne99999999/registrations/good", "registration", key, time.Now().Add(time.Hour))
	tests := []struct {
		name     string
		regID    string
		token    string
		status   int    // of the PUT
		outcome  string // status of the poll when the PUT is 202
		deviceID string // hub device that must NOT exist afterwards
	}{
		{"401/wrong key", "good", a.deviceToken(t, "good", offKey), 401, "", "good"},
		{"401/expired token", "good", expiredToken(t, a.idScope, "good", key), 401, "", "good"},
		{"401/token for another registration id", "good", a.deviceToken(t, "other", key), 401, "", "good"},
		{"401/unknown id scope", "good", wrongScope, 401, "", "good"},
		{"401/no enrollment", "stranger", a.deviceToken(t, "stranger", key), 401, "", "stranger"},
		{"401/garbage token", "good", "SharedAccessSignature sr=x", 401, "", "good"},
		{"401/no token", "good", "", 401, "", "good"},
		{"disabled/individual enrollment", "off", a.deviceToken(t, "off", offKey), 202, "disabled", "off"},
		{"disabled/group", "member-9", a.deviceToken(t, "member-9", derive(offGroup, "member-9")), 202, "disabled", "member-9"},
		{"disabled/individual blocks a group member", "blocked-member", a.deviceToken(t, "blocked-member", derive(gp, "blocked-member")), 202, "disabled", "blocked-member"},
		{"400/invalid registration id", "bad id", a.deviceToken(t, "bad id", key), 400, "", "bad id"},
		{"400/body names another device", "good", a.deviceToken(t, "good", key), 400, "", "good"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"registrationId": tc.regID}
			if strings.HasPrefix(tc.name, "400/body") {
				body["registrationId"] = "someone-else"
			}
			put, poll := a.register(t, tc.regID, tc.token, body)
			if put.status != tc.status {
				t.Fatalf("PUT = %d %s, want %d", put.status, put.body, tc.status)
			}
			if tc.status == 202 {
				op := decodeInto[wire.RegistrationOperationStatus](t, poll)
				if poll.status != 200 || op.Status != tc.outcome || op.RegistrationState == nil || op.RegistrationState.Status != tc.outcome || op.RegistrationState.RegistrationID != tc.regID {
					t.Fatalf("poll = %d %s, want 200 with status %s", poll.status, poll.body, tc.outcome)
				}
			} else if e := put.errorBody(t); e.ErrorCode/1000 != tc.status || put.header.Get("x-ms-error-code") == "" {
				t.Errorf("error body %+v does not carry the status", e)
			}
			if _, err := a.db.Device(context.Background(), tc.deviceID); !fault.Is(err, fault.NotFound) {
				t.Errorf("a refused registration created hub device %q (%v)", tc.deviceID, err)
			}
		})
	}
}

func expiredToken(t *testing.T, scope, regID, key string) string {
	t.Helper()
	tok, err := sas.SignKey(scope+"/registrations/"+regID, "registration", key, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestGroupDeviceAndReprovisioning(t *testing.T) {
	a := newTestAPI(t)
	primary, secondary := a.enrollGroup(t, map[string]any{
		"enrollmentGroupId": "line-1", "attestation": map[string]any{"type": "symmetricKey"},
		"initialTwin": map[string]any{"tags": map[string]any{"line": 1}},
	})
	devKey, _ := sas.DeriveDeviceKey(secondary, "sensor-42")
	_, poll := a.register(t, "sensor-42", a.deviceToken(t, "sensor-42", devKey), nil)
	op := decodeInto[map[string]any](t, poll)
	rs := op["registrationState"].(map[string]any)
	if op["status"] != "assigned" || rs["symmetricKey"].(map[string]any)["enrollmentGroupId"] != "line-1" {
		t.Fatalf("group device poll: %s", poll.body)
	}
	d, err := a.db.Device(context.Background(), "sensor-42")
	wantPrimary, _ := sas.DeriveDeviceKey(primary, "sensor-42")
	if err != nil || d.PrimaryKey != wantPrimary || d.SecondaryKey != devKey {
		t.Fatalf("hub device keys must be the derived keys: %+v %v", d, err)
	}
	q := decodeInto[[]wire.DeviceRegistrationState](t, a.do(t, "POST", "/registrations/line-1/query", nil, nil))
	if len(q) != 1 || q[0].RegistrationID != "sensor-42" {
		t.Errorf("group registrations: %+v", q)
	}

	// The device reports a twin change; re-registering migrates it.
	tw, _ := a.db.Twin(context.Background(), "sensor-42", "")
	_, poll = a.register(t, "sensor-42", a.deviceToken(t, "sensor-42", devKey), nil)
	again := decodeInto[wire.RegistrationOperationStatus](t, poll)
	if again.RegistrationState.AssignedHub != hubHost || again.RegistrationState.DeviceID != "sensor-42" || again.RegistrationState.Substatus != "deviceDataMigrated" {
		t.Errorf("re-registration: %s", poll.body)
	}
	if tw2, _ := a.db.Twin(context.Background(), "sensor-42", ""); tw2.Version != tw.Version {
		t.Errorf("migrating re-registration changed the twin version %d → %d", tw.Version, tw2.Version)
	}

	// Deleting the registration record makes the next one initial.
	if r := a.do(t, "DELETE", "/registrations/sensor-42", nil, nil); r.status != 204 {
		t.Fatalf("delete registration: %d", r.status)
	}
	_, poll = a.register(t, "sensor-42", a.deviceToken(t, "sensor-42", devKey), nil)
	if s := decodeInto[wire.RegistrationOperationStatus](t, poll).RegistrationState.Substatus; s != "initialAssignment" {
		t.Errorf("after deleting the record, substatus = %q, want initialAssignment", s)
	}
}

func TestReprovisionResetsTwinWithoutMigration(t *testing.T) {
	a := newTestAPI(t)
	e := symEnrollment("reset-me")
	e["reprovisionPolicy"] = map[string]any{"updateHubAssignment": true, "migrateDeviceData": false}
	key := a.enroll(t, e)
	a.register(t, "reset-me", a.deviceToken(t, "reset-me", key), nil)
	e["initialTwin"] = map[string]any{"tags": map[string]any{"environment": "prod"}}
	if r := a.do(t, "PUT", "/enrollments/reset-me", e, nil); r.status != 200 {
		t.Fatal(r.status)
	}
	_, poll := a.register(t, "reset-me", a.deviceToken(t, "reset-me", key), nil)
	if s := decodeInto[wire.RegistrationOperationStatus](t, poll).RegistrationState.Substatus; s != "deviceDataReset" {
		t.Errorf("substatus = %q, want deviceDataReset", s)
	}
	if tw, _ := a.db.Twin(context.Background(), "reset-me", ""); tw.Tags["environment"] != "prod" || tw.Version != 2 {
		t.Errorf("twin after reset: %+v", tw)
	}
}

// TestConcurrentRegistrationsOneDevice races ten registrations of one
// device: all succeed and exactly one hub identity results.
func TestConcurrentRegistrationsOneDevice(t *testing.T) {
	a := newTestAPI(t)
	key := a.enroll(t, symEnrollment("racer"))
	var wg sync.WaitGroup
	results := make(chan string, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, poll := a.register(t, "racer", a.deviceToken(t, "racer", key), nil)
			var op wire.RegistrationOperationStatus
			_ = json.Unmarshal(poll.body, &op)
			results <- op.Status
		}()
	}
	wg.Wait()
	close(results)
	for s := range results {
		if s != "assigned" {
			t.Errorf("a concurrent registration ended %q", s)
		}
	}
	d, err := a.db.Device(context.Background(), "racer")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := a.db.Device(context.Background(), "racer")
	if again.GenerationID != d.GenerationID {
		t.Errorf("device recreated")
	}
	reg, err := a.db.Registration(context.Background(), "racer")
	if err != nil || reg.Status != dps.Assigned {
		t.Errorf("registration record: %+v %v", reg, err)
	}
}

func TestPollErrors(t *testing.T) {
	a := newTestAPI(t)
	key := a.enroll(t, symEnrollment("p1"))
	other := a.enroll(t, symEnrollment("p2"))
	put, _ := a.register(t, "p1", a.deviceToken(t, "p1", key), nil)
	op := decodeInto[wire.RegistrationOperationStatus](t, put).OperationID
	base := "/" + a.idScope + "/registrations/"
	if r := a.do(t, "GET", base+"p2/operations/"+op+"?api-version=2019-03-31", nil, map[string]string{"Authorization": a.deviceToken(t, "p2", other)}); r.status != 404 {
		t.Errorf("polling another device's operation = %d, want 404", r.status)
	}
	if r := a.do(t, "GET", base+"p1/operations/nope?api-version=2019-03-31", nil, map[string]string{"Authorization": a.deviceToken(t, "p1", key)}); r.status != 404 {
		t.Errorf("unknown operation = %d, want 404", r.status)
	}
	if r := a.do(t, "GET", base+"p1/operations/"+op+"?api-version=2019-03-31", nil, map[string]string{"Authorization": a.deviceToken(t, "p1", other)}); r.status != 401 {
		t.Errorf("poll with a wrong key = %d, want 401", r.status)
	}
	if r := a.do(t, "PUT", base+"p1/register?api-version=2019-03-31", `{"registrationId":"p1","tpm":{"endorsementKey":"AA=="}}`, map[string]string{"Authorization": a.deviceToken(t, "p1", key)}); r.status != 400 || r.errorBody(t).ErrorCode != 400008 {
		t.Errorf("TPM body = %d %s, want 400 400008", r.status, r.body)
	}
}
