package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/usher-iot/usher/internal/wire"
)

// AuditQuery selects entries of Usher's audit log. Every field is optional.
type AuditQuery struct {
	Since          string // an RFC 3339 time, or a duration before now ("24h")
	Kind           string // enrollment, group, policy or attestation
	RegistrationID string // a registration ID, group ID or policy name
	Top            int    // entries per page, 1–1000; the server's default when 0
}

// Audit returns one page of the audit log, newest first, and the
// continuation token of the next page ("" when there is none). GET /audit is
// an Usher extension that needs the ServiceConfig right; Azure DPS answers
// it 404.
func (c *Client) Audit(ctx context.Context, q AuditQuery, continuation string) ([]wire.AuditEntry, string, error) {
	params := map[string]string{}
	for k, v := range map[string]string{"since": q.Since, "kind": q.Kind, "registrationId": q.RegistrationID} {
		if v != "" {
			params[k] = v
		}
	}
	if q.Top > 0 {
		params["top"] = strconv.Itoa(q.Top)
	}
	var out []wire.AuditEntry
	hdr, err := c.doQuery(ctx, request{method: http.MethodGet, path: []string{"audit"},
		headers: map[string]string{"x-ms-continuation": continuation}}, params, &out)
	if err != nil {
		return nil, "", err
	}
	return out, hdr.Get("x-ms-continuation"), nil
}
