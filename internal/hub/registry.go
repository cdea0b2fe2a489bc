package hub

import (
	"context"
	"strings"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

// Identity registry limits (hub-protocol.md §2, §9).
const (
	MaxListDevices      = 1000 // GET /devices?top=N
	MaxBulkDevices      = 100  // items of one POST /devices
	MaxModules          = 50   // module identities per device
	MaxStatusReason     = 128
	GeneratedKeyBytes   = 32 // what the hub generates for a missing key
	MinIdentityKeyBytes = 16 // bounds of a client-supplied key, decoded
	MaxIdentityKeyBytes = 64
)

// AuthSAS is the only authentication type the hub supports so far:
// symmetric keys (hub-protocol.md §2.1).
const AuthSAS = "sas"

// DeviceSpec is what a service client sets on a device identity; the hub
// owns every other field (generation ID, etag, edge scope, times).
type DeviceSpec struct {
	ID string
	// AuthType is "sas" or "" (sas); selfSigned, certificateAuthority and
	// none are fault.Unsupported.
	AuthType     string
	Status       Status // Enabled on create, unchanged on update, when ""
	StatusReason string
	// PrimaryKey and SecondaryKey are base64 keys. A key left "" is
	// generated on create and unchanged on update.
	PrimaryKey   string
	SecondaryKey string
	IoTEdge      *bool // false on create, unchanged on update, when nil
}

// ModuleSpec is what a client (a service, or aziot-identityd for its own
// device) sets on a module identity.
type ModuleSpec struct {
	DeviceID string
	ID       string
	AuthType string // as in DeviceSpec
	// ManagedBy is free text ("IotEdge" for the edge runtime's modules);
	// unchanged on update when "".
	ManagedBy    string
	PrimaryKey   string // as in DeviceSpec
	SecondaryKey string
}

func (spec *DeviceSpec) validate() error {
	if err := ValidateDeviceID(spec.ID); err != nil {
		return err
	}
	if err := validateAuth(spec.AuthType, spec.PrimaryKey, spec.SecondaryKey); err != nil {
		return err
	}
	switch Status(strings.ToLower(string(spec.Status))) {
	case "":
	case Enabled:
		spec.Status = Enabled
	case Disabled:
		spec.Status = Disabled
	default:
		return fault.New(fault.Invalid, "status %q is not enabled or disabled", spec.Status)
	}
	if len(spec.StatusReason) > MaxStatusReason {
		return fault.New(fault.Invalid, "statusReason is %d characters; the limit is %d", len(spec.StatusReason), MaxStatusReason)
	}
	return nil
}

func (spec ModuleSpec) validate() error {
	if err := ValidateDeviceID(spec.DeviceID); err != nil {
		return err
	}
	if err := ValidateModuleID(spec.ID); err != nil {
		return err
	}
	return validateAuth(spec.AuthType, spec.PrimaryKey, spec.SecondaryKey)
}

func validateAuth(typ, primary, secondary string) error {
	if typ != "" && !strings.EqualFold(typ, AuthSAS) {
		return fault.New(fault.Unsupported, "authentication type %q is not supported yet; use sas (symmetric keys)", typ)
	}
	for _, k := range []struct{ name, key string }{{"primaryKey", primary}, {"secondaryKey", secondary}} {
		if k.key == "" {
			continue
		}
		if err := sas.ValidateKey(k.key, MinIdentityKeyBytes, MaxIdentityKeyBytes); err != nil {
			return fault.New(fault.Invalid, "authentication.symmetricKey.%s: %s", k.name, fault.MessageOf(err))
		}
	}
	return nil
}

// orNewKey returns k, or a fresh key when k is "".
func orNewKey(k string) (string, error) {
	if k != "" {
		return k, nil
	}
	return sas.NewKey(GeneratedKeyBytes)
}

// missing is the NotFound error for a device or module that is not there:
// DeviceNotFound when the device itself is missing, ModuleNotFound when
// only the module is.
func (s *Service) missing(ctx context.Context, deviceID, moduleID string) error {
	if moduleID != "" {
		if _, err := s.store.Device(ctx, deviceID); fault.Is(err, fault.NotFound) {
			return notFound(deviceID, "")
		}
	}
	return notFound(deviceID, moduleID)
}

// identityChanged lets whatever follows devices (deployments re-evaluate
// their target conditions) see a device that was created or changed.
func (s *Service) identityChanged(ctx context.Context, deviceID string) {
	if s.onTagsChanged != nil {
		s.onTagsChanged(ctx, deviceID)
	}
}

// unconditional reports whether a normalised If-Match value asks for no
// etag check.
func unconditional(etag string) bool { return etag == "" || etag == "*" }

// CreateDevice registers a new device (PUT /devices/{id} without If-Match)
// with an empty twin, and for IoT Edge devices the $edgeAgent and $edgeHub
// modules with their twins. Errors: fault.Conflict when the ID exists,
// fault.Invalid or fault.Unsupported for a bad spec.
func (s *Service) CreateDevice(ctx context.Context, spec DeviceSpec) (Device, error) {
	return s.createDevice(ctx, spec, TwinPatch{})
}

// createDevice is CreateDevice with an initial twin (bulk create).
func (s *Service) createDevice(ctx context.Context, spec DeviceSpec, twin TwinPatch) (Device, error) {
	if err := spec.validate(); err != nil {
		return Device{}, err
	}
	tags, desired := withoutMeta(twin.Tags), withoutMeta(twin.Desired)
	if err := ValidateCollection("tags", tags, MaxTagsBytes); err != nil {
		return Device{}, err
	}
	if err := ValidateCollection("properties.desired", desired, MaxDesiredBytes); err != nil {
		return Device{}, err
	}
	now := s.now().UTC()
	d := Device{ID: spec.ID, GenerationID: newGenerationID(now), ETag: newETag(), Status: spec.Status,
		StatusReason: spec.StatusReason, StatusUpdated: now, Created: now, Updated: now}
	if d.Status == "" {
		d.Status = Enabled
	}
	if spec.IoTEdge != nil {
		d.IoTEdge = *spec.IoTEdge
	}
	var err error
	if d.PrimaryKey, err = orNewKey(spec.PrimaryKey); err != nil {
		return Device{}, err
	}
	if d.SecondaryKey, err = orNewKey(spec.SecondaryKey); err != nil {
		return Device{}, err
	}
	id := Identity{Device: d, Twin: newTwin(d.ID, "", tags, desired, now)}
	if d.IoTEdge {
		id.Device.DeviceScope = edgeScope(d.ID, d.GenerationID)
		id.Modules, id.ModuleTwins = edgeModules(d.ID, now)
	}
	err = s.store.CreateIdentity(ctx, id)
	if fault.Is(err, fault.Conflict) {
		return Device{}, fault.New(fault.Conflict, "A device with ID '%s' is already registered.", d.ID)
	}
	if err != nil {
		return Device{}, err
	}
	s.identityChanged(ctx, d.ID)
	s.audit.Changed(ctx, Change{Kind: ChangeDevice, ID: d.ID, Action: "create", ETagAfter: d.ETag, Detail: deviceDetail(id.Device)})
	return id.Device, nil
}

// deviceDetail describes a device identity for the audit log, without keys.
func deviceDetail(d Device) string {
	detail := "status " + string(d.Status)
	if d.IoTEdge {
		detail += ", IoT Edge"
	}
	return detail
}

// UpdateDevice changes a device identity (PUT /devices/{id} with If-Match):
// ifMatch is the request's If-Match, "" or "*" for any etag. The generation
// ID stays; turning IoT Edge on creates the missing $edgeAgent and $edgeHub
// modules. A device left disabled is disconnected. Errors: fault.NotFound,
// fault.PreconditionFailed, fault.Invalid or fault.Unsupported.
func (s *Service) UpdateDevice(ctx context.Context, spec DeviceSpec, ifMatch string) (Device, error) {
	if err := spec.validate(); err != nil {
		return Device{}, err
	}
	want := NormalizeETag(ifMatch)
	for attempt := 0; ; attempt++ {
		d, err := s.Device(ctx, spec.ID)
		if err != nil {
			return Device{}, err
		}
		if !unconditional(want) && want != d.ETag {
			return Device{}, fault.New(fault.PreconditionFailed, "If-Match %q does not match the device's etag", want)
		}
		old := d.ETag
		now := s.now().UTC()
		if spec.Status != "" && spec.Status != d.Status {
			d.Status, d.StatusUpdated = spec.Status, now
		}
		d.StatusReason = spec.StatusReason
		if spec.PrimaryKey != "" {
			d.PrimaryKey = spec.PrimaryKey
		}
		if spec.SecondaryKey != "" {
			d.SecondaryKey = spec.SecondaryKey
		}
		if spec.IoTEdge != nil {
			d.IoTEdge = *spec.IoTEdge
		}
		if d.IoTEdge && d.DeviceScope == "" {
			d.DeviceScope = edgeScope(d.ID, d.GenerationID)
		}
		d.ETag, d.Updated = newETag(), now
		var mods []Module
		var twins []Twin
		if d.IoTEdge {
			mods, twins = edgeModules(d.ID, now)
		}
		err = s.store.UpdateIdentity(ctx, d, old, nil, mods, twins)
		if fault.Is(err, fault.PreconditionFailed) && unconditional(want) && attempt+1 < maxTwinAttempts {
			continue // a concurrent writer won; the caller asked for no etag check
		}
		if fault.Is(err, fault.NotFound) {
			return Device{}, notFound(d.ID, "")
		}
		if err != nil {
			return Device{}, err
		}
		if d.Status == Disabled {
			s.bus.Disconnect(d.ID, "the device is disabled")
		}
		s.identityChanged(ctx, d.ID)
		s.audit.Changed(ctx, Change{Kind: ChangeDevice, ID: d.ID, Action: "update", ETagBefore: old, ETagAfter: d.ETag, Detail: deviceDetail(d)})
		return d, nil
	}
}

// DeleteDevice removes a device with its twin, modules and module twins,
// and disconnects it. ifMatch as in UpdateDevice. Errors: fault.NotFound,
// fault.PreconditionFailed.
func (s *Service) DeleteDevice(ctx context.Context, id, ifMatch string) error {
	etag := NormalizeETag(ifMatch)
	if etag == "*" {
		etag = ""
	}
	err := s.store.DeleteDevice(ctx, id, etag)
	if fault.Is(err, fault.NotFound) {
		return notFound(id, "")
	}
	if fault.Is(err, fault.PreconditionFailed) {
		return fault.New(fault.PreconditionFailed, "If-Match %q does not match the device's etag", etag)
	}
	if err != nil {
		return err
	}
	s.bus.Disconnect(id, "the device was deleted")
	s.audit.Changed(ctx, Change{Kind: ChangeDevice, ID: id, Action: "delete", ETagBefore: etag})
	return nil
}

// Devices lists up to top devices ordered by ID (GET /devices?top=N); top
// outside 1..MaxListDevices means MaxListDevices, as in IoT Hub.
func (s *Service) Devices(ctx context.Context, top int) ([]Device, error) {
	if top < 1 || top > MaxListDevices {
		top = MaxListDevices
	}
	return s.store.Devices(ctx, "", top)
}

// Module returns a module identity. Errors: fault.NotFound (with
// ReasonModuleNotFound when only the module is missing).
func (s *Service) Module(ctx context.Context, deviceID, moduleID string) (Module, error) {
	m, err := s.store.Module(ctx, deviceID, moduleID)
	if fault.Is(err, fault.NotFound) {
		return m, s.missing(ctx, deviceID, moduleID)
	}
	return m, err
}

// Modules lists a device's module identities. Errors: fault.NotFound when
// the device does not exist.
func (s *Service) Modules(ctx context.Context, deviceID string) ([]Module, error) {
	if _, err := s.Device(ctx, deviceID); err != nil {
		return nil, err
	}
	return s.store.Modules(ctx, deviceID)
}

// ModuleTwin returns a module twin with its device.
func (s *Service) ModuleTwin(ctx context.Context, deviceID, moduleID string) (Twin, Device, error) {
	d, err := s.Device(ctx, deviceID)
	if err != nil {
		return Twin{}, d, err
	}
	t, err := s.store.Twin(ctx, deviceID, moduleID)
	if fault.Is(err, fault.NotFound) {
		return t, d, notFound(deviceID, moduleID)
	}
	return t, d, err
}

// CreateModule registers a module identity with an empty twin (PUT
// /devices/{id}/modules/{mid} without If-Match). Keys the client supplies
// are kept (aziot-identityd derives its own); missing ones are generated.
// Errors: fault.NotFound for an unknown device, fault.Conflict with
// ReasonModuleExists, fault.TooLarge with ReasonTooManyModules,
// fault.Invalid or fault.Unsupported.
func (s *Service) CreateModule(ctx context.Context, spec ModuleSpec) (Module, error) {
	if err := spec.validate(); err != nil {
		return Module{}, err
	}
	existing, err := s.Modules(ctx, spec.DeviceID)
	if err != nil {
		return Module{}, err
	}
	for _, m := range existing {
		if m.ID == spec.ID {
			return Module{}, moduleExists(spec)
		}
	}
	if len(existing) >= MaxModules {
		return Module{}, fault.NewReason(fault.TooLarge, ReasonTooManyModules, "device %q already has %d modules, the most IoT Hub allows", spec.DeviceID, MaxModules)
	}
	now := s.now().UTC()
	m := Module{DeviceID: spec.DeviceID, ID: spec.ID, GenerationID: newGenerationID(now), ETag: newETag(), ManagedBy: spec.ManagedBy,
		Created: now, Updated: now}
	if m.PrimaryKey, err = orNewKey(spec.PrimaryKey); err != nil {
		return Module{}, err
	}
	if m.SecondaryKey, err = orNewKey(spec.SecondaryKey); err != nil {
		return Module{}, err
	}
	err = s.store.CreateModule(ctx, m, newTwin(m.DeviceID, m.ID, nil, nil, now))
	switch {
	case fault.Is(err, fault.Conflict):
		return Module{}, moduleExists(spec)
	case fault.Is(err, fault.NotFound):
		return Module{}, notFound(spec.DeviceID, "")
	case err != nil:
		return Module{}, err
	}
	s.identityChanged(ctx, m.DeviceID) // a new module twin gets its deployment content now
	s.audit.Changed(ctx, Change{Kind: ChangeModule, ID: subject(m.DeviceID, m.ID), Action: "create", ETagAfter: m.ETag})
	return m, nil
}

func moduleExists(spec ModuleSpec) error {
	return fault.NewReason(fault.Conflict, ReasonModuleExists, "A module with ID '%s' is already registered on device '%s'.", spec.ID, spec.DeviceID)
}

// UpdateModule changes a module identity's keys or managedBy (PUT with
// If-Match; aziot-identityd sends "*" with keys it derived). The generation
// ID stays. Errors: fault.NotFound, fault.PreconditionFailed, fault.Invalid
// or fault.Unsupported.
func (s *Service) UpdateModule(ctx context.Context, spec ModuleSpec, ifMatch string) (Module, error) {
	if err := spec.validate(); err != nil {
		return Module{}, err
	}
	want := NormalizeETag(ifMatch)
	for attempt := 0; ; attempt++ {
		m, err := s.Module(ctx, spec.DeviceID, spec.ID)
		if err != nil {
			return Module{}, err
		}
		if !unconditional(want) && want != m.ETag {
			return Module{}, fault.New(fault.PreconditionFailed, "If-Match %q does not match the module's etag", want)
		}
		old := m.ETag
		if spec.ManagedBy != "" {
			m.ManagedBy = spec.ManagedBy
		}
		if spec.PrimaryKey != "" {
			m.PrimaryKey = spec.PrimaryKey
		}
		if spec.SecondaryKey != "" {
			m.SecondaryKey = spec.SecondaryKey
		}
		m.ETag, m.Updated = newETag(), s.now().UTC()
		err = s.store.UpdateModule(ctx, m, old)
		if fault.Is(err, fault.PreconditionFailed) && unconditional(want) && attempt+1 < maxTwinAttempts {
			continue
		}
		if fault.Is(err, fault.NotFound) {
			return Module{}, s.missing(ctx, spec.DeviceID, spec.ID)
		}
		if err != nil {
			return Module{}, err
		}
		s.audit.Changed(ctx, Change{Kind: ChangeModule, ID: subject(m.DeviceID, m.ID), Action: "update", ETagBefore: old, ETagAfter: m.ETag})
		return m, nil
	}
}

// DeleteModule removes a module identity and its twin and closes the
// module's connections. ifMatch as in UpdateDevice. Errors: fault.NotFound,
// fault.PreconditionFailed.
func (s *Service) DeleteModule(ctx context.Context, deviceID, moduleID, ifMatch string) error {
	etag := NormalizeETag(ifMatch)
	if etag == "*" {
		etag = ""
	}
	err := s.store.DeleteModule(ctx, deviceID, moduleID, etag)
	if fault.Is(err, fault.NotFound) {
		return s.missing(ctx, deviceID, moduleID)
	}
	if fault.Is(err, fault.PreconditionFailed) {
		return fault.New(fault.PreconditionFailed, "If-Match %q does not match the module's etag", etag)
	}
	if err != nil {
		return err
	}
	for _, c := range s.bus.lookup(deviceID, moduleID) {
		c.Close("the module was deleted")
	}
	s.audit.Changed(ctx, Change{Kind: ChangeModule, ID: subject(deviceID, moduleID), Action: "delete", ETagBefore: etag})
	return nil
}

// BulkMode is what one item of a bulk registry operation does
// (hub-protocol.md §2.4, .NET ImportMode).
type BulkMode string

// Bulk modes. The Node SDK spells them with a capital (Update,
// DeleteIfMatchETag), so they are parsed case-insensitively.
const (
	BulkCreate                    BulkMode = "create"
	BulkCreateOrUpdate            BulkMode = "createOrUpdate"
	BulkCreateOrUpdateIfMatchETag BulkMode = "createOrUpdateIfMatchETag"
	BulkUpdate                    BulkMode = "update"
	BulkUpdateIfMatchETag         BulkMode = "updateIfMatchETag"
	BulkDelete                    BulkMode = "delete"
	BulkDeleteIfMatchETag         BulkMode = "deleteIfMatchETag"
)

var bulkModes = []BulkMode{BulkCreate, BulkCreateOrUpdate, BulkCreateOrUpdateIfMatchETag, BulkUpdate, BulkUpdateIfMatchETag,
	BulkDelete, BulkDeleteIfMatchETag}

// ParseBulkMode reads an importMode in any case. The twin modes
// (updateTwin, updateTwinIfMatchETag) are fault.Unsupported.
func ParseBulkMode(s string) (BulkMode, error) {
	for _, m := range bulkModes {
		if strings.EqualFold(s, string(m)) {
			return m, nil
		}
	}
	if strings.EqualFold(s, "updateTwin") || strings.EqualFold(s, "updateTwinIfMatchETag") {
		return "", fault.New(fault.Unsupported, "importMode %q is not supported yet; update twins with PATCH /twins/{id}", s)
	}
	return "", fault.New(fault.Invalid, "importMode %q is not one of create, createOrUpdate, createOrUpdateIfMatchETag, update, updateIfMatchETag, delete, deleteIfMatchETag", s)
}

// BulkItem is one device of a bulk registry operation.
type BulkItem struct {
	Mode   BulkMode
	Device DeviceSpec
	ETag   string // the device etag the *IfMatchETag modes compare
	// Twin is the initial twin (tags, desired) of a device the item
	// creates; an item that updates a device leaves its twin alone.
	Twin TwinPatch
}

// BulkError is the failure of one item of a bulk operation.
type BulkError struct {
	DeviceID string
	Err      error // a fault; wire names its IoT Hub error code
}

// BulkDevices applies each item independently, in order: every item is
// written whole or not at all, and failures are reported per item. The
// request as a whole fails (nothing written) when it is empty, has more
// than MaxBulkDevices items (fault.TooLarge, ReasonTooManyDevices), names
// a device twice (fault.Invalid, ReasonDuplicateDevice), or has an item
// without a valid ID or mode.
func (s *Service) BulkDevices(ctx context.Context, items []BulkItem) ([]BulkError, error) {
	if len(items) == 0 {
		return nil, fault.New(fault.Invalid, "a bulk operation needs at least one device")
	}
	if len(items) > MaxBulkDevices {
		return nil, fault.NewReason(fault.TooLarge, ReasonTooManyDevices, "a bulk operation takes at most %d devices; got %d", MaxBulkDevices, len(items))
	}
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		if err := ValidateDeviceID(it.Device.ID); err != nil {
			return nil, fault.New(fault.Invalid, "item %d: %s", i, fault.MessageOf(err))
		}
		if seen[it.Device.ID] {
			return nil, fault.NewReason(fault.Invalid, ReasonDuplicateDevice, "device %q appears more than once", it.Device.ID)
		}
		seen[it.Device.ID] = true
		if _, err := ParseBulkMode(string(it.Mode)); err != nil {
			return nil, err
		}
	}
	var errs []BulkError
	for _, it := range items {
		if err := s.bulkItem(ctx, it); err != nil {
			errs = append(errs, BulkError{DeviceID: it.Device.ID, Err: err})
		}
	}
	return errs, nil
}

func (s *Service) bulkItem(ctx context.Context, it BulkItem) error {
	etag := NormalizeETag(it.ETag)
	needETag := func() error {
		if unconditional(etag) {
			return fault.New(fault.PreconditionFailed, "importMode %s needs the device's eTag", it.Mode)
		}
		return nil
	}
	var err error
	switch it.Mode {
	case BulkCreate:
		_, err = s.createDevice(ctx, it.Device, it.Twin)
	case BulkCreateOrUpdate:
		_, err = s.UpdateDevice(ctx, it.Device, "*")
		if fault.Is(err, fault.NotFound) {
			_, err = s.createDevice(ctx, it.Device, it.Twin)
		}
	case BulkCreateOrUpdateIfMatchETag:
		if _, err = s.store.Device(ctx, it.Device.ID); fault.Is(err, fault.NotFound) {
			_, err = s.createDevice(ctx, it.Device, it.Twin)
		} else if err == nil {
			if err = needETag(); err == nil {
				_, err = s.UpdateDevice(ctx, it.Device, etag)
			}
		}
	case BulkUpdate:
		_, err = s.UpdateDevice(ctx, it.Device, "*")
	case BulkUpdateIfMatchETag:
		if err = needETag(); err == nil {
			_, err = s.UpdateDevice(ctx, it.Device, etag)
		}
	case BulkDelete:
		err = s.DeleteDevice(ctx, it.Device.ID, "*")
	case BulkDeleteIfMatchETag:
		if err = needETag(); err == nil {
			err = s.DeleteDevice(ctx, it.Device.ID, etag)
		}
	}
	return err
}
