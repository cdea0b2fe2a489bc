package dps_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/hubassign"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/sqlite"
	"github.com/usher-iot/usher/internal/wire"
)

// The fuzz DPS uses the captures' ID scope and registration IDs
// (dps-https-register.md, c-sdk-dps-https-register.md); its clock stands
// at fuzzNow and its keys are fixed so that seed tokens verify.
const (
	fuzzScope    = "0ne00STUB01"
	fuzzKeyA     = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
	fuzzKeyB     = "c2Vjb25kYXJ5LWtleS1mb3ItZnV6emluZy0wMDAwMDA="
	fuzzGroupKey = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	fuzzSkew     = time.Minute
	fuzzSE       = "1700003600"
)

var fuzzNow = time.Unix(1700000000, 0)

// fuzzEnrollments are the individual enrollments: registration ID (lower
// case) → keys; "cap-http-disabled" is disabled.
var fuzzEnrollments = map[string][2]string{
	"cap-http-dev-01":   {fuzzKeyA, fuzzKeyB},
	"cap-c-http-01":     {fuzzKeyB, fuzzKeyA},
	"cap-http-disabled": {fuzzKeyA, fuzzKeyB},
}

// newFuzzRegistrar opens a registrar on a fresh SQLite store with the fuzz
// enrollments and one symmetric-key group.
func newFuzzRegistrar(tb testing.TB) *dps.Registrar {
	tb.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "usher.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	svc := dps.NewService(db, dps.Options{})
	for id, k := range fuzzEnrollments {
		e := dps.Enrollment{RegistrationID: id, Settings: dps.Settings{Attestation: dps.Attestation{Type: dps.SymmetricKey, PrimaryKey: k[0], SecondaryKey: k[1]}}}
		if id == "cap-http-disabled" {
			e.ProvisioningStatus = dps.Disabled
		}
		if _, err := svc.CreateEnrollment(ctx, e); err != nil {
			tb.Fatal(err)
		}
	}
	g := dps.Group{ID: "cap-svc-group", Settings: dps.Settings{Attestation: dps.Attestation{Type: dps.SymmetricKey, PrimaryKey: fuzzGroupKey, SecondaryKey: fuzzKeyA}}}
	if _, err := svc.CreateGroup(ctx, g); err != nil {
		tb.Fatal(err)
	}
	hubSvc := hub.NewService(db, hub.Options{HostName: "localhost", Now: func() time.Time { return fuzzNow }})
	return dps.NewRegistrar(db, dps.RegistrarOptions{IDScope: fuzzScope, Hubs: dps.SingleHub{Hub: hubassign.Hub{Service: hubSvc}}, Now: func() time.Time { return fuzzNow }, Skew: fuzzSkew})
}

// fuzzToken signs sr exactly as given with a base64 key, as the Node SDK
// does (skn=registration).
func fuzzToken(sr, key, se string) string {
	k, _ := base64.StdEncoding.DecodeString(key)
	h := hmac.New(sha256.New, k)
	h.Write([]byte(sr + "\n" + se))
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(h.Sum(nil))) + "&skn=registration&se=" + se
}

// FuzzRegister drives the registration use case with arbitrary tokens,
// registration IDs and request bodies, decoded as the HTTPS and MQTT
// transports decode them. Refusals are client errors. A registration that
// goes through was proved by a token for this scope and registration ID,
// unexpired, signed with the individual enrollment's key or the key derived
// from the group's for exactly that registration ID.
func FuzzRegister(f *testing.F) {
	r := newFuzzRegistrar(f)
	ctx := context.Background()
	member7, _ := sas.DeriveDeviceKey(fuzzGroupKey, "cap-group-member-7")
	memberC, _ := sas.DeriveDeviceKey(fuzzKeyA, "cap-c-group-member-7")
	memberOff, _ := sas.DeriveDeviceKey(fuzzGroupKey, "cap-http-disabled")
	for _, c := range []struct{ scope, id, sr, key, se, body string }{
		// dps-https-register.md (Node: raw sr, body with registrationId)
		{fuzzScope, "cap-http-dev-01", "0ne00STUB01/registrations/cap-http-dev-01", fuzzKeyA, fuzzSE, `{"registrationId":"cap-http-dev-01"}`},
		{fuzzScope, "cap-http-dev-01", "0ne00STUB01/registrations/cap-http-dev-01", fuzzKeyB, fuzzSE, `{"registrationId":"cap-http-dev-01","payload":{"modelId":"dtmi:example;1","extra":42}}`},
		{fuzzScope, "cap-group-member-7", "0ne00STUB01/registrations/cap-group-member-7", member7, fuzzSE, `{"registrationId":"cap-group-member-7"}`},
		{fuzzScope, "cap-http-disabled", "0ne00STUB01/registrations/cap-http-disabled", fuzzKeyA, fuzzSE, `{"registrationId":"cap-http-disabled"}`},
		{fuzzScope, "cap-http-disabled", "0ne00STUB01/registrations/cap-http-disabled", memberOff, fuzzSE, ``},
		// c-sdk-dps-https-register.md (C: lower-case %2f, payload null)
		{fuzzScope, "cap-c-http-01", "0ne00STUB01%2fregistrations%2fcap-c-http-01", fuzzKeyB, fuzzSE, `{"registrationId":"cap-c-http-01","payload":null}`},
		{"0NE00STUB01", "CAP-C-HTTP-01", "0ne00stub01%2Fregistrations%2Fcap-c-http-01/", fuzzKeyA, fuzzSE, `{"registrationId":"cap-c-http-01"}`},
		{fuzzScope, "cap-c-group-member-7", "0ne00STUB01/registrations/cap-c-group-member-7", memberC, fuzzSE, `{"payload":{"a":[1,{"b":null}]}}`},
		// dps-mqtt-register.md: the MQTT body is " " or {"registrationId":…}
		{fuzzScope, "cap-http-dev-01", "0ne00STUB01/registrations/cap-http-dev-01", fuzzKeyA, fuzzSE, ` `},
		{fuzzScope, "cap-http-dev-01", "0ne00STUB01/registrations/cap-http-dev-01", fuzzKeyA, "1699999000", `{}`},
		{fuzzScope, "cap-http-dev-01", "0ne00STUB01/registrations/cap-http-dev-01", fuzzKeyA, "9223372036854775807", `{"registrationId":"other"}`},
		{fuzzScope, "cap-http-dev-01", "0ne00STUB01/registrations/cap-http-dev-01", fuzzKeyA, fuzzSE, `{"tpm":{"endorsementKey":"AAAA","storageRootKey":"AAAA"}}`},
		{fuzzScope, "cap-http-dev-01", "0ne00STUB01", fuzzKeyA, fuzzSE, `{"registrationId":"cap-http-dev-01"`},
	} {
		f.Add(c.scope, c.id, fuzzToken(c.sr, c.key, c.se), []byte(c.body))
	}
	f.Fuzz(func(t *testing.T, scope, registrationID, token string, body []byte) {
		// As internal/httpapi/registration.go and internal/mqttapi/dps.go:
		// an optional DeviceRegistration body; tpm is refused.
		var reg wire.DeviceRegistration
		if len(bytes.TrimSpace(body)) > 0 {
			if err := wire.Decode(body, &reg); err != nil {
				if k := fault.KindOf(err); k != fault.Malformed && k != fault.Invalid {
					t.Fatalf("decode failed with kind %v: %v", k, err)
				}
				return
			}
		}
		if reg.TPM != nil {
			return
		}
		op, err := r.Register(ctx, dps.RegisterRequest{IDScope: scope, RegistrationID: registrationID, Proof: dps.Proof{SASToken: token},
			BodyRegistrationID: reg.RegistrationID, Payload: reg.Payload})
		if err != nil {
			switch fault.KindOf(err) {
			case fault.Unauthenticated, fault.Invalid:
			default:
				t.Fatalf("Register(%q, %q, %q) failed with kind %v: %v", scope, registrationID, token, fault.KindOf(err), err)
			}
			return
		}
		if !strings.EqualFold(scope, fuzzScope) {
			t.Fatalf("registered under the scope %q", scope)
		}
		if reg.RegistrationID != "" && !strings.EqualFold(reg.RegistrationID, registrationID) {
			t.Fatalf("registered %q with a body naming %q", registrationID, reg.RegistrationID)
		}
		if dps.ValidateID("registration ID", registrationID) != nil {
			t.Fatalf("registered the invalid registration ID %q", registrationID)
		}
		if op.RegistrationID != registrationID || op.ID == "" {
			t.Fatalf("operation %+v for %q", op, registrationID)
		}
		tok, err := sas.Parse(token)
		if err != nil {
			t.Fatalf("registered with a token that does not parse: %v", err)
		}
		res, _ := tok.Resource()
		if !strings.EqualFold(strings.TrimSuffix(res, "/"), fuzzScope+"/registrations/"+registrationID) {
			t.Fatalf("registered %q with a token for %q", registrationID, res)
		}
		if tok.Expiry.Before(fuzzNow.Add(-fuzzSkew)) {
			t.Fatalf("registered %q with an expired token (se %s)", registrationID, tok.RawExpiry)
		}
		var keys []string
		if k, ok := fuzzEnrollments[strings.ToLower(registrationID)]; ok {
			keys = append(keys, k[0], k[1])
		}
		for _, gk := range []string{fuzzGroupKey, fuzzKeyA} {
			d, _ := sas.DeriveDeviceKey(gk, registrationID)
			keys = append(keys, d)
		}
		signed := false
		for _, k := range keys {
			kb, _ := base64.StdEncoding.DecodeString(k)
			h := hmac.New(sha256.New, kb)
			h.Write([]byte(tok.RawResource + "\n" + tok.RawExpiry))
			signed = signed || bytes.Equal(h.Sum(nil), tok.Signature)
		}
		if !signed {
			t.Fatalf("registered %q with a token no key of its enrollment or group signed", registrationID)
		}
	})
}
