// Package instance is the identity of one Usher installation: its ID scope,
// its default shared access policies, and the endpoints its server last
// announced. The first start creates them; every later start, and every node
// sharing the store, reuses them (first writer wins).
package instance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
)

// Store keeps small settings. InitSetting stores a value unless one exists
// and returns the stored value (atomically). Setting returns fault.NotFound
// when unset.
type Store interface {
	Setting(ctx context.Context, key string) (string, error)
	InitSetting(ctx context.Context, key, value string) (string, error)
	PutSetting(ctx context.Context, key, value string) error
}

const (
	keyIDScope   = "id_scope"
	keyEndpoints = "endpoints"
	// keyHubPolicies records that the hub's default policies besides
	// iothubowner were created.
	keyHubPolicies = "hub_default_policies"
)

// NewIDScope returns "0ne" followed by 8 upper-case hex digits, the shape of
// Azure's generated ID scopes (dps-protocol.md §1).
func NewIDScope() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return "0ne" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// Bootstrap returns the installation's ID scope, creating it and the default
// policies on first start: provisioningserviceowner with every DPS right and
// iothubowner with every hub right (both re-created whenever missing), and
// the other policies a new IoT hub has (hub-protocol.md §7.2): service
// (ServiceConnect), device (DeviceConnect), registryRead (RegistryRead) and
// registryReadWrite (RegistryRead, RegistryWrite). Those are created once
// per store, also one that predates them, so an operator may delete them.
func Bootstrap(ctx context.Context, st Store, policies access.Store) (string, error) {
	scope, err := st.InitSetting(ctx, keyIDScope, NewIDScope())
	if err != nil {
		return "", err
	}
	type policy struct {
		scope  access.Scope
		name   string
		rights access.Rights
	}
	defaults := []policy{
		{access.DPS, access.DPSOwner, access.AllRights(access.DPS)},
		{access.Hub, access.HubOwner, access.AllRights(access.Hub)},
	}
	_, err = st.Setting(ctx, keyHubPolicies)
	switch {
	case fault.Is(err, fault.NotFound):
		defaults = append(defaults,
			policy{access.Hub, "service", access.ServiceConnect},
			policy{access.Hub, "device", access.DeviceConnect},
			policy{access.Hub, "registryRead", access.RegistryRead},
			policy{access.Hub, "registryReadWrite", access.RegistryRead | access.RegistryWrite})
	case err != nil:
		return "", err
	}
	for _, d := range defaults {
		if err := ensurePolicy(ctx, policies, d.scope, d.name, d.rights); err != nil {
			return "", err
		}
	}
	// Recorded only once they exist, so a start that fails half-way
	// completes them next time.
	if _, err := st.InitSetting(ctx, keyHubPolicies, "created"); err != nil {
		return "", err
	}
	return scope, nil
}

func ensurePolicy(ctx context.Context, st access.Store, scope access.Scope, name string, rights access.Rights) error {
	if _, err := st.Policy(ctx, scope, name); !fault.Is(err, fault.NotFound) {
		return err
	}
	p, err := access.NewPolicy(scope, name, rights)
	if err != nil {
		return err
	}
	if err := st.CreatePolicy(ctx, p); err != nil && !fault.Is(err, fault.Conflict) {
		return err
	}
	return nil
}

// IDScope returns the stored ID scope.
func IDScope(ctx context.Context, st Store) (string, error) {
	v, err := st.Setting(ctx, keyIDScope)
	if fault.Is(err, fault.NotFound) {
		return "", fault.New(fault.NotFound, "this data directory has not been initialised; run `usher serve` once")
	}
	return v, err
}

// Endpoints are what the server announced on its last start, so `usher info`
// and the CLI can find it without flags.
type Endpoints struct {
	HostNames []string `json:"hostNames"`
	HubHost   string   `json:"hubHostName,omitempty"`
	HTTPSAddr string   `json:"httpsAddr"`
	MQTTAddr  string   `json:"mqttAddr"`
	CAFile    string   `json:"caFile"`
}

// HostName is the name devices and clients use: the first host name.
func (e Endpoints) HostName() string {
	if len(e.HostNames) == 0 {
		return "localhost"
	}
	return e.HostNames[0]
}

// HubHostName is the built-in hub's name: the recorded one, else HostName.
func (e Endpoints) HubHostName() string {
	if e.HubHost != "" {
		return e.HubHost
	}
	return e.HostName()
}

// SaveEndpoints records e.
func SaveEndpoints(ctx context.Context, st Store, e Endpoints) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "encode endpoints")
	}
	return st.PutSetting(ctx, keyEndpoints, string(b))
}

// LoadEndpoints returns what SaveEndpoints recorded.
func LoadEndpoints(ctx context.Context, st Store) (Endpoints, error) {
	var e Endpoints
	v, err := st.Setting(ctx, keyEndpoints)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal([]byte(v), &e); err != nil {
		return e, fault.Wrap(fault.Internal, err, "decode endpoints")
	}
	return e, nil
}
