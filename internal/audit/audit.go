// Package audit is the operator's append-only record of what changed and
// who was refused: every create, update and delete of an individual
// enrollment, an enrollment group or a shared access policy, and every
// operator's change to the built-in hub's devices, modules, twins and
// configurations (who, what, when, etags before and after), and every
// device the registrar refused
// (registration ID, ID scope, transport, source address, time, and the
// reason in plain words, which the device itself never sees). Entries never
// hold key material.
//
// Log implements dps.Auditor over a Store (internal/store/sqlite and
// internal/store/postgres implement it). Retention is bounded by age and by
// count; Log.Run prunes periodically. See docs/decisions/0014-observability.md.
package audit

import (
	"context"
	"strings"
	"time"
)

// Kind is what an entry is about.
type Kind string

// Entry kinds.
const (
	Enrollment  Kind = "enrollment"
	Group       Kind = "group"
	Policy      Kind = "policy"
	Attestation Kind = "attestation"
	// The built-in hub's records, as operators change them.
	Device        Kind = "device"
	Module        Kind = "module"
	Twin          Kind = "twin"
	Configuration Kind = "configuration"
)

// Kinds lists every kind, in the order help texts name them.
var Kinds = []Kind{Enrollment, Group, Policy, Attestation, Device, Module, Twin, Configuration}

// KindNames lists the kinds for messages: "enrollment, group, …".
func KindNames() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// ParseKind accepts a kind's name in any case ("enrollment-group" and
// "enrollmentgroup" name groups too).
func ParseKind(s string) (Kind, bool) {
	switch normalized(s) {
	case "enrollment", "enrollments":
		return Enrollment, true
	case "group", "groups", "enrollmentgroup", "enrollmentgroups":
		return Group, true
	case "policy", "policies":
		return Policy, true
	case "attestation", "attestations":
		return Attestation, true
	case "device", "devices":
		return Device, true
	case "module", "modules":
		return Module, true
	case "twin", "twins":
		return Twin, true
	case "configuration", "configurations", "deployment", "deployments":
		return Configuration, true
	}
	return "", false
}

func normalized(s string) string {
	return strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(s))
}

// Actions an entry records.
const (
	Create  = "create"
	Update  = "update"
	Delete  = "delete"
	Refused = "refused"
)

// Entry is one audit record.
type Entry struct {
	Seq  int64     // assigned by the store, increasing
	Time time.Time // when it happened (UTC)
	Kind Kind
	// Action is Create, Update, Delete or, for attestations, Refused.
	Action string
	// Subject is the registration ID (enrollments, attestations), the
	// group ID, or the policy name.
	Subject string
	// Scope is the policy's scope ("dps" or "hub") for policies, the ID
	// scope the device named for attestations.
	Scope string `json:",omitempty"`
	// Actor is the shared access policy that authorised a change, "" for
	// devices.
	Actor string `json:",omitempty"`
	// Transport is how the request came: https, mqtt, console, cli or
	// seed (a seed file applied at start).
	Transport string `json:",omitempty"`
	// Address is the peer's IP address, "" when local.
	Address string `json:",omitempty"`
	// TrackingID is the ID the answer's error body and the request's log
	// lines carry.
	TrackingID string `json:",omitempty"`
	ETagBefore string `json:",omitempty"`
	ETagAfter  string `json:",omitempty"`
	// Reason says in plain words why a device was refused.
	Reason string `json:",omitempty"`
	// Detail says more about a change, such as a policy's rights or which
	// key was renewed (never the key).
	Detail string `json:",omitempty"`
}

// Query selects entries, newest first.
type Query struct {
	Since   time.Time // entries at or after; zero for all
	Kind    Kind      // "" for every kind
	Subject string    // compared case-insensitively; "" for every subject
	// Before, when not 0, selects entries whose Seq is below it: the
	// cursor of the next page is the last entry's Seq.
	Before int64
	Limit  int // at most this many; MaxPage when 0 or larger
}

// MaxPage is the most entries one query returns.
const MaxPage = 1000

// Store keeps entries. Stores apply no rules: Log decides what to record
// and when to prune.
//
// Errors: fault.Internal (or fault.Unavailable) when the database fails.
type Store interface {
	// AppendAudit appends entries in order, each with the next Seq.
	AppendAudit(ctx context.Context, entries []Entry) error
	// AuditEntries returns up to q.Limit entries q selects, newest (highest
	// Seq) first.
	AuditEntries(ctx context.Context, q Query) ([]Entry, error)
	// PruneAudit deletes entries older than before, then all but the
	// newest keep, and says how many it deleted.
	PruneAudit(ctx context.Context, before time.Time, keep int) (int, error)
}

// SubjectKey is how stores compare subjects: registration IDs, group IDs
// and policy names are all case-insensitive.
func SubjectKey(s string) string { return strings.ToLower(s) }
