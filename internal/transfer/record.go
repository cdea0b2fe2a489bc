package transfer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/wire"
)

// FormatVersion is the version of the line format written and read here.
// A line without "version" is read as version 1.
const FormatVersion = 1

// Kind says what a line holds.
type Kind string

// Kinds, in the order Scan reads them.
const (
	KindGroup      Kind = "enrollmentGroup"
	KindEnrollment Kind = "enrollment"
)

// Kinds are all kinds, in scan order: groups are few and each covers many
// devices, so they are read (and migrated) first.
var Kinds = []Kind{KindGroup, KindEnrollment}

// Record is one line of an export: an individual enrollment or an enrollment
// group as the service API's own JSON, wrapped so the kind is explicit:
//
//	{"version":1,"kind":"enrollment","enrollment":{…IndividualEnrollment…}}
//	{"version":1,"kind":"enrollmentGroup","enrollmentGroup":{…EnrollmentGroup…}}
//
// Server-assigned members (etag, createdDateTimeUtc, lastUpdatedDateTimeUtc,
// registrationState) are left out; symmetric keys are present only when
// exported with keys.
type Record struct {
	Version    int                        `json:"version"`
	Kind       Kind                       `json:"kind"`
	Enrollment *wire.IndividualEnrollment `json:"enrollment,omitempty"`
	Group      *wire.EnrollmentGroup      `json:"enrollmentGroup,omitempty"`
}

// EnrollmentRecord wraps an individual enrollment.
func EnrollmentRecord(e wire.IndividualEnrollment) Record {
	return Record{Version: FormatVersion, Kind: KindEnrollment, Enrollment: &e}
}

// GroupRecord wraps an enrollment group.
func GroupRecord(g wire.EnrollmentGroup) Record {
	return Record{Version: FormatVersion, Kind: KindGroup, Group: &g}
}

// ID is the record's registration ID or enrollment group ID.
func (r *Record) ID() string {
	switch {
	case r.Enrollment != nil:
		return r.Enrollment.RegistrationID
	case r.Group != nil:
		return r.Group.EnrollmentGroupID
	}
	return ""
}

// key identifies a record whatever the case of its ID, as the service does.
func (r *Record) key() string { return string(r.Kind) + "/" + dps.IDKey(r.ID()) }

// settings are the members both kinds share.
func (r *Record) settings() *wire.EnrollmentSettings {
	if r.Enrollment != nil {
		return &r.Enrollment.EnrollmentSettings
	}
	return &r.Group.EnrollmentSettings
}

// HasKeys reports whether the record carries symmetric keys.
func (r *Record) HasKeys() bool {
	a := r.settings().Attestation
	return a != nil && a.SymmetricKey != nil && (nonEmpty(a.SymmetricKey.PrimaryKey) || nonEmpty(a.SymmetricKey.SecondaryKey))
}

func nonEmpty(p *string) bool { return p != nil && *p != "" }

// isSymmetric reports whether the record attests with symmetric keys.
func (r *Record) isSymmetric() bool {
	a := r.settings().Attestation
	return a != nil && strings.EqualFold(a.Type, string(dps.SymmetricKey))
}

// normalize drops what the service assigns (etag, timestamps, registration
// state) and, unless keys is set or the record carries none, the key
// member, so that the same record always renders to the same bytes.
func (r *Record) normalize(keys bool) {
	r.Version = FormatVersion
	if r.Enrollment != nil {
		r.Enrollment.RegistrationState = nil
	}
	s := r.settings()
	s.ETag, s.CreatedDateTimeUTC, s.LastUpdatedDateTimeUTC = "", "", ""
	if a := s.Attestation; a != nil && (!keys || !r.HasKeys()) {
		a.SymmetricKey = nil
	}
}

// MarshalLine renders the record as one line, newline included. Object
// members come in the wire types' order and map keys sorted, so a record
// always renders to the same bytes.
func (r *Record) MarshalLine() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// envelope is a line as read, before its record is decoded.
type envelope struct {
	Version    *int            `json:"version"`
	Kind       string          `json:"kind"`
	Enrollment json.RawMessage `json:"enrollment"`
	Group      json.RawMessage `json:"enrollmentGroup"`
}

var envelopeMembers = map[string]bool{"version": true, "kind": true, "enrollment": true, "enrollmentGroup": true}

// ParseLine reads one line. It checks the envelope (version, kind, exactly
// the member the kind names, no other member), decodes the record with the
// service API's own decoder (so what the API refuses as malformed JSON is
// refused here too) and checks the ID and that an attestation type is
// given. Everything else is the target service's to judge.
func ParseLine(line []byte) (Record, error) {
	var env envelope
	if err := wire.Decode(line, &env); err != nil {
		return Record{}, fmt.Errorf("not a JSON object: %s", plain(err))
	}
	if env.Version != nil && *env.Version != FormatVersion {
		return Record{}, fmt.Errorf("format version %d is not supported (this usher reads version %d)", *env.Version, FormatVersion)
	}
	if k := Kind(env.Kind); k != KindEnrollment && k != KindGroup {
		return Record{}, fmt.Errorf("unknown kind %q (want %q or %q)", env.Kind, KindEnrollment, KindGroup)
	}
	var members map[string]json.RawMessage
	if err := wire.Decode(line, &members); err != nil {
		return Record{}, fmt.Errorf("not a JSON object: %s", plain(err))
	}
	for name := range members {
		if !envelopeMembers[name] {
			return Record{}, fmt.Errorf("unknown member %q (a line has version, kind and enrollment or enrollmentGroup)", name)
		}
	}
	rec := Record{Version: FormatVersion, Kind: Kind(env.Kind)}
	var body, other json.RawMessage
	var otherName string
	switch rec.Kind {
	case KindEnrollment:
		body, other, otherName = env.Enrollment, env.Group, "enrollmentGroup"
	case KindGroup:
		body, other, otherName = env.Group, env.Enrollment, "enrollment"
	}
	if isNull(body) {
		return Record{}, fmt.Errorf("kind %q needs a %q member", rec.Kind, rec.Kind)
	}
	if !isNull(other) {
		return Record{}, fmt.Errorf("kind %q cannot carry a %q member", rec.Kind, otherName)
	}
	var what string
	if rec.Kind == KindEnrollment {
		rec.Enrollment = new(wire.IndividualEnrollment)
		if err := wire.Decode(body, rec.Enrollment); err != nil {
			return Record{}, fmt.Errorf("enrollment: %s", plain(err))
		}
		what = "registrationId"
	} else {
		rec.Group = new(wire.EnrollmentGroup)
		if err := wire.Decode(body, rec.Group); err != nil {
			return Record{}, fmt.Errorf("enrollmentGroup: %s", plain(err))
		}
		what = "enrollmentGroupId"
	}
	if err := dps.ValidateID(what, rec.ID()); err != nil {
		return Record{}, fmt.Errorf("%s", plain(err))
	}
	if a := rec.settings().Attestation; a == nil || a.Type == "" {
		return Record{}, fmt.Errorf("%s %q has no attestation type", rec.Kind, rec.ID())
	}
	rec.normalize(true)
	return rec, nil
}

func isNull(m json.RawMessage) bool {
	t := bytes.TrimSpace(m)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// plain is an error's message without a trailing period.
func plain(err error) string { return strings.TrimSuffix(err.Error(), ".") }

// merged is the record an update of target with line writes: the line as
// it is, except that members the line leaves out and the service would
// otherwise fill with its default (provisioningStatus, capabilities,
// reprovisionPolicy, allocationPolicy, iotHubs) keep the target's value.
// Keys the line leaves out are left out, and the service keeps them.
func merged(line, target Record) Record {
	out := clone(line)
	s, t := out.settings(), target.settings()
	if s.ProvisioningStatus == "" {
		s.ProvisioningStatus = t.ProvisioningStatus
	}
	if s.Capabilities == nil {
		s.Capabilities = t.Capabilities
	}
	if s.ReprovisionPolicy == nil {
		s.ReprovisionPolicy = t.ReprovisionPolicy
	}
	if s.AllocationPolicy == "" {
		s.AllocationPolicy = t.AllocationPolicy
	}
	if s.IoTHubs == nil {
		s.IoTHubs = t.IoTHubs
	}
	return out
}

// same reports whether writing want over have would change nothing. have
// carries its keys when want does; when want carries none, keys are not
// compared (an update keeps them). An empty initial twin equals none, and
// so does an empty optionalDeviceInformation, since services differ in
// which they render.
func same(want, have Record) bool {
	if want.Kind != have.Kind {
		return false
	}
	w, h := project(want, want.HasKeys()), project(have, want.HasKeys())
	return reflect.DeepEqual(w, h)
}

// project renders a record's body as generic JSON for comparison.
func project(r Record, keys bool) map[string]any {
	c := clone(r)
	c.normalize(keys)
	var body any = c.Enrollment
	if c.Group != nil {
		body = c.Group
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	if it, ok := m["initialTwin"].(map[string]any); ok && normalizeTwin(it) {
		delete(m, "initialTwin")
	}
	if o, ok := m["optionalDeviceInformation"].(map[string]any); ok && len(o) == 0 {
		delete(m, "optionalDeviceInformation")
	}
	return m
}

// normalizeTwin drops the empty parts of an initial twin (tags {},
// properties {} or {"desired":{}}, nulls), which services render or not,
// and reports whether nothing is left.
func normalizeTwin(t map[string]any) bool {
	if emptyObject(t["tags"]) {
		delete(t, "tags")
	}
	if p, ok := t["properties"].(map[string]any); ok {
		if emptyObject(p["desired"]) {
			delete(p, "desired")
		}
		if len(p) == 0 {
			delete(t, "properties")
		}
	}
	return len(t) == 0
}

// emptyObject reports whether v is null or {}.
func emptyObject(v any) bool {
	if v == nil {
		return true
	}
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}

// clone deep-copies a record through its JSON.
func clone(r Record) Record {
	b, err := json.Marshal(r)
	if err != nil {
		return r
	}
	var out Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return r
	}
	return out
}
