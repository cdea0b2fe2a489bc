package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/usher-iot/usher/internal/sas"
)

// HubAPIVersion is the IoT Hub service API version hub calls name (the one
// azure-iothub 1.16 sends).
const HubAPIVersion = "2021-04-12"

// NewHub returns a Client for an IoT hub's service API (Usher's built-in
// hub or Azure IoT Hub) from a hub connection string. Hub answers are
// returned as raw JSON, in the service's own shape.
func NewHub(cs sas.ConnectionString, opts Options) (*Client, error) {
	c, err := New(cs, opts)
	if err != nil {
		return nil, err
	}
	c.apiVersion = HubAPIVersion
	return c, nil
}

func module(deviceID, moduleID string, tail ...string) []string {
	p := []string{deviceID}
	if moduleID != "" {
		p = append(p, "modules", moduleID)
	}
	return append(p, tail...)
}

// HubDevice returns a device identity.
func (c *Client) HubDevice(ctx context.Context, id string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodGet, path: []string{"devices", id}}, &out)
	return out, err
}

// HubDevices lists up to top device identities.
func (c *Client) HubDevices(ctx context.Context, top int) (json.RawMessage, error) {
	var out json.RawMessage
	path := []string{"devices"}
	_, err := c.doQuery(ctx, request{method: http.MethodGet, path: path}, map[string]string{"top": strconv.Itoa(top)}, &out)
	return out, err
}

// PutHubDevice creates (ifMatch "") or updates a device identity.
func (c *Client) PutHubDevice(ctx context.Context, id string, body any, ifMatch string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodPut, path: []string{"devices", id}, body: body, headers: map[string]string{"If-Match": ifMatch}}, &out)
	return out, err
}

// DeleteHubDevice deletes a device identity (ifMatch "*" when empty).
func (c *Client) DeleteHubDevice(ctx context.Context, id, ifMatch string) error {
	if ifMatch == "" {
		ifMatch = "*"
	}
	_, err := c.do(ctx, request{method: http.MethodDelete, path: []string{"devices", id}, headers: map[string]string{"If-Match": ifMatch}}, nil)
	return err
}

// HubTwin returns a device twin (moduleID "") or a module twin.
func (c *Client) HubTwin(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodGet, path: append([]string{"twins"}, module(deviceID, moduleID)...)}, &out)
	return out, err
}

// PatchHubTwin merges a patch ({"tags":…,"properties":{"desired":…}}) into
// a twin.
func (c *Client) PatchHubTwin(ctx context.Context, deviceID, moduleID string, patch any, ifMatch string) (json.RawMessage, error) {
	if ifMatch == "" {
		ifMatch = "*"
	}
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodPatch, path: append([]string{"twins"}, module(deviceID, moduleID)...), body: patch, headers: map[string]string{"If-Match": ifMatch}}, &out)
	return out, err
}

// HubQuery runs one page of a twin query; next is "" on the last page.
func (c *Client) HubQuery(ctx context.Context, query string, pageSize int, continuation string) (items []json.RawMessage, next string, err error) {
	next, err = c.query(ctx, []string{"devices", "query"}, map[string]string{"query": query}, pageSize, continuation, &items)
	return items, next, err
}

// Configuration returns a configuration (deployment).
func (c *Client) Configuration(ctx context.Context, id string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodGet, path: []string{"configurations", id}}, &out)
	return out, err
}

// Configurations lists up to top configurations.
func (c *Client) Configurations(ctx context.Context, top int) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.doQuery(ctx, request{method: http.MethodGet, path: []string{"configurations"}}, map[string]string{"top": strconv.Itoa(top)}, &out)
	return out, err
}

// PutConfiguration creates or updates a configuration.
func (c *Client) PutConfiguration(ctx context.Context, id string, body any, ifMatch string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodPut, path: []string{"configurations", id}, body: body, headers: map[string]string{"If-Match": ifMatch}}, &out)
	return out, err
}

// DeleteConfiguration deletes a configuration.
func (c *Client) DeleteConfiguration(ctx context.Context, id, ifMatch string) error {
	if ifMatch == "" {
		ifMatch = "*"
	}
	_, err := c.do(ctx, request{method: http.MethodDelete, path: []string{"configurations", id}, headers: map[string]string{"If-Match": ifMatch}}, nil)
	return err
}

// InvokeMethod calls a direct method on a device or module and returns the
// hub's answer {"status":…,"payload":…}.
func (c *Client) InvokeMethod(ctx context.Context, deviceID, moduleID string, body any) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodPost, path: append([]string{"twins"}, module(deviceID, moduleID, "methods")...), body: body}, &out)
	return out, err
}
