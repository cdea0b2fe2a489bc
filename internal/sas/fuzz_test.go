package sas

import (
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/fault"
)

// captured holds tokens as recorded in shared/spec/wire/*.md, with
// their <sig> and expiry placeholders still in place.
var captured = []string{
	// c-sdk-dps-https-register.md (C SDK, lowercase hex sr)
	"SharedAccessSignature sr=0ne00STUB01%2fregistrations%2fcap-c-http-01&sig=<sig>&se=<expiry>&skn=registration",
	"SharedAccessSignature sr=0ne00STUB01%2fregistrations%2fcap-c%3adev.07&sig=<sig>&se=<expiry>&skn=registration",
	// c-sdk-hub-device-mqtt.md (C SDK hub device, raw sr, no skn)
	"SharedAccessSignature sr=127.0.0.1/devices/cap-c-hub-dev-01&sig=<sig>&se=<expiry>",
	// dps-https-register.md, dps-amqp-first-bytes.md (Node, raw sr)
	"SharedAccessSignature sr=0ne00STUB01/registrations/cap-http-dev-01&sig=<sig>&skn=registration&se=<expiry-epoch-seconds>",
	"SharedAccessSignature sr=0ne00STUB01/registrations/cap-amqp-dev-01&sig=<sig>&skn=registration&se=<expiry-epoch-seconds>",
	// hub-device-mqtt.md (Node hub device, encoded sr)
	"SharedAccessSignature sr=localhost%2Fdevices%2Fcap-mqtt-hub-dev&sig=<sig>&se=<expiry-epoch-seconds>",
	// hub-service-registry.md, dps-service-enrollments.md (service SDKs)
	"SharedAccessSignature sr=localhost&sig=<sig>&skn=iothubowner&se=<expiry-epoch-seconds>",
	"SharedAccessSignature sr=localhost&sig=<sig>&skn=provisioningserviceowner&se=<expiry-epoch-seconds>",
}

// fuzzNow is the verification time used while fuzzing; captured seeds
// expire one hour later.
var fuzzNow = time.Unix(1700000000, 0)

// fillCaptured replaces a capture's placeholders with a real expiry and a
// real signature under vectorKey.
func fillCaptured(tmpl string) string {
	const se = "1700003600"
	s := strings.NewReplacer("<expiry-epoch-seconds>", se, "<expiry>", se).Replace(tmpl)
	sr := s[len("SharedAccessSignature sr="):strings.Index(s, "&")]
	return strings.Replace(s, "<sig>", refSigEscaped(vectorKey, sr, se), 1)
}

func TestCapturedSeedsVerify(t *testing.T) {
	for _, c := range captured {
		tok, err := Parse(fillCaptured(c))
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if err := tok.Verify(vectorKey, fuzzNow, 0); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range captured {
		f.Add(fillCaptured(c))
		f.Add(c)
	}
	f.Add(tokC)
	f.Add(tokCS)
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			if !fault.Is(err, fault.Unauthenticated) {
				t.Fatalf("Parse error of kind %v: %v", fault.KindOf(err), err)
			}
			return
		}
		if _, err := tok.Resource(); err != nil {
			t.Fatalf("Parse accepted an sr that Resource rejects: %v", err)
		}
		if err := tok.Verify(vectorKey, fuzzNow, time.Minute); err != nil && !fault.Is(err, fault.Unauthenticated) {
			t.Fatalf("Verify error of kind %v: %v", fault.KindOf(err), err)
		}
		resignParses(t, tok)
	})
}

// resignParses checks that signing a parsed token's resource again yields a
// token that parses back to the same resource and expiry and verifies.
func resignParses(t *testing.T, tok Token) {
	t.Helper()
	s := Sign(tok.RawResource, tok.KeyName, vectorKey, tok.Expiry)
	if len(s) > maxTokenLen {
		return
	}
	again, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(Sign(%q)): %v", tok.RawResource, err)
	}
	if again.RawResource != tok.RawResource || !again.Expiry.Equal(tok.Expiry) || again.KeyName != tok.KeyName {
		t.Fatalf("re-signed token differs: %+v vs %+v", again, tok)
	}
	if err := again.Verify(vectorKey, tok.Expiry, 0); err != nil {
		t.Fatalf("re-signed token does not verify: %v", err)
	}
}

func FuzzParseConnectionString(f *testing.F) {
	for _, s := range []string{
		"HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=" + vectorKeyB64,
		"HostName=localhost;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=" + vectorKeyB64,
		"HostName=127.0.0.1;DeviceId=cap-c-hub-dev-01;SharedAccessKey=" + vectorKeyB64,
		"HostName=hub.example;DeviceId=d1;ModuleId=m1;SharedAccessKey=" + vectorKeyB64 + ";GatewayHostName=localhost:8884",
		"HostName=localhost:8443;DeviceId=dev;SharedAccessSignature=" + fillCaptured(captured[2]),
		"hostname=h;;sharedaccesskey=AAAA==;",
		"HostName=h;HostName=h",
		"garbage",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConnectionString(s)
		if err != nil {
			if !fault.Is(err, fault.Invalid) {
				t.Fatalf("error of kind %v: %v", fault.KindOf(err), err)
			}
			return
		}
		again, err := ParseConnectionString(c.String())
		if err != nil {
			t.Fatalf("ParseConnectionString(String()) of %q: %v", s, err)
		}
		if again != c {
			t.Fatalf("round trip of %q: %+v != %+v", s, again, c)
		}
	})
}
