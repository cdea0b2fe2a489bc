package wire_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/wire"
)

// FuzzDecodeEnrollment feeds arbitrary bodies to the enrollment decoder. It
// must never panic, must fail only with Malformed or Invalid, and whatever it
// accepts and validates must render and decode back to the same enrollment.
func FuzzDecodeEnrollment(f *testing.F) {
	capture, err := os.ReadFile(filepath.Join("testdata", "capture-put-enrollment.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(capture),
		`{"registrationId":"a","attestation":{"type":"symmetricKey"}}`,
		`{"registrationId":"a","attestation":{"type":"x509","x509":{}}}`,
		`{"registrationId":"a","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":null}},"initialTwin":{"tags":{"a":{"b":[1,2.5e3,"x",null,true]}}}}`,
		`{"initialTwin":"x"}`, `[]`, `{`, `{"registrationId":"a"} {}`, `{"provisioningStatus":"DISABLED","allocationPolicy":"geolatency"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in wire.IndividualEnrollment
		if err := wire.Decode(body, &in); err != nil {
			if k := fault.KindOf(err); k != fault.Malformed && k != fault.Invalid {
				t.Fatalf("decode failed with kind %v: %v", k, err)
			}
			return
		}
		e := in.ToEnrollment()
		if err := e.Validate(); err != nil {
			return
		}
		roundTripEnrollment(t, e)
	})
}

// roundTrip checks that a valid domain record d renders (with keys),
// decodes back through the wire type W, validates, and equals d.
func roundTrip[W, D any](t *testing.T, what string, d D, render func(D) any, back func(*W) D, validate func(*D) error) {
	t.Helper()
	out, err := json.Marshal(render(d))
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var again W
	if err := wire.Decode(out, &again); err != nil {
		t.Fatalf("re-decode of %s: %v", out, err)
	}
	d2 := back(&again)
	if err := validate(&d2); err != nil {
		t.Fatalf("rendered %s does not validate: %v\n%s", what, err, out)
	}
	if diff := cmp.Diff(d, d2, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("round trip changed the %s (-first +second):\n%s", what, diff)
	}
}

func roundTripEnrollment(t *testing.T, e dps.Enrollment) {
	t.Helper()
	roundTrip(t, "enrollment", e, func(e dps.Enrollment) any { return wire.FromEnrollment(e, wire.ShowKeys) },
		(*wire.IndividualEnrollment).ToEnrollment, (*dps.Enrollment).Validate)
}

func roundTripGroup(t *testing.T, g dps.Group) {
	t.Helper()
	roundTrip(t, "group", g, func(g dps.Group) any { return wire.FromGroup(g, wire.ShowKeys) },
		(*wire.EnrollmentGroup).ToGroup, (*dps.Group).Validate)
}

// FuzzDecodeHubBodies feeds arbitrary bodies to every decoder of the hub's
// service API. None may panic, and each may fail only with Malformed or
// Invalid (an unsupported import mode or auth type: Unsupported).
func FuzzDecodeHubBodies(f *testing.F) {
	for _, seed := range []string{
		`{"deviceId":"cap-hub-dev-01","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}}}`,
		`{"deviceId":"cap-hub-edge-01","status":"enabled","authentication":{"symmetricKey":{"primaryKey":"cA==","secondaryKey":"cw=="},"type":"sas"},"capabilities":{"iotEdge":true}}`,
		`{"moduleId":"m","deviceId":"d"}`,
		`{"moduleId":"m","deviceId":"d","authentication":{"symmetricKey":{"primaryKey":"cA==","secondaryKey":"cw=="},"type":"sas"}}`,
		`{"tags":{"site":"lab-9"},"properties":{"desired":{"telemetryInterval":10}}}`,
		`{"properties":{"desired":{"fw":"1.2.3"},"reported":{"$version":1}}}`,
		`[{"id":"dev-002","importMode":"create","tags":{"environment":"test"},"properties":{"desired":{"telemetryInterval":30}}},{"id":"dev-003","importMode":"delete"}]`,
		`{"methodName":"reboot","payload":{"delay":5},"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
		`{"capabilities":null,"authentication":{"x509Thumbprint":{"primaryThumbprint":"AB"}}}`, `[]`, `{`, `null`,
	} {
		f.Add([]byte(seed))
	}
	allowed := func(t *testing.T, what string, err error) {
		t.Helper()
		switch fault.KindOf(err) {
		case fault.Malformed, fault.Invalid, fault.Unsupported:
		default:
			t.Fatalf("%s failed with kind %v: %v", what, fault.KindOf(err), err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var d wire.Device
		if err := wire.Decode(body, &d); err != nil {
			allowed(t, "device", err)
		} else {
			_ = d.ToDeviceSpec()
		}
		var m wire.Module
		if err := wire.Decode(body, &m); err != nil {
			allowed(t, "module", err)
		} else {
			_ = m.ToModuleSpec()
		}
		var u wire.TwinUpdate
		if err := wire.Decode(body, &u); err != nil {
			allowed(t, "twin", err)
		} else if _, err := u.ToTwinPatch(); err != nil {
			allowed(t, "twin patch", err)
		}
		var bulk []wire.ExportImportDevice
		if err := wire.Decode(body, &bulk); err != nil {
			allowed(t, "bulk", err)
		} else {
			for _, e := range bulk {
				if _, err := e.ToBulkItem(); err != nil {
					allowed(t, "bulk item", err)
				}
			}
		}
		var c wire.CloudToDeviceMethod
		if err := wire.Decode(body, &c); err != nil {
			allowed(t, "method", err)
		} else {
			_ = c.ToMethodCall("d", "")
		}
	})
}
