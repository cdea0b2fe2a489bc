package wire

import "github.com/usher-iot/usher/internal/audit"

// AuditEntry is one entry of GET /audit, an Usher extension of the DPS
// service API (it has no Azure counterpart). Empty fields are left out;
// no field ever holds key material. Etags are quoted as the records show them.
type AuditEntry struct {
	Seq           int64  `json:"seq"`
	TimestampUTC  string `json:"timestampUtc"`
	Kind          string `json:"kind"`
	Action        string `json:"action"`
	Subject       string `json:"subject"`
	Scope         string `json:"scope,omitempty"`
	Actor         string `json:"actor,omitempty"`
	Transport     string `json:"transport,omitempty"`
	SourceAddress string `json:"sourceAddress,omitempty"`
	TrackingID    string `json:"trackingId,omitempty"`
	ETagBefore    string `json:"etagBefore,omitempty"`
	ETagAfter     string `json:"etagAfter,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Detail        string `json:"detail,omitempty"`
}

// FromAuditEntry renders an audit entry.
func FromAuditEntry(e audit.Entry) AuditEntry {
	return AuditEntry{Seq: e.Seq, TimestampUTC: FormatTime(e.Time), Kind: string(e.Kind), Action: e.Action, Subject: e.Subject,
		Scope: e.Scope, Actor: e.Actor, Transport: e.Transport, SourceAddress: e.Address, TrackingID: e.TrackingID,
		ETagBefore: quoteETag(e.ETagBefore), ETagAfter: quoteETag(e.ETagAfter), Reason: e.Reason, Detail: e.Detail}
}
