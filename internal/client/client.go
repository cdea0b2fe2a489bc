// Package client is a Go client for the DPS service API (api-version
// 2021-10-01) that Usher serves and Azure DPS defines: individual
// enrollments, enrollment groups, and device registration records. The CLI
// and end-to-end tests use it; it speaks only what the wire package defines,
// so it works against Azure DPS as well as against Usher.
//
// Every request is signed with a fresh shared access signature built from a
// service connection string (HostName, SharedAccessKeyName,
// SharedAccessKey), valid for one hour, with the host name (without any
// port) as its resource, as the Azure service SDKs do. A non-2xx answer is
// an *APIError carrying the status and the body's errorCode, message and
// trackingId; a failure to reach the server is returned wrapped, as is.
//
// Reference: Azure DPS service REST API 2021-10-01 (dps-protocol.md §8).
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/sas"
)

// APIVersion is the service API version every request names.
const APIVersion = "2021-10-01"

// tokenLifetime is how long each request's signature is valid.
const tokenLifetime = time.Hour

// maxResponseBytes bounds how much of a response body is read.
const maxResponseBytes = 32 << 20

// Options configure a Client. The zero value dials HostName on port 443
// (or the port the host name carries) and trusts the system roots.
type Options struct {
	// CAFile is a PEM file of extra CA certificates to trust besides the
	// system roots, such as the CA `usher serve` generates.
	CAFile string
	// Address is a host:port to dial instead of the connection string's
	// host name. TLS still verifies the certificate for the host name, and
	// the Host header and token name it.
	Address string
	// HTTPClient, when set, is used as is; CAFile and Address must then be
	// empty, since the caller owns its transport.
	HTTPClient *http.Client
	// Now is the clock for token expiry; time.Now when nil.
	Now func() time.Time
}

// Client calls one DPS instance's service API. It is safe for concurrent
// use.
type Client struct {
	apiVersion string
	keyName    string
	key        string
	host       string // host name without port: the token's resource
	base       url.URL
	http       *http.Client
	now        func() time.Time
}

// New returns a Client for the service connection string cs. It fails when
// cs lacks a host name or a usable key, or when CAFile cannot be read or
// holds no certificate.
func New(cs sas.ConnectionString, opts Options) (*Client, error) {
	if cs.HostName == "" {
		return nil, errors.New("connection string has no HostName")
	}
	host := hostOnly(cs.HostName)
	c := &Client{
		apiVersion: APIVersion,
		keyName:    cs.SharedAccessKeyName,
		key:        cs.SharedAccessKey,
		host:       host,
		base:       url.URL{Scheme: "https", Host: cs.HostName},
		http:       opts.HTTPClient,
		now:        opts.Now,
	}
	if c.now == nil {
		c.now = time.Now
	}
	// Sign once now so that a bad key fails here, not on the first call.
	if _, err := c.token(); err != nil {
		return nil, err
	}
	if c.http != nil {
		if opts.CAFile != "" || opts.Address != "" {
			return nil, errors.New("client options: CAFile and Address cannot be combined with HTTPClient")
		}
		return c, nil
	}
	tr, err := transport(host, opts)
	if err != nil {
		return nil, err
	}
	c.http = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	return c, nil
}

// CloseIdleConnections closes the connections the client keeps open
// between requests, so that a server shutting down gracefully need not wait
// for them (commands call it when they are done).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// transport builds the HTTPS transport: system roots plus CAFile, and a
// dialer pinned to Address when one is given.
func transport(host string, opts Options) (*http.Transport, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", opts.CAFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}
	if opts.Address != "" {
		if _, _, err := net.SplitHostPort(opts.Address); err != nil {
			return nil, fmt.Errorf("address %q is not host:port: %w", opts.Address, err)
		}
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, opts.Address)
		}
	}
	return tr, nil
}

// hostOnly strips a port from a host name ("h:8443" → "h", "[::1]:1" → "::1").
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

func (c *Client) token() (string, error) {
	return sas.SignKey(c.host, c.keyName, c.key, c.now().Add(tokenLifetime))
}

// APIError is a non-2xx answer of the service.
type APIError struct {
	Status     int    // HTTP status
	Code       int    // Azure's six-digit errorCode; 0 when the body had none
	Message    string // the server's message
	TrackingID string // the server's trackingId (or x-ms-request-id)
	// RetryAfter is the delay the answer's Retry-After header asks for
	// (seconds or an HTTP date; 429 and 503 carry it); 0 when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// request is one call: a method, path segments (IDs escaped here), optional
// JSON body and extra headers.
type request struct {
	method  string
	path    []string
	body    any
	headers map[string]string
}

// do sends r and decodes a 2xx body into out (when out is non-nil). It
// returns the response headers.
func (c *Client) do(ctx context.Context, r request, out any) (http.Header, error) {
	return c.doQuery(ctx, r, nil, out)
}

// doQuery is do with extra query parameters besides api-version.
func (c *Client) doQuery(ctx context.Context, r request, params map[string]string, out any) (http.Header, error) {
	u := c.base
	var raw, plain strings.Builder
	for _, seg := range r.path {
		raw.WriteString("/" + url.PathEscape(seg))
		plain.WriteString("/" + seg)
	}
	u.Path, u.RawPath = plain.String(), raw.String()
	q := url.Values{"api-version": {c.apiVersion}}
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()

	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	tok, err := c.token()
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "usher-client")
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, v := range r.headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, u.Host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.Header, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, apiError(resp, b)
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return resp.Header, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // twin values round-trip exactly
	if err := dec.Decode(out); err != nil {
		return resp.Header, fmt.Errorf("decode response of %s %s: %w", r.method, u.Path, err)
	}
	return resp.Header, nil
}

// apiError decodes Azure's error body; a body that is not one still yields
// an APIError with the status and the start of the body as its message.
func apiError(resp *http.Response, body []byte) error {
	e := &APIError{Status: resp.StatusCode, TrackingID: resp.Header.Get("x-ms-request-id"),
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var details struct {
		ErrorCode  json.Number `json:"errorCode"`
		TrackingID string      `json:"trackingId"`
		Message    string      `json:"message"`
	}
	var hub struct {
		Message string `json:"Message"`
	}
	if err := json.Unmarshal(body, &hub); err == nil && strings.HasPrefix(hub.Message, "ErrorCode:") {
		// IoT Hub's envelope: "ErrorCode:<Name>;<text>".
		_, text, _ := strings.Cut(hub.Message, ";")
		e.Message = text
		return e
	}
	if err := json.Unmarshal(body, &details); err == nil && details.Message != "" {
		e.Message = details.Message
		if details.TrackingID != "" {
			e.TrackingID = details.TrackingID
		}
		if n, err := strconv.Atoi(details.ErrorCode.String()); err == nil {
			e.Code = n
		}
		return e
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		e.Message = s
	} else if code := resp.Header.Get("x-ms-error-code"); code != "" {
		e.Code, _ = strconv.Atoi(code)
	}
	return e
}

// retryAfter reads a Retry-After value: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3). Anything else, or a time already past, is 0.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// query posts a query specification and returns the continuation token of
// the next page ("" when this is the last). pageSize 0 leaves the page size
// to the server.
func (c *Client) query(ctx context.Context, path []string, spec any, pageSize int, continuation string, out any) (string, error) {
	h := map[string]string{"x-ms-continuation": continuation}
	if pageSize > 0 {
		h["x-ms-max-item-count"] = strconv.Itoa(pageSize)
	}
	hdr, err := c.do(ctx, request{method: http.MethodPost, path: path, body: spec, headers: h}, out)
	if err != nil {
		return "", err
	}
	return hdr.Get("x-ms-continuation"), nil
}
