package hub

import (
	"context"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

// DeviceIdentity is who a device-scoped token proved to be.
type DeviceIdentity struct {
	DeviceID string
	ModuleID string // "" for the device itself
}

// AuthenticateDevice verifies a device-scoped SAS token (hub-protocol.md §7):
// sr = {hub host}/devices/{deviceId}[/modules/{moduleId}], URL-encoded or
// raw (the Node SDK signs the encoded form, the C SDK the raw one: the HMAC
// is over sr exactly as sent), signed with the device's (or module's)
// primary or secondary key, not expired beyond skew. want, when not empty,
// is the identity the caller claims (MQTT client ID, REST path); the token
// must name exactly it. Disabled devices are refused. Every failure is
// fault.Unauthenticated.
func (s *Service) AuthenticateDevice(ctx context.Context, token string, want DeviceIdentity, skew time.Duration) (DeviceIdentity, error) {
	tok, err := sas.Parse(token)
	if err != nil {
		return DeviceIdentity{}, err
	}
	res, err := tok.Resource()
	if err != nil {
		return DeviceIdentity{}, err
	}
	id, ok := s.audience(res)
	if !ok {
		return DeviceIdentity{}, fault.New(fault.Unauthenticated, "the token's resource %q is not a device of this hub", res)
	}
	if want.DeviceID != "" {
		// aziot-identityd lower-cases the IDs in sr (hub-protocol.md §7.1):
		// the token must name the claimed identity in any case, and the
		// claim's spelling picks the (case-sensitive) identity and its key.
		if !strings.EqualFold(id.DeviceID, want.DeviceID) || !strings.EqualFold(id.ModuleID, want.ModuleID) {
			return DeviceIdentity{}, fault.New(fault.Unauthenticated, "the token is for another device")
		}
		id = want
	}
	d, err := s.store.Device(ctx, id.DeviceID)
	if fault.Is(err, fault.NotFound) {
		return DeviceIdentity{}, fault.New(fault.Unauthenticated, "device %q is not registered", id.DeviceID)
	}
	if err != nil {
		return DeviceIdentity{}, err
	}
	primary, secondary := d.PrimaryKey, d.SecondaryKey
	if id.ModuleID != "" {
		m, err := s.store.Module(ctx, id.DeviceID, id.ModuleID)
		if err != nil {
			return DeviceIdentity{}, fault.New(fault.Unauthenticated, "module %q of device %q is not registered", id.ModuleID, id.DeviceID)
		}
		primary, secondary = m.PrimaryKey, m.SecondaryKey
	}
	if err := tok.VerifyAny(s.now(), skew, primary, secondary); err != nil {
		return DeviceIdentity{}, err
	}
	if d.Status != Enabled {
		return DeviceIdentity{}, fault.New(fault.Unauthenticated, "device %q is disabled", id.DeviceID)
	}
	return id, nil
}

// audience parses a decoded device-scoped resource of this hub.
func (s *Service) audience(res string) (DeviceIdentity, bool) {
	host, rest, ok := strings.Cut(strings.TrimSuffix(res, "/"), "/")
	if !ok || !strings.EqualFold(host, s.hostName) {
		return DeviceIdentity{}, false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 2 && parts[0] == "devices" && parts[1] != "":
		return DeviceIdentity{DeviceID: parts[1]}, true
	case len(parts) == 4 && parts[0] == "devices" && parts[2] == "modules" && parts[1] != "" && parts[3] != "":
		return DeviceIdentity{DeviceID: parts[1], ModuleID: parts[3]}, true
	}
	return DeviceIdentity{}, false
}
