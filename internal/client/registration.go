package client

import (
	"context"
	"net/http"

	"github.com/usher-iot/usher/internal/wire"
)

// Registration returns a device's registration record.
func (c *Client) Registration(ctx context.Context, id string) (wire.DeviceRegistrationState, error) {
	var out wire.DeviceRegistrationState
	_, err := c.do(ctx, request{method: http.MethodGet, path: []string{"registrations", id}}, &out)
	return out, err
}

// DeleteRegistration deletes a device's registration record; ifMatch as for
// PutEnrollment.
func (c *Client) DeleteRegistration(ctx context.Context, id, ifMatch string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: []string{"registrations", id},
		headers: map[string]string{"If-Match": ifMatch}}, nil)
	return err
}

// GroupRegistrations returns one page of the registration records of the
// devices that registered through group groupID, and the next page's
// continuation token. query may be "" (all), or "SELECT * FROM
// registrations WHERE …"; "" sends no body, as the Azure SDKs do.
func (c *Client) GroupRegistrations(ctx context.Context, groupID, query string, pageSize int, continuation string) ([]wire.DeviceRegistrationState, string, error) {
	var spec any
	if query != "" {
		spec = wire.QuerySpecification{Query: query}
	}
	var out []wire.DeviceRegistrationState
	next, err := c.query(ctx, []string{"registrations", groupID, "query"}, spec, pageSize, continuation, &out)
	return out, next, err
}
