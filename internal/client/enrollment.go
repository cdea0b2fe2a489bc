package client

import (
	"context"
	"net/http"

	"github.com/usher-iot/usher/internal/wire"
)

// Enrollment returns an individual enrollment; symmetric keys come back
// masked (null), as GET answers them.
func (c *Client) Enrollment(ctx context.Context, id string) (wire.IndividualEnrollment, error) {
	var out wire.IndividualEnrollment
	_, err := c.do(ctx, request{method: http.MethodGet, path: []string{"enrollments", id}}, &out)
	return out, err
}

// PutEnrollment creates or replaces an individual enrollment. ifMatch is the
// etag the record must still have ("" for none, "*" for any existing one).
// The answer carries the keys, generated ones included.
func (c *Client) PutEnrollment(ctx context.Context, e wire.IndividualEnrollment, ifMatch string) (wire.IndividualEnrollment, error) {
	var out wire.IndividualEnrollment
	_, err := c.do(ctx, request{method: http.MethodPut, path: []string{"enrollments", e.RegistrationID}, body: e,
		headers: map[string]string{"If-Match": ifMatch}}, &out)
	return out, err
}

// DeleteEnrollment deletes an individual enrollment; ifMatch as for
// PutEnrollment.
func (c *Client) DeleteEnrollment(ctx context.Context, id, ifMatch string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: []string{"enrollments", id},
		headers: map[string]string{"If-Match": ifMatch}}, nil)
	return err
}

// EnrollmentAttestation returns an individual enrollment's attestation
// mechanism with its keys.
func (c *Client) EnrollmentAttestation(ctx context.Context, id string) (wire.AttestationMechanism, error) {
	var out wire.AttestationMechanism
	_, err := c.do(ctx, request{method: http.MethodPost, path: []string{"enrollments", id, "attestationmechanism"}}, &out)
	return out, err
}

// QueryEnrollments returns one page of the enrollments query selects
// ("SELECT * FROM enrollments [WHERE …]"), keys masked, and the continuation
// token of the next page ("" when none is left). pageSize 0 lets the server
// choose.
func (c *Client) QueryEnrollments(ctx context.Context, query string, pageSize int, continuation string) ([]wire.IndividualEnrollment, string, error) {
	var out []wire.IndividualEnrollment
	next, err := c.query(ctx, []string{"enrollments", "query"}, wire.QuerySpecification{Query: query}, pageSize, continuation, &out)
	return out, next, err
}

// BulkEnrollments creates, updates or deletes many individual enrollments at
// once. Per-item failures are in the result, not in the error.
func (c *Client) BulkEnrollments(ctx context.Context, op wire.BulkEnrollmentOperation) (wire.BulkResult, error) {
	var out wire.BulkResult
	_, err := c.do(ctx, request{method: http.MethodPost, path: []string{"enrollments"}, body: op}, &out)
	return out, err
}
