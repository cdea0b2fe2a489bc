package deviceclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HTTPSAPIVersion is the device API version sent over HTTPS, the one the
// Azure IoT C SDK and IoT Edge send (dps-protocol.md §2.2).
const HTTPSAPIVersion = "2021-06-01"

// userAgent names this client in User-Agent and in the MQTT username.
const userAgent = "usher-deviceclient"

// httpsExchanger sends the registration and the polls over one keep-alive
// TLS connection (dps-protocol.md §2.1):
//
//	PUT /{idScope}/registrations/{registrationId}/register?api-version=…
//	GET /{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=…
type httpsExchanger struct {
	r      *registration
	tr     *http.Transport // nil with a caller's Options.HTTPClient
	client *http.Client
}

func newHTTPSExchanger(r *registration) *httpsExchanger {
	if c := r.opts.HTTPClient; c != nil {
		return &httpsExchanger{r: r, client: c}
	}
	d := r.opts.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: requestTimeout, KeepAlive: 30 * time.Second}
	}
	tr := &http.Transport{
		// Always dial the endpoint; the URL's host is only the Host header.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, r.addr)
		},
		TLSClientConfig:     r.tls,
		TLSHandshakeTimeout: requestTimeout,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		IdleConnTimeout:     90 * time.Second,
	}
	return &httpsExchanger{r: r, tr: tr, client: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

func (h *httpsExchanger) register(ctx context.Context) (answer, error) {
	return h.do(ctx, http.MethodPut, []string{h.r.opts.IDScope, "registrations", h.r.opts.RegistrationID, "register"}, h.r.body)
}

func (h *httpsExchanger) poll(ctx context.Context, operationID string) (answer, error) {
	return h.do(ctx, http.MethodGet, []string{h.r.opts.IDScope, "registrations", h.r.opts.RegistrationID, "operations", operationID}, nil)
}

// close closes the connection this registration opened; a shared
// Options.HTTPClient keeps its connections.
func (h *httpsExchanger) close() {
	if h.tr != nil {
		h.tr.CloseIdleConnections()
	}
}

// do sends one request; path segments are escaped here.
func (h *httpsExchanger) do(ctx context.Context, method string, path []string, body []byte) (answer, error) {
	var p strings.Builder
	for _, s := range path {
		p.WriteString("/" + url.PathEscape(s))
	}
	u := "https://" + h.r.host + p.String() + "?api-version=" + HTTPSAPIVersion
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	req.Header.Set("Authorization", h.r.token)
	req.Header.Set("User-Agent", userAgent)
	h.r.log.Debug("dps request", "method", method, "url", u)
	resp, err := h.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("DPS at %s: %w", h.r.addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return answer{}, fmt.Errorf("DPS at %s: reading the answer to %s: %w", h.r.addr, method, err)
	}
	return answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), trackingID: resp.Header.Get("x-ms-request-id"), body: b}, nil
}
