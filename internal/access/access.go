// Package access holds shared access policies (named keys with rights) and
// decides whether a SAS token presented to a service API may do what it
// asks. DPS and the built-in hub each have their own set of policies and
// rights (Azure's "Control access" pages for DPS and IoT Hub).
package access

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

// Scope says which service a policy belongs to.
type Scope string

// Policy scopes.
const (
	DPS Scope = "dps"
	Hub Scope = "hub"
)

// Rights is a set of permissions.
type Rights uint32

// DPS rights (Azure DPS shared access policy permissions).
const (
	ServiceConfig Rights = 1 << iota
	EnrollmentRead
	EnrollmentWrite
	RegistrationStatusRead
	RegistrationStatusWrite
	// IoT Hub rights.
	RegistryRead
	RegistryWrite
	ServiceConnect
	DeviceConnect
)

var rightNames = []struct {
	r     Rights
	name  string
	scope Scope
}{
	{ServiceConfig, "ServiceConfig", DPS},
	{EnrollmentRead, "EnrollmentRead", DPS},
	{EnrollmentWrite, "EnrollmentWrite", DPS},
	{RegistrationStatusRead, "RegistrationStatusRead", DPS},
	{RegistrationStatusWrite, "RegistrationStatusWrite", DPS},
	{RegistryRead, "RegistryRead", Hub},
	{RegistryWrite, "RegistryWrite", Hub},
	{ServiceConnect, "ServiceConnect", Hub},
	{DeviceConnect, "DeviceConnect", Hub},
}

// AllRights returns every right of scope s.
func AllRights(s Scope) Rights {
	var r Rights
	for _, n := range rightNames {
		if n.scope == s {
			r |= n.r
		}
	}
	return r
}

// Names lists the rights in r, in a stable order.
func (r Rights) Names() []string {
	var out []string
	for _, n := range rightNames {
		if r&n.r != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (r Rights) String() string { return strings.Join(r.Names(), ", ") }

// ParseRights reads right names (case-insensitive, comma or space separated)
// of scope s.
func ParseRights(s Scope, list []string) (Rights, error) {
	var r Rights
	for _, item := range list {
		for _, name := range strings.FieldsFunc(item, func(c rune) bool { return c == ',' || c == ' ' }) {
			found := false
			for _, n := range rightNames {
				if n.scope == s && strings.EqualFold(n.name, name) {
					r |= n.r
					found = true
				}
			}
			if !found {
				return 0, fault.New(fault.Invalid, "%q is not a %s right; choose from %s", name, s, strings.Join(AllRights(s).Names(), ", "))
			}
		}
	}
	if r == 0 {
		return 0, fault.New(fault.Invalid, "a policy needs at least one right")
	}
	return r, nil
}

// Policy is a shared access policy: a name, two keys and rights.
type Policy struct {
	Scope        Scope
	Name         string
	PrimaryKey   string
	SecondaryKey string
	Rights       Rights
}

// Well-known policy names created on first start.
const (
	DPSOwner = "provisioningserviceowner"
	HubOwner = "iothubowner"
)

// Store persists policies. Errors: fault.NotFound, fault.Conflict (create of
// an existing name).
type Store interface {
	Policy(ctx context.Context, scope Scope, name string) (Policy, error)
	Policies(ctx context.Context, scope Scope) ([]Policy, error)
	CreatePolicy(ctx context.Context, p Policy) error
	UpdatePolicy(ctx context.Context, p Policy) error
	DeletePolicy(ctx context.Context, scope Scope, name string) error
}

// ValidateName checks a policy name: 1–64 letters, digits, - . _ (Azure's
// rule for shared access policy names).
func ValidateName(name string) error {
	if name == "" || len(name) > 64 {
		return fault.New(fault.Invalid, "policy name must be 1 to 64 characters long")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fault.New(fault.Invalid, "policy name %q may only contain letters, digits, - . _", name)
		}
	}
	return nil
}

// NewPolicy returns a policy with freshly generated 32-byte keys (the size
// Azure generates for shared access policies).
func NewPolicy(scope Scope, name string, rights Rights) (Policy, error) {
	if err := ValidateName(name); err != nil {
		return Policy{}, err
	}
	p := Policy{Scope: scope, Name: name, Rights: rights}
	var err error
	if p.PrimaryKey, err = sas.NewKey(32); err != nil {
		return Policy{}, err
	}
	if p.SecondaryKey, err = sas.NewKey(32); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Authenticator checks service-API SAS tokens against a scope's policies.
type Authenticator struct {
	Store     Store
	Scope     Scope
	Audiences func() []string // host names a token's sr may name
	Now       func() time.Time
	Skew      time.Duration
}

// Authenticate parses the Authorization header value, finds the policy named
// by skn, and verifies signature, expiry and scope. resource is the path
// the request names, without a leading '/' ("devices/d1", "" for the
// service itself): the token's sr must be one of the audiences or a
// segment-wise prefix of audience/resource, IoT Hub's scope rule (a token
// for "{host}/devices" covers "devices/d1", not "twins/d1"). It returns
// fault.Unauthenticated for every failure, with a message that says which.
func (a *Authenticator) Authenticate(ctx context.Context, header, resource string) (Policy, error) {
	if strings.TrimSpace(header) == "" {
		return Policy{}, fault.New(fault.Unauthenticated, "the request has no Authorization header; send a SharedAccessSignature token")
	}
	tok, err := sas.Parse(header)
	if err != nil {
		return Policy{}, err
	}
	if tok.KeyName == "" {
		return Policy{}, fault.New(fault.Unauthenticated, "the token names no policy (skn)")
	}
	p, err := a.Store.Policy(ctx, a.Scope, tok.KeyName)
	if fault.Is(err, fault.NotFound) {
		return Policy{}, fault.New(fault.Unauthenticated, "the token's policy %q does not exist", tok.KeyName)
	}
	if err != nil {
		return Policy{}, err
	}
	if err := tok.VerifyAny(a.Now(), a.Skew, p.PrimaryKey, p.SecondaryKey); err != nil {
		return Policy{}, err
	}
	res, err := tok.Resource()
	if err != nil {
		return Policy{}, fault.New(fault.Unauthenticated, "the token's resource (sr) is not valid")
	}
	resource = strings.Trim(resource, "/")
	for _, aud := range a.Audiences() {
		want := aud
		if resource != "" {
			want = aud + "/" + resource
		}
		if sas.AudienceMatch(res, want) {
			return p, nil
		}
	}
	return Policy{}, fault.New(fault.Unauthenticated, "the token's resource %q does not cover /%s on this service", res, resource)
}

// Require returns fault.Forbidden naming the rights p lacks of need.
func (p Policy) Require(need Rights) error {
	if missing := need &^ p.Rights; missing != 0 {
		return fault.New(fault.Forbidden, "policy %q does not have the right %s", p.Name, missing)
	}
	return nil
}

// RequireAny returns fault.Forbidden unless p has at least one of the
// rights in alternatives (IoT Hub lets RegistryRead or ServiceConnect read
// twins), naming them.
func (p Policy) RequireAny(alternatives Rights) error {
	if alternatives&p.Rights == 0 {
		return fault.New(fault.Forbidden, "policy %q has none of the rights %s; it needs one of them", p.Name, alternatives)
	}
	return nil
}

// SortPolicies orders policies by name.
func SortPolicies(ps []Policy) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
}
