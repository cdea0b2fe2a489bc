package access_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

// policyStore holds the fuzz policies; only Policy is used by Authenticate.
type policyStore struct {
	access.Store
	policies map[string]access.Policy
}

func (s policyStore) Policy(_ context.Context, scope access.Scope, name string) (access.Policy, error) {
	p, ok := s.policies[string(scope)+"/"+name]
	if !ok {
		return access.Policy{}, fault.New(fault.NotFound, "no policy %q", name)
	}
	return p, nil
}

const (
	fuzzKeyA = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
	fuzzKeyB = "c2Vjb25kYXJ5LWtleS1mb3ItZnV6emluZy0wMDAwMDA="
	fuzzSE   = "1700003600"
)

// fuzzSign signs sr exactly as given with a base64 key for policy skn.
func fuzzSign(sr, skn, key, se string) string {
	k, _ := base64.StdEncoding.DecodeString(key)
	h := hmac.New(sha256.New, k)
	h.Write([]byte(sr + "\n" + se))
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(h.Sum(nil))) + "&skn=" + skn + "&se=" + se
}

// FuzzAuthenticate checks the service APIs' policy-token check: every
// refusal is Unauthenticated, and an accepted token names an existing
// policy of the authenticator's scope by skn, was signed over its raw sr
// with that policy's primary or secondary key, has not expired beyond the
// skew, and has an audience that is one of the service's host names or
// below one at a path boundary (hub-service-registry.md,
// dps-service-enrollments.md).
func FuzzAuthenticate(f *testing.F) {
	now := time.Unix(1700000000, 0)
	store := policyStore{policies: map[string]access.Policy{
		"hub/iothubowner":              {Scope: access.Hub, Name: "iothubowner", Rights: access.AllRights(access.Hub), PrimaryKey: fuzzKeyA, SecondaryKey: fuzzKeyB},
		"hub/registryRead":             {Scope: access.Hub, Name: "registryRead", Rights: access.RegistryRead, PrimaryKey: fuzzKeyB, SecondaryKey: fuzzKeyB},
		"dps/provisioningserviceowner": {Scope: access.DPS, Name: "provisioningserviceowner", Rights: access.AllRights(access.DPS), PrimaryKey: fuzzKeyA, SecondaryKey: fuzzKeyB},
	}}
	audiences := []string{"localhost", "usher.example:8443"}
	auth := &access.Authenticator{Store: store, Scope: access.Hub, Audiences: func() []string { return audiences }, Now: func() time.Time { return now }, Skew: time.Minute}
	for _, c := range [][4]string{
		// hub-service-registry.md, dps-service-enrollments.md: service SDK tokens
		{"localhost", "iothubowner", fuzzKeyA, fuzzSE},
		{"localhost", "provisioningserviceowner", fuzzKeyA, fuzzSE},
		{"LOCALHOST/devices/cap-hub-dev-01", "registryRead", fuzzKeyB, fuzzSE},
		{"localhost%2Fdevices", "iothubowner", fuzzKeyB, fuzzSE},
		{"usher.example%3A8443", "iothubowner", fuzzKeyA, fuzzSE},
		{"localhost", "iothubowner", fuzzKeyA, "1699999000"},
		{"localhos", "iothubowner", fuzzKeyA, fuzzSE},
		{"localhost", "iothubowner", fuzzKeyA, "9223372036854775807"},
	} {
		f.Add(fuzzSign(c[0], c[1], c[2], c[3]))
	}
	f.Add("SharedAccessSignature sr=localhost&sig=<sig>&skn=iothubowner&se=<expiry-epoch-seconds>")
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		// A request under every seed's scope (host, host/devices,
		// host/devices/cap-hub-dev-01), so scoped seeds reach the key check.
		p, err := auth.Authenticate(context.Background(), header, "devices/cap-hub-dev-01")
		if err != nil {
			if !fault.Is(err, fault.Unauthenticated) {
				t.Fatalf("Authenticate(%q) failed with kind %v: %v", header, fault.KindOf(err), err)
			}
			return
		}
		tok, err := sas.Parse(header)
		if err != nil {
			t.Fatalf("accepted a token that does not parse: %v", err)
		}
		want, ok := store.policies["hub/"+tok.KeyName]
		if !ok || p.Name != want.Name || p.Scope != access.Hub {
			t.Fatalf("Authenticate(%q) = policy %+v for skn %q", header, p, tok.KeyName)
		}
		signed := false
		for _, k := range []string{want.PrimaryKey, want.SecondaryKey} {
			kb, _ := base64.StdEncoding.DecodeString(k)
			h := hmac.New(sha256.New, kb)
			h.Write([]byte(tok.RawResource + "\n" + tok.RawExpiry))
			signed = signed || bytes.Equal(h.Sum(nil), tok.Signature)
		}
		if !signed {
			t.Fatalf("Authenticate(%q) accepted a token its policy's keys did not sign", header)
		}
		if tok.Expiry.Before(now.Add(-time.Minute)) {
			t.Fatalf("Authenticate(%q) accepted an expired token", header)
		}
		res, _ := tok.Resource()
		res = strings.ToLower(strings.TrimSuffix(res, "/"))
		for _, aud := range audiences {
			if res == aud || strings.HasPrefix(res, aud+"/") {
				return
			}
		}
		t.Fatalf("Authenticate(%q) accepted the audience %q", header, res)
	})
}
