// Package httpapi serves Usher's HTTPS surfaces on one listener: the DPS
// service API (enrollments, groups, registration records), and, as later
// issues add them, the DPS device API and the hub's service API. Paths are
// matched case-insensitively, as Azure does; handlers return errors and one
// function renders them through package wire.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/audit"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/throttle"
	"github.com/usher-iot/usher/internal/wire"
)

// MaxBodyBytes is the largest request body the DPS APIs accept (96 KiB).
const MaxBodyBytes = 96 << 10

// Options configure the API. A nil service leaves its endpoints out.
type Options struct {
	Logger      *slog.Logger
	Enrollments *dps.Service          // DPS service API
	DPSAuth     *access.Authenticator // DPS policies
	Registrar   *dps.Registrar        // DPS device API
	Hub         *hub.Service          // hub service API
	HubAuth     *access.Authenticator // hub policies
	RetryAfter  int                   // seconds devices wait before polling; 1 when 0
	Now         func() time.Time      // time.Now when nil
	Ready       func() bool           // reports readiness for /healthz; always ready when nil
	Limits      *throttle.Limiter     // limits on the DPS device API; none when nil
	Metrics     Observer              // records requests and registrations; nothing when nil
	Audit       AuditReader           // the audit log behind GET /audit; the endpoint is absent when nil
}

// Observer records what the API served (*metrics.Metrics is one).
type Observer interface {
	// HTTPRequest records a request of a route class answered with status.
	HTTPRequest(route string, status int, d time.Duration)
	// Registration records a device registration request that ended with
	// outcome (dps.RegistrationOutcome) after d.
	Registration(transport, outcome string, d time.Duration)
}

// AuditReader reads the audit log (*audit.Log is one).
type AuditReader interface {
	Entries(ctx context.Context, q audit.Query) ([]audit.Entry, error)
}

type nopObserver struct{}

func (nopObserver) HTTPRequest(string, int, time.Duration)     {}
func (nopObserver) Registration(string, string, time.Duration) {}

// API is the HTTPS handler.
type API struct {
	log        *slog.Logger
	dps        *dps.Service
	auth       *access.Authenticator
	registrar  *dps.Registrar
	hub        *hub.Service
	hubAuth    *access.Authenticator
	retryAfter string
	now        func() time.Time
	ready      func() bool
	limits     *throttle.Limiter
	obs        Observer
	audit      AuditReader
	routes     []route
}

// New returns the HTTPS handler.
func New(opts Options) *API {
	a := &API{log: opts.Logger, dps: opts.Enrollments, auth: opts.DPSAuth, registrar: opts.Registrar, hub: opts.Hub,
		hubAuth: opts.HubAuth, now: opts.Now, ready: opts.Ready, limits: opts.Limits, retryAfter: strconv.Itoa(max(opts.RetryAfter, 1)),
		obs: opts.Metrics, audit: opts.Audit}
	if a.obs == nil {
		a.obs = nopObserver{}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.dps != nil {
		a.routes = append(a.routes, a.dpsServiceRoutes()...)
	}
	if a.audit != nil && a.auth != nil {
		a.routes = append(a.routes, a.auditRoutes()...)
	}
	if a.registrar != nil {
		a.routes = append(a.routes, a.deviceRoutes()...)
	}
	if a.hub != nil {
		a.routes = append(a.routes, a.hubRoutes()...)
		a.routes = append(a.routes, a.configurationRoutes()...)
	}
	return a
}

// authKind says who may call a route and which error surface answers.
type authKind int

const (
	dpsPolicy    authKind = iota // a DPS shared access policy with the route's rights
	dpsDevice                    // a device; the registrar checks its proof
	hubPolicy                    // a hub shared access policy with the route's rights
	hubPolicyAny                 // a hub shared access policy with one of the route's rights
	hubDevice                    // hubPolicy, or a token of the device the path names (hub.go)
)

// hubSurface reports whether errors are rendered in IoT Hub's shape.
func (k authKind) hubSurface() bool { return k == hubPolicy || k == hubPolicyAny || k == hubDevice }

// route is one endpoint: a method, a path pattern whose segments are
// lower-case literals or "*" for an ID, who may call it and the rights it
// needs.
type route struct {
	method  string
	pattern []string
	auth    authKind
	rights  access.Rights
	serve   func(*call) error
}

// call is one request being served.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	params []string // the segments that matched "*", in order
	policy access.Policy
	api    *API
	hub    bool // errors are rendered in IoT Hub's shape
	// device is who a device-scoped token proved to be on a hubDevice
	// route; nil when a policy authorised the call.
	device *hub.DeviceIdentity
	// route is the matched route, nil before (or without) a match.
	route *route
	// class names the route for metrics and logs (routeClass).
	class string
	// outcome is how a registration ended, set by the register handler.
	outcome string
}

// ServeHTTP serves one request under a fresh tracking ID: the response's
// x-ms-request-id, the trackingId of its error body, the audit entries it
// causes, and its log line all carry it, so an operator can go from a
// device's error to the log line and the audit entry.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	trackingID := newTrackingID()
	w.Header().Set("x-ms-request-id", trackingID)
	r = r.WithContext(dps.WithOrigin(r.Context(), dps.Origin{Transport: "https", Address: hostOf(r.RemoteAddr), TrackingID: trackingID}))
	sw := &statusWriter{ResponseWriter: w}
	c := &call{w: sw, r: r, api: a, class: "unmatched"}
	err := a.serve(c)
	if err != nil {
		a.fail(c, trackingID, err)
	}
	d := time.Since(start)
	a.obs.HTTPRequest(c.class, sw.code(), d)
	if c.route != nil && c.route.registers() {
		outcome := c.outcome
		if outcome == "" {
			outcome = dps.RegistrationOutcome(dps.Operation{}, err)
		}
		a.obs.Registration("https", outcome, d)
	}
	a.logRequest(c, trackingID, sw.code(), d, err)
}

// logRequest writes the request's one log line: debug, warn for 5xx
// answers, error when the cause is a bug. Internal causes appear here with
// the tracking ID, never in the answer. Headers and the query are never
// logged (they carry signatures).
func (a *API) logRequest(c *call, trackingID string, status int, d time.Duration, err error) {
	level := slog.LevelDebug
	switch {
	case status >= 500 && fault.KindOf(err) == fault.Internal:
		level = slog.LevelError
	case status >= 500:
		level = slog.LevelWarn
	}
	ctx := c.r.Context()
	if !a.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("trackingId", trackingID), slog.String("method", c.r.Method), slog.String("route", c.class),
		slog.String("path", c.r.URL.Path), slog.Int("status", status), slog.Duration("duration", d), slog.String("remote", hostOf(c.r.RemoteAddr))}
	if actor := dps.OriginFrom(ctx).Actor; actor != "" {
		attrs = append(attrs, slog.String("policy", actor))
	}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	a.log.LogAttrs(ctx, level, "https request", attrs...)
}

// hostOf returns the host part of a host:port address.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Instrument records every request h serves in obs under one route class
// (the web console's, for one), as the API records its own.
func Instrument(obs Observer, route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		obs.HTTPRequest(route, sw.code(), time.Since(start))
	})
}

// statusWriter remembers the status an answer was given.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// registers reports the device API's registration request.
func (rt *route) registers() bool {
	return rt.auth == dpsDevice && rt.method == http.MethodPut
}

// routeClass names a route for metrics and logs with a bounded set of
// values: the device API's three requests, else the route's first literal
// path segment (enrollments, enrollmentgroups, registrations, devices,
// twins, configurations, audit, …).
func routeClass(rt *route) string {
	if rt.auth == dpsDevice {
		switch {
		case rt.registers():
			return "device-register"
		case rt.method == http.MethodGet:
			return "device-poll"
		}
		return "device-status"
	}
	if len(rt.pattern) > 0 && rt.pattern[0] != "*" {
		return rt.pattern[0]
	}
	return "other"
}

func (a *API) serve(c *call) error {
	segs, err := segments(c.r.URL)
	if err != nil {
		return err
	}
	if len(segs) == 1 && strings.EqualFold(segs[0], "healthz") {
		c.class = "healthz"
		return a.health(c)
	}
	rt, params, err := a.match(c.r.Method, segs)
	c.hub = rt.auth.hubSurface()
	if err != nil {
		return err
	}
	c.route, c.class, c.params = &rt, routeClass(&rt), params
	if c.r.URL.Query().Get("api-version") == "" {
		return fault.New(fault.Invalid, "the api-version query parameter is required")
	}
	if rt.auth == hubDevice && isDeviceToken(c.r.Header.Get("Authorization")) {
		if err := a.authenticateHubDevice(c); err != nil {
			return err
		}
		return rt.serve(c)
	}
	if auth := a.policyAuth(rt.auth); auth != nil {
		resource := strings.Join(segs, "/")
		if c.policy, err = auth.Authenticate(c.r.Context(), c.r.Header.Get("Authorization"), resource); err != nil {
			return err
		}
		o := dps.OriginFrom(c.r.Context())
		o.Actor = c.policy.Name
		c.r = c.r.WithContext(dps.WithOrigin(c.r.Context(), o))
		if err := authorize(c.policy, rt, c.r.Method, resource); err != nil {
			return err
		}
	}
	return rt.serve(c)
}

// authorize checks that a policy has the rights a route needs. A policy
// without them is refused as IoT Hub and DPS refuse it, 401 (Unauthorized),
// with a message naming the operation and the missing right.
func authorize(p access.Policy, rt route, method, resource string) error {
	check := p.Require
	if rt.auth == hubPolicyAny {
		check = p.RequireAny
	}
	if err := check(rt.rights); err != nil {
		return fault.New(fault.Forbidden, "Unauthorized: %s on /%s is not authorized: %s", method, resource, fault.MessageOf(err))
	}
	return nil
}

func (a *API) policyAuth(k authKind) *access.Authenticator {
	switch k {
	case dpsPolicy:
		return a.auth
	case hubPolicy, hubPolicyAny, hubDevice:
		return a.hubAuth
	}
	return nil
}

// match finds the route for a request. When the path exists with other
// methods only, it returns one of those routes (so the error is rendered
// on that route's surface) with fault.MethodNotAllowed.
func (a *API) match(method string, segs []string) (route, []string, error) {
	var known *route
	for i, rt := range a.routes {
		params, ok := matchPattern(rt.pattern, segs)
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, params, nil
		}
		known = &a.routes[i]
	}
	if known != nil {
		return *known, nil, fault.New(fault.MethodNotAllowed, "%s is not allowed on this path", method)
	}
	return route{}, nil, fault.New(fault.NotFound, "no such endpoint: %s", "/"+strings.Join(segs, "/"))
}

func matchPattern(pattern, segs []string) ([]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var params []string
	for i, p := range pattern {
		switch {
		case p == "*":
			if segs[i] == "" {
				return nil, false
			}
			params = append(params, segs[i])
		case !strings.EqualFold(p, segs[i]):
			return nil, false
		}
	}
	return params, true
}

// segments splits the escaped path and percent-decodes each segment, so an
// ID may carry an encoded '/' and clients may encode with either hex case.
// A trailing slash is ignored (the Node SDK posts bulk operations to
// "/enrollments/").
func segments(u *url.URL) ([]string, error) {
	raw := strings.Trim(u.EscapedPath(), "/")
	if raw == "" {
		return nil, nil
	}
	parts := strings.Split(raw, "/")
	for i, p := range parts {
		s, err := url.PathUnescape(p)
		if err != nil {
			return nil, fault.New(fault.Invalid, "the path segment %q is not valid percent-encoding", p)
		}
		parts[i] = s
	}
	return parts, nil
}

func (a *API) health(c *call) error {
	if a.ready != nil && !a.ready() {
		return fault.New(fault.Unavailable, "starting")
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := io.WriteString(c.w, "ok\n")
	return err
}

// fail renders err as Azure does on the route's surface: DPS's error body
// with x-ms-error-code, or IoT Hub's with iothub-errorcode. Internal causes
// are logged with the tracking ID (logRequest) and never sent.
func (a *API) fail(c *call, trackingID string, err error) {
	var status int
	var body any
	h := c.w.Header()
	if c.hub {
		var name string
		status, name, body = wire.HubError(err, trackingID, a.now())
		h.Set("iothub-errorcode", name)
	} else {
		var details wire.ErrorDetails
		status, details = wire.DPSError(err, trackingID, a.now())
		h.Set("x-ms-error-code", strconv.Itoa(details.ErrorCode))
		body = details
	}
	if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && h.Get("Retry-After") == "" {
		h.Set("Retry-After", a.retryAfter) // unless the handler knew better (a throttled request)
	}
	writeJSON(c.w, status, body)
}

// body reads the request body (at most MaxBodyBytes) after checking that
// any Content-Type it declares is JSON.
func (c *call) body() ([]byte, error) { return c.bodyUpTo(MaxBodyBytes) }

// bodyUpTo is body with another size limit.
func (c *call) bodyUpTo(limit int64) ([]byte, error) {
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			return nil, fault.New(fault.UnsupportedMediaType, "Content-Type %q is not supported; send application/json", ct)
		}
	}
	w := c.w
	if sw, ok := w.(*statusWriter); ok {
		w = sw.ResponseWriter // MaxBytesReader closes the connection through the server's own writer
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, c.r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return nil, fault.New(fault.TooLarge, "the request body is larger than %d bytes", limit)
		case errors.Is(err, os.ErrDeadlineExceeded): // WithBodyTimeout
			return nil, fault.Wrap(fault.Malformed, err, "the request body did not arrive in time")
		}
		return nil, fault.Wrap(fault.Malformed, err, "the request body could not be read")
	}
	return b, nil
}

// decode reads and decodes the JSON body into v.
func (c *call) decode(v any) error {
	b, err := c.body()
	if err != nil {
		return err
	}
	return wire.Decode(b, v)
}

func (c *call) ctx() context.Context { return c.r.Context() }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing to do
}

func newTrackingID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
