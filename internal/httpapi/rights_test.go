package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/httpapi"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

// rightsEndpoint is one row of the rights matrix: a request that succeeds
// with status ok when the credential may make it.
type rightsEndpoint struct {
	method, path string // path escaped, without api-version; {op} is the fixture's operation ID
	body         func() any
	headers      []string
	scope        access.Scope  // whose policies may call it
	need         access.Rights // rights a policy needs (all of them; one of them when anyOf)
	anyOf        bool
	device       string // the hub device a device-scoped token of which may call it ("" for none)
	registration bool   // the DPS device API: only the registration's own token
	ok           int
	prep         func(t *testing.T) // puts the state back before each call, as the owner
}

// rightsCredential is one column: who signs the request.
type rightsCredential struct {
	name   string
	scope  access.Scope  // a policy of this scope; "" for device tokens
	rights access.Rights // the policy's rights
	kind   int           // credPolicy, credDeviceSAS, credRegistration
	// exact: a policy token for the whole service, whose refusals must
	// name the right it lacks
	exact bool
	token func(t *testing.T, ep rightsEndpoint) string
}

const (
	credPolicy = iota
	credDeviceSAS
	credRegistration
)

// allows says what Azure allows: a policy of the endpoint's service with
// the rights it needs; a device's own token only where IoT Hub lets
// aziot-identityd manage its own modules; a registration token only on the
// DPS device API.
func (ep rightsEndpoint) allows(c rightsCredential) bool {
	switch c.kind {
	case credPolicy:
		if c.scope != ep.scope || ep.need == 0 {
			return false
		}
		if ep.anyOf {
			return c.rights&ep.need != 0
		}
		return c.rights&ep.need == ep.need
	case credDeviceSAS:
		return ep.device != ""
	default:
		return ep.registration
	}
}

func (ep rightsEndpoint) name() string { return ep.method + " " + ep.path }

// TestRightsMatrix sends every request of the DPS service API, the DPS
// device API and the hub service API with every credential: each policy
// right alone, the owners, a device's own SAS token, the `device` policy
// scoped to a device, and DPS registration tokens. Each must be allowed
// exactly when Azure allows it; every refusal is 401 on the endpoint's
// error surface, and a policy's refusal names the right it lacks. A last
// check makes sure no endpoint of the route table is missing from the
// matrix.
func TestRightsMatrix(t *testing.T) {
	a := newTestAPI(t)
	f := newRightsFixture(t, a)
	api := a.srv.Config.Handler.(*httpapi.API)

	endpoints := f.endpoints()
	creds := f.credentials(t)
	covered := map[string]bool{}
	allowed, refused := 0, 0
	for _, ep := range endpoints {
		route := api.RouteOf(ep.method, strings.ReplaceAll(ep.path, "{op}", "x"))
		if route == "" {
			t.Errorf("%s reaches no route", ep.name())
		}
		covered[route] = true
		for _, c := range creds {
			t.Run(ep.name()+"/"+c.name, func(t *testing.T) {
				if ep.prep != nil {
					ep.prep(t)
				}
				r := f.send(t, ep, c.token(t, ep))
				if ep.allows(c) {
					allowed++
					if r.status != ep.ok {
						t.Fatalf("allowed: got %d %s, want %d", r.status, r.body, ep.ok)
					}
					return
				}
				refused++
				checkRefusal(t, ep, c, r)
			})
		}
	}
	for _, rt := range api.Routes() {
		if !covered[rt] {
			t.Errorf("the matrix has no row for %s", rt)
		}
	}
	t.Logf("%d endpoints × %d credentials: %d allowed, %d refused", len(endpoints), len(creds), allowed, refused)
}

// checkRefusal checks a refusal: 401 in the endpoint's error shape, and,
// for a policy of the right service without the right, a message naming
// the right(s) it needs.
func checkRefusal(t *testing.T, ep rightsEndpoint, c rightsCredential, r response) {
	t.Helper()
	if r.status != http.StatusUnauthorized {
		t.Fatalf("refused: got %d %s, want 401", r.status, r.body)
	}
	var msg string
	if ep.scope == access.Hub {
		if got := r.header.Get("iothub-errorcode"); got != "IotHubUnauthorizedAccess" {
			t.Errorf("iothub-errorcode %q, want IotHubUnauthorizedAccess", got)
		}
		msg = decodeInto[wire.HubErrorBody](t, r).Message
		if !strings.HasPrefix(msg, "ErrorCode:IotHubUnauthorizedAccess;") {
			t.Errorf("Message %q does not start with ErrorCode:IotHubUnauthorizedAccess;", msg)
		}
	} else {
		e := decodeInto[wire.ErrorDetails](t, r)
		if e.ErrorCode/1000 != 401 || r.header.Get("x-ms-error-code") != itoa(e.ErrorCode) {
			t.Errorf("errorCode %d, x-ms-error-code %q, want 401xxx twice", e.ErrorCode, r.header.Get("x-ms-error-code"))
		}
		msg = e.Message
	}
	if !c.exact || c.scope != ep.scope || ep.need == 0 {
		return
	}
	names := ep.need.Names()
	if !ep.anyOf {
		names = (ep.need &^ c.rights).Names()
	}
	for _, n := range append(names, "Unauthorized") {
		if !strings.Contains(msg, n) {
			t.Errorf("message %q does not name %s", msg, n)
		}
	}
}

// rightsFixture is the state the matrix's requests act on.
type rightsFixture struct {
	a         *testAPI
	hubKey    string // every hub device and module of the fixture has it
	regKey    string // the key of enrollment m-dev
	regDelKey string // the key of enrollment m-regdel
	opID      string // an operation of m-dev
}

func newRightsFixture(t *testing.T, a *testAPI) *rightsFixture {
	t.Helper()
	key, err := sas.NewKey(32)
	if err != nil {
		t.Fatal(err)
	}
	f := &rightsFixture{a: a, hubKey: key}
	f.regKey = a.enroll(t, symEnrollment("m-dev"))
	f.regDelKey = a.enroll(t, symEnrollment("m-regdel"))
	a.enrollGroup(t, map[string]any{"enrollmentGroupId": "m-grp", "attestation": map[string]any{"type": "symmetricKey"}})
	f.registerDev(t)
	f.ownerHub(t, "PUT", "/devices/d1", f.device("d1", true), 200)
	f.ownerHub(t, "PUT", "/devices/d1/modules/m1", f.module("d1", "m1"), 200)
	f.ownerHub(t, "PUT", "/configurations/c1", edgeDeployment("c1", 1, "tags.nobody = 'here'"), 200)
	t.Cleanup(a.bus.Attach("d1", "", &methodConn{status: 200, payload: `{}`}))
	t.Cleanup(a.bus.Attach("d1", "m1", &methodConn{status: 200, payload: `{}`}))
	for _, right := range []access.Rights{access.ServiceConfig, access.EnrollmentRead, access.EnrollmentWrite, access.RegistrationStatusRead, access.RegistrationStatusWrite} {
		f.createPolicy(t, access.DPS, right)
	}
	for _, right := range []access.Rights{access.RegistryRead, access.RegistryWrite, access.ServiceConnect, access.DeviceConnect} {
		f.createPolicy(t, access.Hub, right)
	}
	return f
}

func (f *rightsFixture) createPolicy(t *testing.T, scope access.Scope, right access.Rights) {
	t.Helper()
	p, err := access.NewPolicy(scope, "only-"+right.String(), right)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.a.db.CreatePolicy(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// registerDev registers m-dev over the device API and keeps its operation.
func (f *rightsFixture) registerDev(t *testing.T) {
	t.Helper()
	put, poll := f.a.register(t, "m-dev", f.a.deviceToken(t, "m-dev", f.regKey), nil)
	if poll.status != 200 {
		t.Fatalf("register m-dev: %d %s / %d %s", put.status, put.body, poll.status, poll.body)
	}
	f.opID = decodeInto[wire.RegistrationOperationStatus](t, put).OperationID
}

func (f *rightsFixture) device(id string, edge bool) map[string]any {
	return map[string]any{"deviceId": id, "capabilities": map[string]any{"iotEdge": edge},
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": f.hubKey, "secondaryKey": f.hubKey}}}
}

func (f *rightsFixture) module(deviceID, id string) map[string]any {
	return map[string]any{"deviceId": deviceID, "moduleId": id,
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": f.hubKey, "secondaryKey": f.hubKey}}}
}

// ownerHub sends a hub request as iothubowner; want 0 accepts any answer.
func (f *rightsFixture) ownerHub(t *testing.T, method, path string, body any, want int) {
	t.Helper()
	if r := f.a.hubDo(t, method, path, body, ""); want != 0 && r.status != want {
		t.Fatalf("setup %s %s: %d %s", method, path, r.status, r.body)
	}
}

// ownerDPS sends a DPS request as provisioningserviceowner; want 0 accepts
// any answer.
func (f *rightsFixture) ownerDPS(t *testing.T, method, path string, body any, want int) {
	t.Helper()
	if r := f.a.do(t, method, path, body, nil); want != 0 && r.status != want {
		t.Fatalf("setup %s %s: %d %s", method, path, r.status, r.body)
	}
}

// recreateHub makes path exist afresh (delete, then create).
func (f *rightsFixture) recreateHub(path string, body any) func(t *testing.T) {
	return func(t *testing.T) {
		f.ownerHub(t, "DELETE", path, nil, 0)
		f.ownerHub(t, "PUT", path, body, 200)
	}
}

func (f *rightsFixture) recreateDPS(path string, body any) func(t *testing.T) {
	return func(t *testing.T) {
		f.ownerDPS(t, "DELETE", path, nil, 0)
		f.ownerDPS(t, "PUT", path, body, 200)
	}
}

func group(id string) map[string]any {
	return map[string]any{"enrollmentGroupId": id, "attestation": map[string]any{"type": "symmetricKey"}}
}

func (f *rightsFixture) endpoints() []rightsEndpoint {
	const (
		dps = access.DPS
		hub = access.Hub
		eR  = access.EnrollmentRead
		eW  = access.EnrollmentWrite
		rR  = access.RegistrationStatusRead
		rW  = access.RegistrationStatusWrite
		gR  = access.RegistryRead
		gW  = access.RegistryWrite
		sC  = access.ServiceConnect
	)
	body := func(v any) func() any { return func() any { return v } }
	query := body(map[string]any{"query": "SELECT * FROM enrollments"})
	twinQuery := body(map[string]any{"query": "SELECT * FROM devices"})
	method := body(map[string]any{"methodName": "ping", "payload": map[string]any{}, "responseTimeoutInSeconds": 5})
	twinPatch := body(map[string]any{"tags": map[string]any{"rights": "matrix"}, "properties": map[string]any{"desired": map[string]any{"n": 1}}})
	scope := "/" + f.a.idScope + "/registrations/m-dev"
	deleteFirst := func(path string, hubSide bool) func(t *testing.T) {
		return func(t *testing.T) {
			if hubSide {
				f.ownerHub(t, "DELETE", path, nil, 0)
			} else {
				f.ownerDPS(t, "DELETE", path, nil, 0)
			}
		}
	}
	return []rightsEndpoint{
		// DPS service API (dps-protocol.md §3.5, §8).
		{method: "POST", path: "/enrollments/query", body: query, scope: dps, need: eR, ok: 200},
		{method: "POST", path: "/enrollments", body: body(map[string]any{"mode": "create", "enrollments": []any{symEnrollment("m-bulk")}}), scope: dps, need: eW, ok: 200, prep: deleteFirst("/enrollments/m-bulk", false)},
		{method: "GET", path: "/enrollments/m-dev", scope: dps, need: eR, ok: 200},
		{method: "PUT", path: "/enrollments/m-put", body: body(symEnrollment("m-put")), scope: dps, need: eW, ok: 200, prep: deleteFirst("/enrollments/m-put", false)},
		{method: "DELETE", path: "/enrollments/m-del", scope: dps, need: eW, ok: 204, prep: f.recreateDPS("/enrollments/m-del", symEnrollment("m-del"))},
		{method: "POST", path: "/enrollments/m-dev/attestationmechanism", scope: dps, need: eR, ok: 200},
		{method: "POST", path: "/enrollmentGroups/query", body: body(map[string]any{"query": "SELECT * FROM enrollmentGroups"}), scope: dps, need: eR, ok: 200},
		{method: "POST", path: "/enrollmentGroups", body: body(map[string]any{"mode": "create", "enrollmentGroups": []any{group("m-gbulk")}}), scope: dps, need: eW, ok: 200, prep: deleteFirst("/enrollmentGroups/m-gbulk", false)},
		{method: "GET", path: "/enrollmentGroups/m-grp", scope: dps, need: eR, ok: 200},
		{method: "PUT", path: "/enrollmentGroups/m-gput", body: body(group("m-gput")), scope: dps, need: eW, ok: 200, prep: deleteFirst("/enrollmentGroups/m-gput", false)},
		{method: "DELETE", path: "/enrollmentGroups/m-gdel", scope: dps, need: eW, ok: 204, prep: f.recreateDPS("/enrollmentGroups/m-gdel", group("m-gdel"))},
		{method: "POST", path: "/enrollmentGroups/m-grp/attestationmechanism", scope: dps, need: eR, ok: 200},
		{method: "POST", path: "/registrations/m-grp/query", scope: dps, need: rR, ok: 200},
		{method: "GET", path: "/registrations/m-dev", scope: dps, need: rR, ok: 200},
		{method: "DELETE", path: "/registrations/m-regdel", scope: dps, need: rW, ok: 204, prep: func(t *testing.T) {
			if _, poll := f.a.register(t, "m-regdel", f.a.deviceToken(t, "m-regdel", f.regDelKey), nil); poll.status != 200 {
				t.Fatalf("register m-regdel: %d %s", poll.status, poll.body)
			}
		}},

		// DPS device API (dps-protocol.md §2): the registration's own proof only.
		{method: "PUT", path: scope + "/register", body: body(map[string]any{"registrationId": "m-dev"}), scope: dps, registration: true, ok: 202},
		{method: "GET", path: scope + "/operations/{op}", scope: dps, registration: true, ok: 200},
		{method: "POST", path: scope, body: body(map[string]any{"registrationId": "m-dev"}), scope: dps, registration: true, ok: 200},

		// Hub service API (hub-protocol.md §2–§5, §7.2; docs/decisions/0008).
		{method: "GET", path: "/devices", scope: hub, need: gR, ok: 200},
		{method: "POST", path: "/devices", body: body([]any{map[string]any{"id": "h-bulk", "importMode": "createOrUpdate"}}), scope: hub, need: gW, ok: 200},
		{method: "POST", path: "/devices/query", body: twinQuery, scope: hub, need: gR | sC, anyOf: true, ok: 200},
		{method: "GET", path: "/devices/d1", scope: hub, need: gR, device: "d1", ok: 200},
		{method: "PUT", path: "/devices/d1", body: body(f.device("d1", true)), headers: []string{"If-Match", "*"}, scope: hub, need: gW, ok: 200},
		{method: "DELETE", path: "/devices/h-del", scope: hub, need: gW, ok: 204, prep: f.recreateHub("/devices/h-del", f.device("h-del", false))},
		{method: "GET", path: "/devices/d1/modules", scope: hub, need: gR, device: "d1", ok: 200},
		{method: "GET", path: "/devices/d1/modules/m1", scope: hub, need: gR, device: "d1", ok: 200},
		{method: "PUT", path: "/devices/d1/modules/h-mput", body: body(f.module("d1", "h-mput")), scope: hub, need: gW, device: "d1", ok: 200, prep: deleteFirst("/devices/d1/modules/h-mput", true)},
		{method: "DELETE", path: "/devices/d1/modules/h-mdel", scope: hub, need: gW, device: "d1", ok: 204, prep: f.recreateHub("/devices/d1/modules/h-mdel", f.module("d1", "h-mdel"))},
		{method: "POST", path: "/devices/d1/applyConfigurationContent", body: body(edgeDeployment("unused", 0, "")["content"]), scope: hub, need: gW, ok: 204},
		{method: "GET", path: "/twins/d1", scope: hub, need: gR | sC, anyOf: true, ok: 200},
		{method: "PATCH", path: "/twins/d1", body: twinPatch, scope: hub, need: sC, ok: 200},
		{method: "PUT", path: "/twins/d1", body: twinPatch, scope: hub, need: sC, ok: 200},
		{method: "GET", path: "/twins/d1/modules/m1", scope: hub, need: gR | sC, anyOf: true, ok: 200},
		{method: "PATCH", path: "/twins/d1/modules/m1", body: twinPatch, scope: hub, need: sC, ok: 200},
		{method: "PUT", path: "/twins/d1/modules/m1", body: twinPatch, scope: hub, need: sC, ok: 200},
		{method: "POST", path: "/twins/d1/methods", body: method, scope: hub, need: sC, ok: 200},
		{method: "POST", path: "/twins/d1/modules/m1/methods", body: method, scope: hub, need: sC, ok: 200},
		{method: "POST", path: "/configurations/testQueries", body: body(map[string]any{"targetCondition": "tags.x = 1"}), scope: hub, need: gR, ok: 200},
		{method: "GET", path: "/configurations", scope: hub, need: gR, ok: 200},
		{method: "GET", path: "/configurations/c1", scope: hub, need: gR, ok: 200},
		{method: "PUT", path: "/configurations/h-cput", body: body(edgeDeployment("h-cput", 1, "tags.nobody = 'here'")), scope: hub, need: gW, ok: 200, prep: deleteFirst("/configurations/h-cput", true)},
		{method: "DELETE", path: "/configurations/h-cdel", scope: hub, need: gW, ok: 204, prep: f.recreateHub("/configurations/h-cdel", edgeDeployment("h-cdel", 1, "tags.nobody = 'here'"))},
	}
}

// credentials are the matrix's columns.
func (f *rightsFixture) credentials(t *testing.T) []rightsCredential {
	ctx := context.Background()
	policy := func(scope access.Scope, name string) rightsCredential {
		p, err := f.a.db.Policy(ctx, scope, name)
		if err != nil {
			t.Fatal(err)
		}
		aud := audience
		if scope == access.Hub {
			aud = hubHost
		}
		return rightsCredential{name: string(scope) + ":" + name, scope: scope, rights: p.Rights, kind: credPolicy, exact: true,
			token: func(t *testing.T, _ rightsEndpoint) string { return signed(t, aud, p.Name, p.PrimaryKey) }}
	}
	creds := []rightsCredential{policy(access.DPS, access.DPSOwner), policy(access.Hub, access.HubOwner)}
	for _, r := range []access.Rights{access.ServiceConfig, access.EnrollmentRead, access.EnrollmentWrite, access.RegistrationStatusRead, access.RegistrationStatusWrite} {
		creds = append(creds, policy(access.DPS, "only-"+r.String()))
	}
	for _, r := range []access.Rights{access.RegistryRead, access.RegistryWrite, access.ServiceConnect, access.DeviceConnect} {
		creds = append(creds, policy(access.Hub, "only-"+r.String()))
	}
	deviceOf := func(ep rightsEndpoint) string {
		if ep.device != "" {
			return ep.device
		}
		segs := strings.Split(strings.Trim(ep.path, "/"), "/")
		if len(segs) > 1 && (strings.EqualFold(segs[0], "devices") || strings.EqualFold(segs[0], "twins")) && segs[1] != "query" {
			return segs[1] // a device of the fixture: the token is valid, the route decides
		}
		return "d1"
	}
	devicePolicy, err := f.a.db.Policy(ctx, access.Hub, "device")
	if err != nil {
		t.Fatal(err)
	}
	creds = append(creds,
		rightsCredential{name: "device SAS", kind: credDeviceSAS, token: func(t *testing.T, ep rightsEndpoint) string {
			return deviceToken(t, deviceOf(ep), f.hubKey)
		}},
		rightsCredential{name: "device policy scoped to the device", scope: access.Hub, rights: devicePolicy.Rights, kind: credPolicy,
			token: func(t *testing.T, ep rightsEndpoint) string {
				return signed(t, url.QueryEscape(hubHost+"/devices/"+deviceOf(ep)), devicePolicy.Name, devicePolicy.PrimaryKey)
			}},
		rightsCredential{name: "DPS registration token", kind: credRegistration, token: func(t *testing.T, _ rightsEndpoint) string {
			return f.a.deviceToken(t, "m-dev", f.regKey)
		}},
		rightsCredential{name: "DPS registration token without skn", kind: credRegistration, token: func(t *testing.T, _ rightsEndpoint) string {
			return signed(t, url.QueryEscape(f.a.idScope+"/registrations/m-dev"), "", f.regKey)
		}},
	)
	return creds
}

func signed(t *testing.T, sr, keyName, key string) string {
	t.Helper()
	tok, err := sas.SignKey(sr, keyName, key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// send makes the endpoint's request with the Authorization given.
func (f *rightsFixture) send(t *testing.T, ep rightsEndpoint, auth string) response {
	t.Helper()
	path := strings.ReplaceAll(ep.path, "{op}", f.opID)
	if ep.scope == access.Hub {
		path += "?api-version=2021-04-12"
	} else {
		path += "?api-version=2021-10-01"
	}
	h := map[string]string{"Authorization": auth}
	for i := 0; i+1 < len(ep.headers); i += 2 {
		h[ep.headers[i]] = ep.headers[i+1]
	}
	var body any
	if ep.body != nil {
		body = ep.body()
	}
	return f.a.do(t, ep.method, path, body, h)
}

// TestPolicyTokenScope checks IoT Hub's scope rule for policy tokens: sr
// may name the host or a path under it, and then covers only requests at
// or under that path (hub-protocol.md §7.1).
func TestPolicyTokenScope(t *testing.T) {
	a := newTestAPI(t)
	f := newRightsFixture(t, a)
	reader, err := a.db.Policy(context.Background(), access.Hub, "registryRead")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sr, method, path string
		status                 int
	}{
		{"200/host", hubHost, "GET", "/devices/d1", 200},
		{"200/host with trailing slash", hubHost + "/", "GET", "/devices/d1", 200},
		{"200/registry scope covers a device", url.QueryEscape(hubHost + "/devices"), "GET", "/devices/d1", 200},
		{"200/registry scope covers the list", hubHost + "/devices", "GET", "/devices", 200},
		{"200/device scope covers its modules", hubHost + "/devices/d1", "GET", "/devices/d1/modules", 200},
		{"401/registry scope does not cover twins", hubHost + "/devices", "GET", "/twins/d1", 401},
		{"401/device scope does not cover another device", hubHost + "/devices/d2", "GET", "/devices/d1", 401},
		{"401/prefix of a segment", hubHost + "/dev", "GET", "/devices/d1", 401},
		{"401/another host", "other.usher.test", "GET", "/devices/d1", 401},
		{"401/device scope does not cover the list", hubHost + "/devices/d1", "GET", "/devices", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.send(t, rightsEndpoint{method: tc.method, path: tc.path, scope: access.Hub}, signed(t, tc.sr, reader.Name, reader.PrimaryKey))
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
		})
	}
	owner := a.owner
	for _, tc := range []struct {
		name, sr, path string
		status         int
	}{
		{"200/dps enrollments scope", audience + "/enrollments", "/enrollments/m-dev", 200},
		{"401/dps enrollments scope on registrations", audience + "/enrollments", "/registrations/m-dev", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.send(t, rightsEndpoint{method: "GET", path: tc.path, scope: access.DPS}, signed(t, tc.sr, owner.Name, owner.PrimaryKey))
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
		})
	}
}
