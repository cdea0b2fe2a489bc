package hub

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

// Service holds the hub's use cases.
type Service struct {
	store         Store
	hostName      string
	now           func() time.Time
	bus           *Bus
	presence      Presence
	onTagsChanged func(ctx context.Context, deviceID string)
	audit         Auditor
	log           *slog.Logger
	deployMu      sync.Mutex // serialises deployment evaluations (deploy.go)
}

// Options configure a Service.
type Options struct {
	HostName string           // the name devices connect to (assignedHub)
	Now      func() time.Time // time.Now when nil
	Bus      *Bus             // connected devices; a private one when nil
	Presence Presence         // who is connected (several nodes); Bus when nil
	Auditor  Auditor          // told of operators' changes; nil records nothing
	Logger   *slog.Logger     // discards when nil
}

// NewService returns the hub's use cases over store.
func NewService(store Store, opts Options) *Service {
	s := &Service{store: store, hostName: opts.HostName, now: opts.Now, bus: opts.Bus, presence: opts.Presence, audit: opts.Auditor, log: opts.Logger}
	if s.audit == nil {
		s.audit = nopAuditor{}
	}
	s.onTagsChanged = s.deviceChanged // deployments follow target conditions (deploy.go)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.bus == nil {
		s.bus = NewBus()
	}
	if s.presence == nil {
		s.presence = s.bus
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// HostName is the hub's host name.
func (s *Service) HostName() string { return s.hostName }

// Device returns a device identity.
func (s *Service) Device(ctx context.Context, id string) (Device, error) {
	d, err := s.store.Device(ctx, id)
	if fault.Is(err, fault.NotFound) {
		return d, fault.New(fault.NotFound, "Device %q not found.", id)
	}
	return d, err
}

// Twin returns a device twin.
func (s *Service) Twin(ctx context.Context, id string) (Twin, Device, error) {
	d, err := s.Device(ctx, id)
	if err != nil {
		return Twin{}, d, err
	}
	t, err := s.store.Twin(ctx, id, "")
	return t, d, err
}

// ProvisionSpec is what a provisioning service asks of the hub for one
// device.
type ProvisionSpec struct {
	DeviceID     string
	PrimaryKey   string
	SecondaryKey string
	IoTEdge      bool
	Tags         map[string]any // initial twin
	Desired      map[string]any
	// ResetTwin replaces an existing device's tags and desired properties
	// with the initial twin (reprovisioning without migrating device data).
	ResetTwin bool
}

// maxProvisionAttempts bounds retries when concurrent registrations of the
// same device race.
const maxProvisionAttempts = 8

// Provision creates the device with its initial twin (and, for IoT Edge,
// the $edgeAgent and $edgeHub modules), or updates an existing device's
// keys, status and edge capability. Concurrent calls for one device end
// with exactly one device.
func (s *Service) Provision(ctx context.Context, spec ProvisionSpec) (Device, error) {
	if err := ValidateDeviceID(spec.DeviceID); err != nil {
		return Device{}, err
	}
	var err error
	for attempt := 0; attempt < maxProvisionAttempts; attempt++ {
		var d Device
		var created bool
		d, created, err = s.provisionOnce(ctx, spec)
		if err == nil && !(created && s.nothingConfigures(ctx, d)) {
			s.deviceChanged(ctx, d.ID) // deployments that target it (deploy.go)
		}
		if !fault.Is(err, fault.Conflict) && !fault.Is(err, fault.PreconditionFailed) {
			return d, err
		}
	}
	return Device{}, err
}

// nothingConfigures reports, for a device just created, that no
// configuration exists that could target it: the common case while a fleet
// provisions, decided with one read instead of evaluateDevice's three.
func (s *Service) nothingConfigures(ctx context.Context, d Device) bool {
	if d.IoTEdge {
		return false
	}
	set, err := s.loadConfigurations(ctx, nil)
	return err == nil && len(set.known) == 0
}

// provisionOnce creates or updates the device and says whether it created it.
func (s *Service) provisionOnce(ctx context.Context, spec ProvisionSpec) (Device, bool, error) {
	now := s.now().UTC()
	d, err := s.store.Device(ctx, spec.DeviceID)
	if fault.Is(err, fault.NotFound) {
		id, err := s.newIdentity(spec, now)
		if err != nil {
			return Device{}, false, err
		}
		return id.Device, true, s.store.CreateIdentity(ctx, id)
	}
	if err != nil {
		return Device{}, false, err
	}
	etag := d.ETag
	d.PrimaryKey, d.SecondaryKey = spec.PrimaryKey, spec.SecondaryKey
	if d.Status != Enabled {
		d.Status, d.StatusUpdated = Enabled, now
	}
	d.IoTEdge = spec.IoTEdge
	if d.IoTEdge && d.DeviceScope == "" {
		d.DeviceScope = edgeScope(d.ID, d.GenerationID)
	}
	d.ETag, d.Updated = newETag(), now
	var twin *Twin
	if spec.ResetTwin {
		t, err := s.store.Twin(ctx, d.ID, "")
		if err != nil {
			return Device{}, false, err
		}
		t.Tags, t.Desired = spec.Tags, spec.Desired
		t.Version++
		t.DesiredVersion++
		t.ETag, t.Updated = newETag(), now
		twin = &t
	}
	var mods []Module
	var modTwins []Twin
	if d.IoTEdge {
		mods, modTwins = edgeModules(d.ID, now)
	}
	return d, false, s.store.UpdateIdentity(ctx, d, etag, twin, mods, modTwins)
}

func (s *Service) newIdentity(spec ProvisionSpec, now time.Time) (Identity, error) {
	d := Device{
		ID: spec.DeviceID, GenerationID: newGenerationID(now), ETag: newETag(), Status: Enabled, StatusUpdated: now,
		PrimaryKey: spec.PrimaryKey, SecondaryKey: spec.SecondaryKey, IoTEdge: spec.IoTEdge, Created: now, Updated: now,
	}
	if d.PrimaryKey == "" || d.SecondaryKey == "" {
		return Identity{}, fault.New(fault.Invalid, "device %q needs both keys", d.ID)
	}
	if d.IoTEdge {
		d.DeviceScope = edgeScope(d.ID, d.GenerationID)
	}
	id := Identity{Device: d, Twin: newTwin(d.ID, "", spec.Tags, spec.Desired, now)}
	if d.IoTEdge {
		id.Modules, id.ModuleTwins = edgeModules(d.ID, now)
	}
	return id, nil
}

func newTwin(deviceID, moduleID string, tags, desired map[string]any, now time.Time) Twin {
	return Twin{DeviceID: deviceID, ModuleID: moduleID, ETag: newETag(), Version: 1, Tags: tags, Desired: desired,
		DesiredVersion: 1, ReportedVersion: 1, Updated: now}
}

// edgeModules returns fresh $edgeAgent and $edgeHub identities with twins;
// the store creates only those that do not exist yet.
func edgeModules(deviceID string, now time.Time) ([]Module, []Twin) {
	var mods []Module
	var twins []Twin
	for _, id := range []string{EdgeAgent, EdgeHub} {
		p, _ := sas.NewKey(32) // crypto/rand does not fail
		q, _ := sas.NewKey(32)
		mods = append(mods, Module{DeviceID: deviceID, ID: id, GenerationID: newGenerationID(now), ETag: newETag(), ManagedBy: "IotEdge",
			PrimaryKey: p, SecondaryKey: q, Created: now, Updated: now})
		twins = append(twins, newTwin(deviceID, id, nil, nil, now))
	}
	return mods, twins
}
