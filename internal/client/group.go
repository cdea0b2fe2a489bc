package client

import (
	"context"
	"net/http"

	"github.com/usher-iot/usher/internal/wire"
)

// Group returns an enrollment group, keys masked.
func (c *Client) Group(ctx context.Context, id string) (wire.EnrollmentGroup, error) {
	var out wire.EnrollmentGroup
	_, err := c.do(ctx, request{method: http.MethodGet, path: []string{"enrollmentGroups", id}}, &out)
	return out, err
}

// PutGroup creates or replaces an enrollment group; ifMatch as for
// PutEnrollment. The answer carries the keys.
func (c *Client) PutGroup(ctx context.Context, g wire.EnrollmentGroup, ifMatch string) (wire.EnrollmentGroup, error) {
	var out wire.EnrollmentGroup
	_, err := c.do(ctx, request{method: http.MethodPut, path: []string{"enrollmentGroups", g.EnrollmentGroupID}, body: g,
		headers: map[string]string{"If-Match": ifMatch}}, &out)
	return out, err
}

// DeleteGroup deletes an enrollment group; ifMatch as for PutEnrollment.
func (c *Client) DeleteGroup(ctx context.Context, id, ifMatch string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: []string{"enrollmentGroups", id},
		headers: map[string]string{"If-Match": ifMatch}}, nil)
	return err
}

// GroupAttestation returns an enrollment group's attestation mechanism with
// its keys.
func (c *Client) GroupAttestation(ctx context.Context, id string) (wire.AttestationMechanism, error) {
	var out wire.AttestationMechanism
	_, err := c.do(ctx, request{method: http.MethodPost, path: []string{"enrollmentGroups", id, "attestationmechanism"}}, &out)
	return out, err
}

// QueryGroups returns one page of the groups query selects ("SELECT * FROM
// enrollmentGroups [WHERE …]") and the next page's continuation token.
func (c *Client) QueryGroups(ctx context.Context, query string, pageSize int, continuation string) ([]wire.EnrollmentGroup, string, error) {
	var out []wire.EnrollmentGroup
	next, err := c.query(ctx, []string{"enrollmentGroups", "query"}, wire.QuerySpecification{Query: query}, pageSize, continuation, &out)
	return out, next, err
}

// BulkGroups creates, updates or deletes many enrollment groups at once.
func (c *Client) BulkGroups(ctx context.Context, op wire.BulkEnrollmentGroupOperation) (wire.BulkResult, error) {
	var out wire.BulkResult
	_, err := c.do(ctx, request{method: http.MethodPost, path: []string{"enrollmentGroups"}, body: op}, &out)
	return out, err
}
