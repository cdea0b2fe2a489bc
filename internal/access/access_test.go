package access_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

// policies is an in-memory access.Store.
type policies map[string]access.Policy

func (p policies) Policy(_ context.Context, scope access.Scope, name string) (access.Policy, error) {
	if v, ok := p[string(scope)+"/"+name]; ok {
		return v, nil
	}
	return access.Policy{}, fault.New(fault.NotFound, "no policy %q", name)
}
func (p policies) Policies(context.Context, access.Scope) ([]access.Policy, error) { return nil, nil }
func (p policies) CreatePolicy(context.Context, access.Policy) error               { return nil }
func (p policies) UpdatePolicy(context.Context, access.Policy) error               { return nil }
func (p policies) DeletePolicy(context.Context, access.Scope, string) error        { return nil }

func mustPolicy(t *testing.T, scope access.Scope, name string, r access.Rights) access.Policy {
	t.Helper()
	p, err := access.NewPolicy(scope, name, r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthenticate(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	reader := mustPolicy(t, access.Hub, "registryRead", access.RegistryRead)
	dpsOwner := mustPolicy(t, access.DPS, "registryRead", access.AllRights(access.DPS))
	a := &access.Authenticator{
		Store: policies{"hub/registryRead": reader, "dps/registryRead": dpsOwner}, Scope: access.Hub,
		Audiences: func() []string { return []string{"hub.usher.test", "alias.usher.test"} },
		Now:       func() time.Time { return now }, Skew: time.Minute,
	}
	sign := func(sr, name, key string, expiry time.Time) string {
		tok, err := sas.SignKey(sr, name, key, expiry)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	later := now.Add(time.Hour)
	tests := []struct {
		name, header, resource string
		wantErr                string // "" for success; else part of the message
	}{
		{"ok/host", sign("hub.usher.test", "registryRead", reader.PrimaryKey, later), "devices/d1", ""},
		{"ok/second audience", sign("alias.usher.test", "registryRead", reader.PrimaryKey, later), "devices/d1", ""},
		{"ok/secondary key", sign("hub.usher.test", "registryRead", reader.SecondaryKey, later), "devices", ""},
		{"ok/host case-insensitive", sign("HUB.usher.test", "registryRead", reader.PrimaryKey, later), "devices", ""},
		{"ok/scope covers the path", sign("hub.usher.test%2Fdevices", "registryRead", reader.PrimaryKey, later), "devices/d1/modules", ""},
		{"ok/scope is the path", sign("hub.usher.test/devices/d1", "registryRead", reader.PrimaryKey, later), "devices/d1", ""},
		{"ok/service itself", sign("hub.usher.test", "registryRead", reader.PrimaryKey, later), "", ""},
		{"401/scope elsewhere", sign("hub.usher.test/twins", "registryRead", reader.PrimaryKey, later), "devices/d1", "does not cover /devices/d1"},
		{"401/scope below the path", sign("hub.usher.test/devices/d1", "registryRead", reader.PrimaryKey, later), "devices", "does not cover"},
		{"401/scope on a segment prefix", sign("hub.usher.test/dev", "registryRead", reader.PrimaryKey, later), "devices/d1", "does not cover"},
		{"401/other host", sign("other.usher.test", "registryRead", reader.PrimaryKey, later), "devices", "does not cover"},
		{"401/no header", "", "devices", "no Authorization"},
		{"401/no skn (a device token)", sign("hub.usher.test/devices/d1", "", reader.PrimaryKey, later), "devices/d1", "names no policy"},
		{"401/unknown policy", sign("hub.usher.test", "nobody", reader.PrimaryKey, later), "devices", `"nobody" does not exist`},
		{"401/policy of the other service's key", sign("hub.usher.test", "registryRead", dpsOwner.PrimaryKey, later), "devices", "signature"},
		{"401/expired", sign("hub.usher.test", "registryRead", reader.PrimaryKey, now.Add(-2*time.Minute)), "devices", "expired"},
		{"401/garbage", "Bearer xyz", "devices", "SharedAccessSignature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(context.Background(), tc.header, tc.resource)
			if tc.wantErr == "" {
				if err != nil || p.Name != reader.Name {
					t.Fatalf("Authenticate = %q, %v; want %q", p.Name, err, reader.Name)
				}
				return
			}
			if !fault.Is(err, fault.Unauthenticated) || !strings.Contains(fault.MessageOf(err), tc.wantErr) {
				t.Fatalf("Authenticate error %v; want Unauthenticated containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRequire(t *testing.T) {
	p := mustPolicy(t, access.Hub, "reader", access.RegistryRead)
	tests := []struct {
		name    string
		check   func() error
		wantErr []string // parts of the message; nil for success
	}{
		{"ok/has it", func() error { return p.Require(access.RegistryRead) }, nil},
		{"ok/any of two", func() error { return p.RequireAny(access.RegistryRead | access.ServiceConnect) }, nil},
		{"401/lacks one", func() error { return p.Require(access.RegistryWrite) }, []string{`"reader"`, "RegistryWrite"}},
		{"401/names only what is missing", func() error { return p.Require(access.RegistryRead | access.ServiceConnect) }, []string{"ServiceConnect"}},
		{"401/none of two", func() error { return p.RequireAny(access.RegistryWrite | access.ServiceConnect) }, []string{"RegistryWrite", "ServiceConnect"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !fault.Is(err, fault.Forbidden) {
				t.Fatalf("error %v, want Forbidden", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(fault.MessageOf(err), w) {
					t.Errorf("message %q lacks %q", fault.MessageOf(err), w)
				}
			}
			if strings.Contains(tc.name, "only what") && strings.Contains(fault.MessageOf(err), "RegistryRead") {
				t.Errorf("message %q names a right the policy has", fault.MessageOf(err))
			}
		})
	}
}

func TestParseRights(t *testing.T) {
	tests := []struct {
		name  string
		scope access.Scope
		in    []string
		want  access.Rights
		err   bool
	}{
		{"ok/dps", access.DPS, []string{"EnrollmentRead, registrationstatusread"}, access.EnrollmentRead | access.RegistrationStatusRead, false},
		{"ok/hub", access.Hub, []string{"RegistryRead", "ServiceConnect"}, access.RegistryRead | access.ServiceConnect, false},
		{"invalid/hub right on dps", access.DPS, []string{"RegistryRead"}, 0, true},
		{"invalid/dps right on hub", access.Hub, []string{"EnrollmentWrite"}, 0, true},
		{"invalid/none", access.Hub, nil, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := access.ParseRights(tc.scope, tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("ParseRights = %v, %v; want %v, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}
