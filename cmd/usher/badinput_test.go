package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// API versions the cases name.
const (
	dpsSvcAPI = "?api-version=2021-10-01"
	deviceAPI = "?api-version=2021-06-01"
	hubSvcAPI = "?api-version=2021-04-12"
)

// badCase is one row of the bad-input table: what is sent on which
// transport, and the outcome expected. run returns the outcome as the table
// states it:
//
//   - HTTPS: "status errorCode" — DPS's six-digit errorCode (also in
//     x-ms-error-code) or IoT Hub's error name (iothub-errorcode); the status
//     alone for a success or for net/http's own answers.
//   - MQTT: "connack N", "suback 0x80", "res/<status> <errorCode>" (DPS
//     response topic), "twin/res/<status> <errorCode>" (hub twin answer), or
//     "closed" when the server ends the connection.
//   - raw connections: "closed" when the server closed it in time.
type badCase struct {
	name string // transport/what is sent
	want string
	run  func(t *testing.T, f *badFixture) string
}

// req is an HTTPS request of a case. path may contain {scope}.
type req struct {
	method, path, body string
	header             map[string]string
	// auth returns the Authorization header; nil sends the surface's
	// default (the owner policy, or good-dev's own token on the device API).
	auth func(t *testing.T, f *badFixture) string
}

func (r req) send(t *testing.T, f *badFixture, auth func(t *testing.T, f *badFixture) string) string {
	t.Helper()
	if r.auth != nil {
		auth = r.auth
	}
	h := map[string]string{"Authorization": auth(t, f)}
	for k, v := range r.header {
		h[k] = v
	}
	return f.do(t, r.method, r.path, h, r.body).outcome(t)
}

// dpsSvc, hubSvc and device send r to the DPS service API, the hub service
// API and the DPS device API.
func dpsSvc(r req) func(*testing.T, *badFixture) string {
	return func(t *testing.T, f *badFixture) string { return r.send(t, f, dpsOwnerToken) }
}

func hubSvc(r req) func(*testing.T, *badFixture) string {
	return func(t *testing.T, f *badFixture) string { return r.send(t, f, hubOwnerToken) }
}

func device(r req) func(*testing.T, *badFixture) string {
	return func(t *testing.T, f *badFixture) string {
		return r.send(t, f, goodDevToken)
	}
}

// Tokens the cases send.
func dpsOwnerToken(t *testing.T, f *badFixture) string { return f.dpsOwnerToken(t) }
func hubOwnerToken(t *testing.T, f *badFixture) string { return f.hubOwnerToken(t) }
func goodDevToken(t *testing.T, f *badFixture) string  { return f.deviceToken(t, "good-dev", f.goodKey) }
func hubGoodDevToken(t *testing.T, f *badFixture) string {
	return f.hubDeviceToken(t, "good-dev", f.goodKey, time.Now().Add(time.Hour))
}

func dpsOwnerWith(mod func(string) string) func(*testing.T, *badFixture) string {
	return func(t *testing.T, f *badFixture) string { return mod(f.dpsOwnerToken(t)) }
}

func goodDevWith(mod func(string) string) func(*testing.T, *badFixture) string {
	return func(t *testing.T, f *badFixture) string { return mod(goodDevToken(t, f)) }
}

func tokenMissing(field string) func(string) string {
	return func(tok string) string { return without(tok, field) }
}

func tokenField(field, value string) func(string) string {
	return func(tok string) string { return replaced(tok, field, value) }
}

// enrollmentBody is an individual enrollment for id with extra fields.
func enrollmentBody(id, extra string) string {
	return `{"registrationId":"` + id + `","attestation":{"type":"symmetricKey"}` + extra + `}`
}

// sized is prefix, then x…, then suffix: n bytes in all.
func sized(prefix, suffix string, n int) string {
	return prefix + strings.Repeat("x", n-len(prefix)-len(suffix)) + suffix
}

// registerPath is the device API's register path for id.
func registerPath(id string) string { return "/{scope}/registrations/" + id + "/register" + deviceAPI }

// Unicode look-alikes of ASCII IDs.
const (
	cyrillicGood = "g\u043e\u043ed-dev" // two Cyrillic 'о'
	fullWidth    = "\uff47\uff4f\uff4f\uff44-dev"
	zeroWidth    = "good\u200d-dev"
)

// TestBadInputTable sends every case of the bad-input table to a real
// server over real TLS sockets (issue 7 item 2) and checks, for each, the
// expected outcome, that nothing in the store changed and that nothing was
// answered with 5xx; then that no goroutine leaked, that the server logged
// no error, and that good registrations still succeed.
func TestBadInputTable(t *testing.T) {
	f := newBadFixture(t)
	tests := []badCase{
		// ----- HTTPS: DPS device API -----
		{"device/truncated json", "400 400001", device(req{method: "PUT", path: registerPath("good-dev"), body: `{"registrationId":"good-dev",`})},
		{"device/content-length longer than the body", "400 400001", func(t *testing.T, f *badFixture) string {
			head := "PUT /" + f.scope + "/registrations/good-dev/register" + deviceAPI + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\nAuthorization: " + goodDevToken(t, f) + "\r\n\r\n"
			return f.rawExchange(t, head, func(c *tls.Conn) {
				_, _ = io.WriteString(c, `{"registrationId":`)
				_ = c.CloseWrite()
			})
		}},
		{"device/body one byte over 96 KiB", "413 413001", device(req{method: "PUT", path: registerPath("good-dev"), body: sized(`{"payload":{"p":"`, `"}}`, 96<<10+1)})},
		{"device/text/plain body", "415 415001", device(req{method: "PUT", path: registerPath("good-dev"), body: `{}`, header: map[string]string{"Content-Type": "text/plain"}})},
		{"device/invalid utf-8 in payload", "400 400001", device(req{method: "PUT", path: registerPath("good-dev"), body: "{\"registrationId\":\"good-dev\",\"payload\":{\"s\":\"\xff\xfe\"}}"})},
		{"device/invalid utf-8 in registration id", "400 400004", device(req{method: "PUT", path: registerPath("good-dev%FF"), body: `{}`})},
		{"device/payload nested 10000 levels", "400 400001", device(req{method: "PUT", path: registerPath("good-dev"), body: `{"payload":` + nested(9998) + `}`})},
		{"device/payload nested 100 levels", "400 400001", device(req{method: "PUT", path: registerPath("good-dev"), body: `{"payload":` + nested(100) + `}`})},
		{"device/duplicate registrationId, last wins", "400 400004", device(req{method: "PUT", path: registerPath("good-dev"), body: `{"registrationId":"good-dev","registrationId":"other-dev"}`})},
		{"device/payload number 1e400", "400 400001", device(req{method: "PUT", path: registerPath("good-dev"), body: `{"payload":{"n":1e400}}`})},
		{"device/path traversal ../ in registration id", "400 400004", device(req{method: "PUT", path: registerPath("..%2Fother-dev"), body: `{}`})},
		{"device/path traversal %2e%2e%2f in registration id", "400 400004", device(req{method: "PUT", path: registerPath("%2e%2e%2fother-dev"), body: `{}`})},
		{"device/encoded slash makes no other route", "405 405001", device(req{method: "PUT", path: "/{scope}/registrations/good-dev%2Fregister" + deviceAPI, body: `{}`})},
		{"device/cyrillic look-alike registration id", "400 400004", device(req{method: "PUT", path: registerPath(cyrillicGood), body: `{}`})},
		{"device/full-width registration id", "400 400004", device(req{method: "PUT", path: registerPath(fullWidth), body: `{}`})},
		{"device/zero-width joiner in registration id", "400 400004", device(req{method: "PUT", path: registerPath(zeroWidth), body: `{}`})},
		{"device/sas without sig", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: goodDevWith(tokenMissing("sig"))})},
		{"device/sas without se", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: goodDevWith(tokenMissing("se"))})},
		{"device/sas without sr", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: goodDevWith(tokenMissing("sr"))})},
		{"device/sas sig not base64", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: goodDevWith(tokenField("sig", "%21%21not*base64"))})},
		{"device/sas expired an hour ago", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: func(t *testing.T, f *badFixture) string {
			return mustSign(t, f.scope+"%2Fregistrations%2Fgood-dev", "registration", f.goodKey, time.Now().Add(-time.Hour))
		}})},
		{"device/sas se beyond int64", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: goodDevWith(tokenField("se", "99999999999999999999"))})},
		{"device/sas for another registration", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: func(t *testing.T, f *badFixture) string {
			return f.deviceToken(t, "other-dev", f.otherKey)
		}})},
		{"device/sas for another id scope", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: func(t *testing.T, f *badFixture) string {
			return mustSign(t, "0ne99999999%2Fregistrations%2Fgood-dev", "registration", f.goodKey, time.Now().Add(time.Hour))
		}})},
		// Far-future expiry is accepted: Azure documents no cap on se, and
		// its tools let operators pick any lifetime (az iot hub
		// generate-sas-token --du). An se beyond int64 is refused as
		// malformed; max int64 overflows Go's time arithmetic and reads as
		// expired, which fails closed.
		{"device/sas se max int64", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: func(t *testing.T, f *badFixture) string {
			return replaced(goodDevToken(t, f), "se", "9223372036854775807")
		}})},
		{"device/sas far-future expiry accepted (status read)", "200", device(req{method: "POST", path: "/{scope}/registrations/good-dev" + deviceAPI, body: `{"registrationId":"good-dev"}`, auth: func(t *testing.T, f *badFixture) string {
			return mustSign(t, f.scope+"%2Fregistrations%2Fgood-dev", "registration", f.goodKey, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
		}})},
		{"device/path traversal in an operation id", "404 404201", device(req{method: "GET", path: "/{scope}/registrations/good-dev/operations/..%2F..%2Fenrollments%2Fgood-dev" + deviceAPI})},
		{"device/service policy token", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: dpsOwnerToken})},
		{"device/group key as device key", "401 401002", device(req{method: "PUT", path: registerPath("good-dev"), auth: func(t *testing.T, f *badFixture) string {
			return f.deviceToken(t, "good-dev", f.groupKey)
		}})},

		// ----- HTTPS: DPS service API (enrollments, groups, registrations) -----
		{"dps-service/truncated json", "400 400001", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: `{"registrationId":"victim","attestation":{"type":`})},
		{"dps-service/body one byte over 96 KiB", "413 413001", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: sized(`{"registrationId":"victim","attestation":{"type":"symmetricKey"},"initialTwin":{"tags":{"p":"`, `"}}}`, 96<<10+1)})},
		{"dps-service/form content type", "415 415001", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: "registrationId=victim", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})},
		{"dps-service/unparseable content type", "415 415001", dpsSvc(req{method: "PUT", path: "/enrollmentGroups/victim" + dpsSvcAPI, body: `{}`, header: map[string]string{"Content-Type": ";;;"}})},
		{"dps-service/invalid utf-8 in initialTwin", "400 400001", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: enrollmentBody("victim", ",\"initialTwin\":{\"tags\":{\"s\":\"\xc3\x28\"}}")})},
		{"dps-service/invalid utf-8 in enrollment id", "400 400004", dpsSvc(req{method: "PUT", path: "/enrollments/victim%C3%28" + dpsSvcAPI, body: enrollmentBody("victim", "")})},
		{"dps-service/initialTwin nested 10000 levels", "400 400001", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: enrollmentBody("victim", `,"initialTwin":{"tags":`+nested(9990)+`}`)})},
		{"dps-service/initialTwin nested 11 levels (the hub's limit is 10)", "400 400004", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: enrollmentBody("victim", `,"initialTwin":{"tags":`+nested(11)+`}`)})},
		{"dps-service/initialTwin tags over 8 KiB", "413 413001", dpsSvc(req{method: "PUT", path: "/enrollmentGroups/victim" + dpsSvcAPI, body: `{"enrollmentGroupId":"victim","attestation":{"type":"symmetricKey"},"initialTwin":{"tags":{"a":"` + strings.Repeat("x", 4000) + `","b":"` + strings.Repeat("x", 4000) + `","c":"` + strings.Repeat("x", 400) + `"}}}`})},
		{"dps-service/initialTwin desired key with a dot", "400 400004", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: enrollmentBody("victim", `,"initialTwin":{"properties":{"desired":{"a.b":1}}}`)})},
		{"dps-service/initialTwin nested 100 levels", "400 400001", dpsSvc(req{method: "PUT", path: "/enrollmentGroups/victim" + dpsSvcAPI, body: `{"enrollmentGroupId":"victim","attestation":{"type":"symmetricKey"},"initialTwin":{"tags":` + nested(100) + `}}`})},
		{"dps-service/duplicate registrationId, last wins", "400 400004", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: `{"registrationId":"victim","registrationId":"good-dev","attestation":{"type":"symmetricKey"}}`})},
		{"dps-service/initialTwin number 1e400", "400 400001", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: enrollmentBody("victim", `,"initialTwin":{"properties":{"desired":{"n":1e400}}}`)})},
		{"dps-service/max item count 2^64+1", "400 400004", dpsSvc(req{method: "POST", path: "/enrollments/query" + dpsSvcAPI, body: `{"query":"*"}`, header: map[string]string{"x-ms-max-item-count": "18446744073709551617"}})},
		{"dps-service/path traversal ../ in enrollment id", "400 400004", dpsSvc(req{method: "PUT", path: "/enrollments/..%2F..%2Fpolicies" + dpsSvcAPI, body: enrollmentBody("../../policies", "")})},
		{"dps-service/path traversal %2e%2e%2f reads nothing", "404 404201", dpsSvc(req{method: "GET", path: "/enrollments/%2e%2e%2fgood-dev" + dpsSvcAPI})},
		{"dps-service/dot segments are not resolved", "404 404201", dpsSvc(req{method: "GET", path: "/enrollments/../registrations/good-dev" + dpsSvcAPI})},
		{"dps-service/cyrillic look-alike reads nothing", "404 404201", dpsSvc(req{method: "GET", path: "/enrollments/" + cyrillicGood + dpsSvcAPI})},
		{"dps-service/cyrillic look-alike enrollment", "400 400004", dpsSvc(req{method: "PUT", path: "/enrollments/" + cyrillicGood + dpsSvcAPI, body: enrollmentBody(cyrillicGood, "")})},
		{"dps-service/full-width enrollment id", "400 400004", dpsSvc(req{method: "PUT", path: "/enrollments/" + fullWidth + dpsSvcAPI, body: enrollmentBody(fullWidth, "")})},
		{"dps-service/zero-width joiner in group id", "400 400004", dpsSvc(req{method: "PUT", path: "/enrollmentGroups/" + "good\u200d-group" + dpsSvcAPI, body: `{"enrollmentGroupId":"good` + "\u200d" + `-group","attestation":{"type":"symmetricKey"}}`})},
		{"dps-service/sas without sr", "401 401002", dpsSvc(req{method: "PUT", path: "/enrollments/victim" + dpsSvcAPI, body: enrollmentBody("victim", ""), auth: dpsOwnerWith(tokenMissing("sr"))})},
		{"dps-service/sas without sig", "401 401002", dpsSvc(req{method: "GET", path: "/enrollments/good-dev" + dpsSvcAPI, auth: dpsOwnerWith(tokenMissing("sig"))})},
		{"dps-service/sas without se", "401 401002", dpsSvc(req{method: "GET", path: "/enrollments/good-dev" + dpsSvcAPI, auth: dpsOwnerWith(tokenMissing("se"))})},
		{"dps-service/sas sig not base64", "401 401002", dpsSvc(req{method: "GET", path: "/enrollments/good-dev" + dpsSvcAPI, auth: dpsOwnerWith(tokenField("sig", "@@@"))})},
		{"dps-service/sas expired", "401 401002", dpsSvc(req{method: "DELETE", path: "/enrollments/good-dev" + dpsSvcAPI, auth: func(t *testing.T, f *badFixture) string {
			return mustSign(t, "localhost", "provisioningserviceowner", f.dpsOwnerKey, time.Now().Add(-time.Hour))
		}})},
		{"dps-service/sas far-future expiry accepted", "200", dpsSvc(req{method: "GET", path: "/enrollments/good-dev" + dpsSvcAPI, auth: func(t *testing.T, f *badFixture) string {
			return mustSign(t, "localhost", "provisioningserviceowner", f.dpsOwnerKey, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
		}})},
		{"dps-service/sas for another service", "401 401002", dpsSvc(req{method: "DELETE", path: "/enrollments/good-dev" + dpsSvcAPI, auth: func(t *testing.T, f *badFixture) string {
			return mustSign(t, "other-dps.example", "provisioningserviceowner", f.dpsOwnerKey, time.Now().Add(time.Hour))
		}})},
		{"dps-service/sas unknown policy (skn)", "401 401002", dpsSvc(req{method: "DELETE", path: "/enrollments/good-dev" + dpsSvcAPI, auth: func(t *testing.T, f *badFixture) string {
			return mustSign(t, "localhost", "nosuchpolicy", f.dpsOwnerKey, time.Now().Add(time.Hour))
		}})},
		{"dps-service/policy without the right", "401 401003", dpsSvc(req{method: "DELETE", path: "/enrollments/good-dev" + dpsSvcAPI, auth: func(t *testing.T, f *badFixture) string {
			return mustSign(t, "localhost", "reader", f.readerKey, time.Now().Add(time.Hour))
		}})},
		{"dps-service/device token", "401 401002", dpsSvc(req{method: "GET", path: "/enrollments/good-dev" + dpsSvcAPI, auth: goodDevToken})},
		{"dps-service/hub owner token", "401 401002", dpsSvc(req{method: "DELETE", path: "/registrations/good-dev" + dpsSvcAPI, auth: hubOwnerToken})},

		// ----- HTTPS: hub service API (registry, twins, configurations) -----
		{"hub-service/truncated json", "400 IotHubFormatError", hubSvc(req{method: "PUT", path: "/devices/victim" + hubSvcAPI, body: `{"deviceId":"victim","status":`})},
		{"hub-service/twin body one byte over 64 KiB", "413 MessageTooLarge", hubSvc(req{method: "PATCH", path: "/twins/good-dev" + hubSvcAPI, body: sized(`{"tags":{"p":"`, `"}}`, 64<<10+1)})},
		{"hub-service/text/plain twin patch", "415 UnsupportedMediaType", hubSvc(req{method: "PATCH", path: "/twins/good-dev" + hubSvcAPI, body: `{"tags":{"a":1}}`, header: map[string]string{"Content-Type": "text/plain"}})},
		{"hub-service/invalid utf-8 in twin tags", "400 IotHubFormatError", hubSvc(req{method: "PATCH", path: "/twins/good-dev" + hubSvcAPI, body: "{\"tags\":{\"s\":\"\xed\xa0\x80\"}}"})},
		{"hub-service/invalid utf-8 in a twin key", "400 IotHubFormatError", hubSvc(req{method: "PATCH", path: "/twins/good-dev" + hubSvcAPI, body: "{\"tags\":{\"\xff\":1}}"})},
		{"hub-service/twin patch nested 10000 levels", "400 IotHubFormatError", hubSvc(req{method: "PATCH", path: "/twins/good-dev" + hubSvcAPI, body: `{"tags":` + nested(9990) + `}`})},
		{"hub-service/twin patch nested 100 levels", "400 IotHubFormatError", hubSvc(req{method: "PATCH", path: "/twins/good-dev" + hubSvcAPI, body: `{"properties":{"desired":` + nested(100) + `}}`})},
		{"hub-service/twin desired 1e400", "400 IotHubFormatError", hubSvc(req{method: "PATCH", path: "/twins/good-dev" + hubSvcAPI, body: `{"properties":{"desired":{"n":1e400}}}`})},
		{"hub-service/twin tag -1e400", "400 IotHubFormatError", hubSvc(req{method: "PATCH", path: "/twins/good-dev" + hubSvcAPI, body: `{"tags":{"n":-1e400}}`})},
		{"hub-service/configuration priority 1e400", "400 IotHubFormatError", hubSvc(req{method: "PUT", path: "/configurations/victim" + hubSvcAPI, body: `{"id":"victim","priority":1e400,"content":{"deviceContent":{"properties.desired.x":1}}}`})},
		{"hub-service/configuration priority 2^64+1", "400 ArgumentInvalid", hubSvc(req{method: "PUT", path: "/configurations/victim" + hubSvcAPI, body: `{"id":"victim","priority":18446744073709551617,"content":{"deviceContent":{"properties.desired.x":1}}}`})},
		{"hub-service/device list top 2^64+1", "400 ArgumentInvalid", hubSvc(req{method: "GET", path: "/devices" + hubSvcAPI + "&top=18446744073709551617"})},
		{"hub-service/duplicate deviceId, last wins", "400 ArgumentInvalid", hubSvc(req{method: "PUT", path: "/devices/victim" + hubSvcAPI, body: `{"deviceId":"victim","deviceId":"other-dev"}`})},
		{"hub-service/path traversal in device id", "400 ArgumentInvalid", hubSvc(req{method: "PUT", path: "/devices/..%2Fvictim" + hubSvcAPI, body: `{"deviceId":"../victim"}`})},
		{"hub-service/path traversal reads nothing", "404 DeviceNotFound", hubSvc(req{method: "GET", path: "/twins/%2e%2e%2fgood-dev" + hubSvcAPI})},
		{"hub-service/cyrillic look-alike device", "400 ArgumentInvalid", hubSvc(req{method: "PUT", path: "/devices/" + cyrillicGood + hubSvcAPI, body: `{"deviceId":"` + cyrillicGood + `"}`})},
		{"hub-service/sas unknown policy (skn)", "401 IotHubUnauthorizedAccess", hubSvc(req{method: "DELETE", path: "/devices/good-dev" + hubSvcAPI, auth: func(t *testing.T, f *badFixture) string {
			return mustSign(t, badHub, "nosuchpolicy", f.hubOwnerKey, time.Now().Add(time.Hour))
		}})},
		{"hub-service/sas without sig", "401 IotHubUnauthorizedAccess", hubSvc(req{method: "DELETE", path: "/devices/good-dev" + hubSvcAPI, auth: func(t *testing.T, f *badFixture) string {
			return without(f.hubOwnerToken(t), "sig")
		}})},
		{"hub-service/dps owner token", "401 IotHubUnauthorizedAccess", hubSvc(req{method: "DELETE", path: "/devices/good-dev" + hubSvcAPI, auth: dpsOwnerToken})},
		{"hub-service/device token on the registry", "401 IotHubUnauthorizedAccess", hubSvc(req{method: "GET", path: "/devices" + hubSvcAPI, auth: hubGoodDevToken})},
		{"hub-service/device token for another device", "401 IotHubUnauthorizedAccess", hubSvc(req{method: "GET", path: "/devices/other-dev" + hubSvcAPI, auth: hubGoodDevToken})},
		{"hub-service/device token on its own twin patch", "401 IotHubUnauthorizedAccess", hubSvc(req{method: "PATCH", path: "/twins/good-dev" + hubSvcAPI, body: `{"tags":{"a":1}}`, auth: hubGoodDevToken})},

		{"hub-service/truncated json over http/2", "400 IotHubFormatError", func(t *testing.T, f *badFixture) string {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: f.tlsConfig(), ForceAttemptHTTP2: true}}
			defer c.CloseIdleConnections()
			req, err := http.NewRequest("PATCH", f.base+"/twins/good-dev"+hubSvcAPI, strings.NewReader(`{"tags":{"a":`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", f.hubOwnerToken(t))
			req.Header.Set("Content-Type", "application/json")
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.ProtoMajor != 2 {
				t.Errorf("answered over %s, want HTTP/2", res.Proto)
			}
			b, _ := io.ReadAll(res.Body)
			return reply{status: res.StatusCode, header: res.Header, body: b}.outcome(t)
		}},

		// ----- HTTPS: connections -----
		{"https/header over 1 MiB", "431", func(t *testing.T, f *badFixture) string {
			return f.rawExchange(t, "GET /enrollments/good-dev"+dpsSvcAPI+" HTTP/1.1\r\nHost: localhost\r\nX-Pad: "+strings.Repeat("p", 1<<20+8<<10)+"\r\n\r\n", nil)
		}},
		{"https/slow-loris headers, one byte a second", "closed", func(t *testing.T, f *badFixture) string {
			c := f.dialTLS(t)
			head := "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + strings.Repeat("s", 60)
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for i := 0; i < len(head); i++ {
					select {
					case <-stop:
						return
					case <-time.After(time.Second):
					}
					if _, err := c.Write([]byte{head[i]}); err != nil {
						return
					}
				}
			}()
			return closedByTimeout(c, badTimeouts.readHeader)
		}},
		{"https/slow body, one byte a second", "closed", func(t *testing.T, f *badFixture) string {
			return f.slowBody(t, "PUT", "/enrollments/victim"+dpsSvcAPI, f.dpsOwnerToken(t))
		}},
		{"https/slow body of a refused request", "closed", func(t *testing.T, f *badFixture) string {
			return f.slowBody(t, "PUT", "/enrollments/victim"+dpsSvcAPI, "")
		}},
		{"https/slow body to the web console", "closed", func(t *testing.T, f *badFixture) string {
			return f.slowBody(t, "POST", "/console/signin", "")
		}},
		{"https/tcp connection that never starts tls", "closed", func(t *testing.T, f *badFixture) string {
			c, err := net.DialTimeout("tcp", f.s.Info.HTTPSAddr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return closedByTimeout(c, badTimeouts.readHeader)
		}},
		{"https/tls handshake stopped halfway", "closed", func(t *testing.T, f *badFixture) string {
			c, err := net.DialTimeout("tcp", f.s.Info.HTTPSAddr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The first bytes of a ClientHello record: type, version, a
			// length the rest never arrives for.
			if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil {
				t.Fatal(err)
			}
			return closedByTimeout(c, badTimeouts.readHeader)
		}},

		// ----- MQTT: CONNECT -----
		{"mqtt/username of no known shape", "connack 5", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connect("x", "not/a/known/shape", "pw")
		}},
		{"mqtt/hub password not a sas token", "connack 5", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connect("good-dev", hubUsername("good-dev"), "password")
		}},
		{"mqtt/hub sas signed with another device's key", "connack 5", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connect("good-dev", hubUsername("good-dev"), f.hubDeviceToken(t, "good-dev", f.otherKey, time.Now().Add(time.Hour)))
		}},
		{"mqtt/hub sas for another device", "connack 5", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connect("good-dev", hubUsername("good-dev"), f.hubDeviceToken(t, "other-dev", f.otherKey, time.Now().Add(time.Hour)))
		}},
		{"mqtt/hub sas expired", "connack 5", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connect("good-dev", hubUsername("good-dev"), f.hubDeviceToken(t, "good-dev", f.goodKey, time.Now().Add(-time.Hour)))
		}},
		{"mqtt/hub client id is not the username's", "connack 2", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connect("other-dev", hubUsername("good-dev"), hubGoodDevToken(t, f))
		}},
		{"mqtt/hub cyrillic look-alike device id", "connack 5", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connect(cyrillicGood, hubUsername(cyrillicGood), hubGoodDevToken(t, f))
		}},
		{"mqtt/protocol level 3 (MQTT 3.1)", "connack 1", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connectLevel(3, "good-dev", hubUsername("good-dev"), hubGoodDevToken(t, f))
		}},
		{"mqtt/invalid utf-8 in the username", "closed", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connect("good-dev", f.dpsUsername("good-dev")+"&x=\xff", goodDevToken(t, f))
		}},
		{"mqtt/invalid utf-8 in the client id", "closed", func(t *testing.T, f *badFixture) string {
			return f.dialMQTT(t).connect("good-dev\xff", f.dpsUsername("good-dev"), goodDevToken(t, f))
		}},
		{"mqtt/publish before connect", "closed", func(t *testing.T, f *badFixture) string {
			m := f.dialMQTT(t)
			m.publish("$dps/registrations/PUT/iotdps-register/?$rid=1", []byte(`{}`), 0, false)
			return m.closed()
		}},
		{"mqtt/connect claiming 200 MB", "closed", func(t *testing.T, f *badFixture) string {
			m := f.dialMQTT(t)
			m.write([]byte{mqttConnect << 4, 0x80, 0x80, 0x80, 0x60})
			return m.closed()
		}},
		{"mqtt/tcp connection that never starts tls", "closed", func(t *testing.T, f *badFixture) string {
			c, err := net.DialTimeout("tcp", f.s.Info.MQTTAddr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return closedByTimeout(c, badTimeouts.mqttConnect)
		}},
		{"mqtt/tls then no connect", "closed", func(t *testing.T, f *badFixture) string {
			m := f.dialMQTT(t)
			if err := m.c.Handshake(); err != nil {
				t.Fatal(err)
			}
			return closedByTimeout(m.c, badTimeouts.mqttConnect)
		}},

		// ----- MQTT: DPS registration -----
		{"mqtt-dps/bad sas answered on the response topic", "res/401 401002", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", "SharedAccessSignature sr=x&sig=eA==&se=1").register(`{"registrationId":"good-dev"}`, 1, false)
		}},
		{"mqtt-dps/cyrillic look-alike registration id", "res/400 400004", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, cyrillicGood, goodDevToken(t, f)).register(`{}`, 1, false)
		}},
		{"mqtt-dps/truncated json", "res/400 400001", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).register(`{"registrationId":"good-dev"`, 1, false)
		}},
		{"mqtt-dps/payload nested 10000 levels", "res/400 400001", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).register(`{"payload":`+nested(9998)+`}`, 1, false)
		}},
		{"mqtt-dps/invalid utf-8 in payload", "res/400 400001", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).register("{\"payload\":{\"\xff\":1}}", 1, false)
		}},
		{"mqtt-dps/payload number 1e400", "res/400 400001", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).register(`{"payload":{"n":1e400}}`, 1, false)
		}},
		{"mqtt-dps/payload one byte over 96 KiB", "res/413 413001", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).register(sized(`{"payload":{"p":"`, `"}}`, 96<<10+1), 1, false)
		}},
		{"mqtt-dps/retained publish is answered, not retained", "res/401 401002", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", "SharedAccessSignature sr=x&sig=eA==&se=1").register(`{}`, 1, true)
		}},
		{"mqtt-dps/qos 2 publish", "closed", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).register(`{}`, 2, false)
		}},
		{"mqtt-dps/publish outside the acl", "closed", func(t *testing.T, f *badFixture) string {
			m := f.dpsSession(t, "good-dev", goodDevToken(t, f))
			m.publish("$iothub/twin/GET/?$rid=1", nil, 1, false)
			return m.closed()
		}},
		{"mqtt-dps/request without $rid", "res/400 400004", func(t *testing.T, f *badFixture) string {
			m := f.dpsSession(t, "good-dev", goodDevToken(t, f))
			m.publish("$dps/registrations/PUT/iotdps-register/?", []byte(`{}`), 1, false)
			return m.answer("$dps/registrations/res/")
		}},
		{"mqtt-dps/poll of an unknown operation", "res/404 404201", func(t *testing.T, f *badFixture) string {
			m := f.dpsSession(t, "good-dev", goodDevToken(t, f))
			m.publish("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=5&operationId=..%2F..%2Fx", nil, 1, false)
			return m.answer("$dps/registrations/res/")
		}},
		{"mqtt-dps/subscribe to #", "suback 0x80", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).subscribe("#")
		}},
		{"mqtt-dps/subscribe to $SYS", "suback 0x80", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).subscribe("$SYS/#")
		}},
		{"mqtt-dps/subscribe to hub twin answers", "suback 0x80", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).subscribe("$iothub/twin/res/#")
		}},
		{"mqtt-dps/subscribe to the request topics", "suback 0x80", func(t *testing.T, f *badFixture) string {
			return f.dpsSession(t, "good-dev", goodDevToken(t, f)).subscribe("$dps/registrations/PUT/#")
		}},

		// ----- MQTT: hub device -----
		{"mqtt-hub/subscribe to another device's messages", "suback 0x80", func(t *testing.T, f *badFixture) string {
			return f.hubSession(t, "good-dev", f.goodKey).subscribe("devices/other-dev/messages/devicebound/#")
		}},
		{"mqtt-hub/subscribe to #", "suback 0x80", func(t *testing.T, f *badFixture) string {
			return f.hubSession(t, "good-dev", f.goodKey).subscribe("#")
		}},
		{"mqtt-hub/subscribe to $SYS", "suback 0x80", func(t *testing.T, f *badFixture) string {
			return f.hubSession(t, "good-dev", f.goodKey).subscribe("$SYS/#")
		}},
		{"mqtt-hub/subscribe to dps answers", "suback 0x80", func(t *testing.T, f *badFixture) string {
			return f.hubSession(t, "good-dev", f.goodKey).subscribe("$dps/registrations/res/#")
		}},
		{"mqtt-hub/subscribe to all of $iothub", "suback 0x80", func(t *testing.T, f *badFixture) string {
			return f.hubSession(t, "good-dev", f.goodKey).subscribe("$iothub/#")
		}},
		{"mqtt-hub/telemetry as another device", "closed", func(t *testing.T, f *badFixture) string {
			m := f.hubSession(t, "good-dev", f.goodKey)
			m.publish("devices/other-dev/messages/events/", []byte(`{"t":1}`), 1, false)
			return m.closed()
		}},
		{"mqtt-hub/qos 0 telemetry as another device is dropped", "twin/res/200", func(t *testing.T, f *badFixture) string {
			m := f.hubSession(t, "good-dev", f.goodKey)
			m.subscribe("$iothub/twin/res/#")
			m.publish("devices/other-dev/messages/events/", []byte(`{"t":1}`), 0, false)
			m.publish("$iothub/twin/GET/?$rid=6", nil, 1, false) // the connection lives on
			return m.answer("$iothub/twin/res/")
		}},
		{"mqtt-hub/dps registration on a hub connection", "closed", func(t *testing.T, f *badFixture) string {
			m := f.hubSession(t, "good-dev", f.goodKey)
			m.publish("$dps/registrations/PUT/iotdps-register/?$rid=1", []byte(`{}`), 1, false)
			return m.closed()
		}},
		{"mqtt-hub/qos 2 telemetry", "closed", func(t *testing.T, f *badFixture) string {
			m := f.hubSession(t, "good-dev", f.goodKey)
			m.publish("devices/good-dev/messages/events/", []byte(`{"t":1}`), 2, false)
			return m.closed()
		}},
		{"mqtt-hub/packet over the maximum size", "closed", func(t *testing.T, f *badFixture) string {
			m := f.hubSession(t, "good-dev", f.goodKey)
			m.publish("devices/good-dev/messages/events/", []byte(strings.Repeat("x", 300<<10)), 1, false)
			return m.closed()
		}},
		{"mqtt-hub/retained twin request is answered, not retained", "twin/res/200", func(t *testing.T, f *badFixture) string {
			m := f.hubSession(t, "good-dev", f.goodKey)
			if got := m.subscribe("$iothub/twin/res/#"); got != "suback 0x01" {
				t.Fatalf("subscribe: %s", got)
			}
			m.publish("$iothub/twin/GET/?$rid=1", nil, 1, true)
			return m.answer("$iothub/twin/res/")
		}},
		{"mqtt-hub/reported patch nested 10000 levels", "twin/res/400 400006", func(t *testing.T, f *badFixture) string {
			m := f.hubSession(t, "good-dev", f.goodKey)
			m.subscribe("$iothub/twin/res/#")
			m.publish("$iothub/twin/PATCH/properties/reported/?$rid=2", []byte(nested(10000)), 1, false)
			return m.answer("$iothub/twin/res/")
		}},
		{"mqtt-hub/reported patch 1e400", "twin/res/400 400006", func(t *testing.T, f *badFixture) string {
			m := f.hubSession(t, "good-dev", f.goodKey)
			m.subscribe("$iothub/twin/res/#")
			m.publish("$iothub/twin/PATCH/properties/reported/?$rid=3", []byte(`{"n":1e400}`), 1, false)
			return m.answer("$iothub/twin/res/")
		}},
		{"mqtt-hub/reported patch invalid utf-8", "twin/res/400 400006", func(t *testing.T, f *badFixture) string {
			m := f.hubSession(t, "good-dev", f.goodKey)
			m.subscribe("$iothub/twin/res/#")
			m.publish("$iothub/twin/PATCH/properties/reported/?$rid=4", []byte("{\"s\":\"\xff\"}"), 1, false)
			return m.answer("$iothub/twin/res/")
		}},
	}

	before := settledGoroutines()
	start := f.snapshot(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			was := f.snapshot(t)
			got := tc.run(t, f)
			if strings.HasPrefix(got, "5") || strings.Contains(got, "res/5") {
				t.Errorf("answered %s: a server error for bad input", got)
			}
			if got != tc.want {
				t.Errorf("outcome %q, want %q", got, tc.want)
			}
			if diff := cmp.Diff(was, f.snapshot(t)); diff != "" {
				t.Errorf("the store changed (-before +after):\n%s", diff)
			}
		})
	}
	if diff := cmp.Diff(start, f.snapshot(t)); diff != "" {
		t.Errorf("the store changed during the table (-before +after):\n%s", diff)
	}
	after := goroutinesBackTo(before + 2)
	t.Logf("%d cases; goroutines: %d before the table, %d after it", len(tests), before, after)
	if after > before+2 {
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("goroutines: %d before the table, %d after it:\n%s", before, after, b.String())
	}
	if logs := f.stderr.String(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("the server logged errors:\n%s", logs)
	}
	t.Run("ok/good registrations still succeed", func(t *testing.T) {
		for _, transport := range []string{"https", "mqtt"} {
			id := "final-" + transport
			k := createdKey(t, f.s, "enrollment", "create", "--enrollment-id", id)
			got := mustDecode[registered](t, f.s.mustUsher(t, "device", "register", "--transport", transport, "--registration-id", id, "--key", k))
			if got.Status != "assigned" || got.AssignedHub != badHub {
				t.Errorf("%s: %+v, want assigned to %s", transport, got, badHub)
			}
		}
	})
}
