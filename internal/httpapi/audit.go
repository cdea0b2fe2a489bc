package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/wire"
)

// auditRoutes serve the audit log, an Usher extension of the DPS service
// API (Azure keeps its equivalent in Azure Monitor): GET /audit with the
// ServiceConfig right, newest entries first.
//
// Query parameters, all optional: since (RFC 3339 time, or a Go duration
// such as 24h meaning that long ago), kind (enrollment, group, policy,
// attestation), registrationId (or subject: a registration ID, group ID or
// policy name), top (1–1000, default 100). A page that may have more
// answers x-ms-continuation; send it back as that header to read on.
func (a *API) auditRoutes() []route {
	return []route{
		{http.MethodGet, []string{"audit"}, dpsPolicy, access.ServiceConfig, auditEntries},
	}
}

// defaultAuditTop is how many entries GET /audit answers without top.
const defaultAuditTop = 100

func auditEntries(c *call) error {
	q, err := auditQuery(c.r, c.api.now())
	if err != nil {
		return err
	}
	entries, err := c.api.audit.Entries(c.ctx(), q)
	if err != nil {
		return err
	}
	out := make([]wire.AuditEntry, len(entries))
	for i, e := range entries {
		out[i] = wire.FromAuditEntry(e)
	}
	if len(entries) == q.Limit && len(entries) > 0 {
		c.w.Header().Set("x-ms-continuation", strconv.FormatInt(entries[len(entries)-1].Seq, 10))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

// auditQuery reads GET /audit's parameters.
func auditQuery(r *http.Request, now time.Time) (audit.Query, error) {
	v := r.URL.Query()
	q := audit.Query{Limit: defaultAuditTop, Subject: v.Get("registrationId")}
	if s := v.Get("subject"); s != "" {
		if q.Subject != "" && !strings.EqualFold(q.Subject, s) {
			return q, fault.New(fault.Invalid, "give registrationId or subject, not both")
		}
		q.Subject = s
	}
	if s := v.Get("since"); s != "" {
		t, err := parseSince(s, now)
		if err != nil {
			return q, err
		}
		q.Since = t
	}
	if s := v.Get("kind"); s != "" {
		k, ok := audit.ParseKind(s)
		if !ok {
			return q, fault.New(fault.Invalid, "kind %q is not one of %s", s, audit.KindNames())
		}
		q.Kind = k
	}
	if s := v.Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > audit.MaxPage {
			return q, fault.New(fault.Invalid, "top must be a whole number from 1 to %d", audit.MaxPage)
		}
		q.Limit = n
	}
	if s := r.Header.Get("x-ms-continuation"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return q, fault.New(fault.Invalid, "the continuation token %q is not one this API gave", s)
		}
		q.Before = n
	}
	return q, nil
}

// parseSince reads a point in time given as an RFC 3339 time or as a
// duration before now ("90m", "24h").
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fault.New(fault.Invalid, "since %q is neither an RFC 3339 time nor a duration such as 24h", s)
}
