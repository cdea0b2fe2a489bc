// Package deviceclient registers a device with a Device Provisioning Service
// the way the Azure IoT device SDKs do, over HTTPS or MQTT, with a symmetric
// key: it sends the registration, then polls the operation until DPS answers
// assigned, failed or disabled. It works against Usher and Azure DPS alike,
// and is what `usher device register` and the end-to-end tests use.
//
// The protocol is the one in dps-protocol.md §2 (HTTPS), §3 (SAS tokens) and
// §4 (MQTT), as captured from the Node SDK (wire/dps-https-register.md,
// wire/dps-mqtt-register.md). Like the Node SDK, the token's resource is the
// raw "{idScope}/registrations/{registrationId}" with skn "registration".
//
// Errors: bad Options are a fault Invalid. A refusal by the server is a
// *ServiceError (HTTP status or MQTT response status ≥ 300 other than 429
// and 5xx, which are retried) or, over MQTT, a *ConnectionRefusedError. A
// registration that ends failed or disabled returns its Result together
// with a *RegistrationError. Anything else (network, TLS, an answer that is
// not DPS's JSON) is a plain error naming what went wrong.
package deviceclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/sas"
)

// Transports.
const (
	HTTPS = "https"
	MQTT  = "mqtt"
)

// Default ports of the transports (dps-protocol.md §0).
const (
	httpsPort = "443"
	mqttPort  = "8883"
)

// Defaults for Options.
const (
	DefaultTokenTTL        = time.Hour
	DefaultMaxPollInterval = 60 * time.Second
	// defaultRetryAfter is the wait when an answer names none (Node and
	// Python SDKs: 2 s).
	defaultRetryAfter = 2 * time.Second
	// minRetryAfter is the shortest wait honoured from an answer.
	minRetryAfter = time.Second
	// requestTimeout bounds each request and each wait for an MQTT answer
	// (the Node SDK's 30 s).
	requestTimeout = 30 * time.Second
	// maxAnswerBytes bounds how much of an answer is read.
	maxAnswerBytes = 1 << 20
)

// Options say where to register and as whom.
type Options struct {
	// Endpoint is the DPS host, or host:port; the port defaults to 443 for
	// HTTPS and 8883 for MQTT. A scheme prefix ("https://", "mqtts://") is
	// ignored.
	Endpoint string
	// IDScope and RegistrationID name the registration.
	IDScope, RegistrationID string
	// Key is the device's symmetric key (base64).
	Key string
	// GroupKey, when set instead of Key, is the enrollment group's key; the
	// device key is derived from it (sas.DeriveDeviceKey).
	GroupKey string
	// Transport is HTTPS (the default) or MQTT.
	Transport string
	// Payload is sent as the registration's "payload" (a JSON object);
	// nil sends none.
	Payload json.RawMessage
	// RootCAs are the CAs to trust; nil means the system roots.
	RootCAs *x509.CertPool
	// ServerName is the name the server's certificate must carry; by
	// default the Endpoint's host.
	ServerName string
	// TokenTTL is how long the SAS token is valid (DefaultTokenTTL if 0).
	TokenTTL time.Duration
	// MaxPollInterval caps every wait between requests
	// (DefaultMaxPollInterval if 0). The server's retry-after is honoured
	// from 1 s up to this cap.
	MaxPollInterval time.Duration
	// Logger gets a debug line per request and answer; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called with the operation's status each time
	// an answer reports one ("assigning", then the final status).
	Progress func(status string)

	// TLSConfig, when set, is the client TLS configuration used as is
	// (RootCAs and ServerName are then ignored). A load generator sets it to
	// control session resumption and to compare against a bare handshake.
	TLSConfig *tls.Config
	// Dialer, when set, opens the TCP connection (its LocalAddr, Control
	// and Timeout apply), over both transports. Nil is a plain dialer.
	Dialer *net.Dialer
	// HTTPClient, when set, sends the HTTPS requests instead of a client
	// made for this registration on a new connection; sharing one keeps
	// connections alive across registrations. It must trust the server
	// itself: TLSConfig, RootCAs and Dialer are not applied to it. MQTT
	// ignores it.
	HTTPClient *http.Client
}

// Result is the outcome of a registration: the fields of the final
// answer's registrationState, the operation, and the answer itself.
type Result struct {
	Status         string          `json:"status"`
	AssignedHub    string          `json:"assignedHub,omitempty"`
	DeviceID       string          `json:"deviceId,omitempty"`
	RegistrationID string          `json:"registrationId"`
	Substatus      string          `json:"substatus,omitempty"`
	ErrorCode      int             `json:"errorCode,omitempty"`
	ErrorMessage   string          `json:"errorMessage,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	OperationID    string          `json:"operationId,omitempty"`
	// Raw is the final answer's body (a RegistrationOperationStatus).
	Raw json.RawMessage `json:"-"`
}

// Operation statuses (dps-protocol.md §2.5), compared exactly as the C SDK
// does.
const (
	StatusAssigning = "assigning"
	StatusAssigned  = "assigned"
	StatusFailed    = "failed"
	StatusDisabled  = "disabled"
)

// ServiceError is a refusal by DPS: an HTTP answer (or an MQTT response
// topic status) of 300 or more that is not retried, with DPS's error body.
type ServiceError struct {
	Status     int    // HTTP status, or the status in the MQTT response topic
	ErrorCode  int    // DPS's six-digit errorCode; 0 when the body had none
	Message    string // the server's message, or the start of a non-JSON body
	TrackingID string
}

func (e *ServiceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "DPS refused the registration with status %d", e.Status)
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	var extra []string
	if e.ErrorCode != 0 {
		extra = append(extra, "errorCode "+strconv.Itoa(e.ErrorCode))
	}
	if e.TrackingID != "" {
		extra = append(extra, "trackingId "+e.TrackingID)
	}
	if len(extra) > 0 {
		b.WriteString(" (" + strings.Join(extra, ", ") + ")")
	}
	return b.String()
}

// RegistrationError is a registration that DPS finished without assigning
// the device: status failed (with its errorCode and errorMessage) or
// disabled.
type RegistrationError struct {
	RegistrationID string
	Status         string
	ErrorCode      int
	Message        string
}

func (e *RegistrationError) Error() string {
	switch {
	case e.Status == StatusDisabled:
		return fmt.Sprintf("registration %s is disabled: its enrollment or enrollment group is disabled", e.RegistrationID)
	case e.Message != "" && e.ErrorCode != 0:
		return fmt.Sprintf("registration %s %s: %s (errorCode %d)", e.RegistrationID, e.Status, e.Message, e.ErrorCode)
	case e.Message != "":
		return fmt.Sprintf("registration %s %s: %s", e.RegistrationID, e.Status, e.Message)
	}
	return fmt.Sprintf("registration %s %s", e.RegistrationID, e.Status)
}

// Register registers the device and polls until DPS answers assigned,
// failed or disabled, or ctx ends. Answers 429 and 5xx are retried after
// their retry-after. See the package documentation for the errors.
func Register(ctx context.Context, opts Options) (Result, error) {
	r, err := newRegistration(opts)
	if err != nil {
		return Result{}, err
	}
	var t exchanger
	switch r.opts.Transport {
	case HTTPS:
		t = newHTTPSExchanger(r)
	case MQTT:
		if t, err = dialMQTT(ctx, r); err != nil {
			return Result{}, err
		}
	}
	defer t.close()
	return r.run(ctx, t)
}

// registration is one Register call with its options resolved.
type registration struct {
	opts     Options
	addr     string // host:port to dial
	host     string // Host header / broker host as given
	tls      *tls.Config
	token    string
	body     []byte // the DeviceRegistration JSON
	log      *slog.Logger
	maxWait  time.Duration
	progress func(string)
}

// newRegistration checks opts and prepares the token and body.
func newRegistration(opts Options) (*registration, error) {
	opts.Transport = strings.ToLower(opts.Transport)
	if opts.Transport == "" {
		opts.Transport = HTTPS
	}
	var problems []string
	if opts.Transport != HTTPS && opts.Transport != MQTT {
		problems = append(problems, fmt.Sprintf("transport %q is not https or mqtt", opts.Transport))
	}
	if opts.Endpoint == "" {
		problems = append(problems, "the DPS endpoint is required")
	}
	if opts.IDScope == "" {
		problems = append(problems, "the ID scope is required")
	}
	if opts.RegistrationID == "" {
		problems = append(problems, "the registration ID is required")
	}
	switch {
	case opts.Key != "" && opts.GroupKey != "":
		problems = append(problems, "give the device key or the group key, not both")
	case opts.Key == "" && opts.GroupKey == "":
		problems = append(problems, "a device key or a group key is required")
	}
	if len(opts.Payload) > 0 && !isJSONObject(opts.Payload) {
		problems = append(problems, "the payload must be a JSON object")
	}
	if opts.TokenTTL < 0 || opts.MaxPollInterval < 0 {
		problems = append(problems, "TokenTTL and MaxPollInterval must not be negative")
	}
	if len(problems) > 0 {
		return nil, fault.New(fault.Invalid, "%s", strings.Join(problems, "; "))
	}

	host, addr, err := splitEndpoint(opts.Endpoint, defaultPort(opts.Transport))
	if err != nil {
		return nil, err
	}
	key := opts.Key
	if opts.GroupKey != "" {
		if key, err = sas.DeriveDeviceKey(opts.GroupKey, opts.RegistrationID); err != nil {
			return nil, err
		}
	}
	ttl := opts.TokenTTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	token, err := sas.SignKey(opts.IDScope+"/registrations/"+opts.RegistrationID, "registration", key, time.Now().Add(ttl))
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(struct {
		RegistrationID string          `json:"registrationId"`
		Payload        json.RawMessage `json:"payload,omitempty"`
	}{opts.RegistrationID, opts.Payload})
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, err, "the payload could not be encoded")
	}
	serverName := opts.ServerName
	if serverName == "" {
		serverName, _, _ = net.SplitHostPort(addr)
	}
	tlsConf := opts.TLSConfig
	if tlsConf == nil {
		tlsConf = &tls.Config{RootCAs: opts.RootCAs, ServerName: serverName, MinVersion: tls.VersionTLS12}
	}
	r := &registration{
		opts:     opts,
		addr:     addr,
		host:     host,
		tls:      tlsConf,
		token:    token,
		body:     body,
		log:      opts.Logger,
		maxWait:  opts.MaxPollInterval,
		progress: opts.Progress,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.maxWait == 0 {
		r.maxWait = DefaultMaxPollInterval
	}
	if r.progress == nil {
		r.progress = func(string) {}
	}
	return r, nil
}

func defaultPort(transport string) string {
	if transport == MQTT {
		return mqttPort
	}
	return httpsPort
}

// splitEndpoint returns the endpoint as given (without a scheme or path) and
// the host:port to dial.
func splitEndpoint(endpoint, port string) (host, addr string, err error) {
	e := endpoint
	if _, rest, ok := strings.Cut(e, "://"); ok {
		e = rest
	}
	e, _, _ = strings.Cut(e, "/")
	if e == "" {
		return "", "", fault.New(fault.Invalid, "endpoint %q names no host", endpoint)
	}
	if h, p, err := net.SplitHostPort(e); err == nil {
		if h == "" || p == "" {
			return "", "", fault.New(fault.Invalid, "endpoint %q is not host or host:port", endpoint)
		}
		return e, e, nil
	}
	h := strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")
	if strings.ContainsAny(h, "[]") {
		return "", "", fault.New(fault.Invalid, "endpoint %q is not host or host:port", endpoint)
	}
	hostHeader := h
	if strings.Contains(h, ":") { // a bare IPv6 address
		hostHeader = "[" + h + "]"
	}
	return hostHeader, net.JoinHostPort(h, port), nil
}

// isJSONObject reports whether b is one JSON object and nothing else.
func isJSONObject(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v map[string]json.RawMessage
	if err := dec.Decode(&v); err != nil || v == nil {
		return false
	}
	_, err := dec.Token()
	return errors.Is(err, io.EOF)
}

// exchanger is one transport's way of sending the two requests. An answer
// is returned whatever its status; errors are failures to get one.
type exchanger interface {
	register(ctx context.Context) (answer, error)
	poll(ctx context.Context, operationID string) (answer, error)
	close()
}

// answer is one response: its status, its retry-after as sent ("" when
// absent) and its body.
type answer struct {
	status     int
	retryAfter string
	trackingID string
	body       []byte
}

// wait is how long to wait before the next request after a: its
// retry-after in whole seconds (default 2 s), at least 1 s, at most maxWait.
func wait(retryAfter string, maxWait time.Duration) time.Duration {
	d := defaultRetryAfter
	if n, err := strconv.Atoi(strings.TrimSpace(retryAfter)); err == nil {
		d = time.Duration(min(max(n, 0), 3600)) * time.Second
	}
	return min(max(d, minRetryAfter), maxWait)
}

// operationStatus is the part of a RegistrationOperationStatus the client
// reads (dps-protocol.md §2.5).
type operationStatus struct {
	OperationID       string `json:"operationId"`
	Status            string `json:"status"`
	RegistrationState *struct {
		RegistrationID string          `json:"registrationId"`
		AssignedHub    string          `json:"assignedHub"`
		DeviceID       string          `json:"deviceId"`
		Status         string          `json:"status"`
		Substatus      string          `json:"substatus"`
		ErrorCode      json.Number     `json:"errorCode"`
		ErrorMessage   string          `json:"errorMessage"`
		Payload        json.RawMessage `json:"payload"`
	} `json:"registrationState"`
}

// run sends the registration and polls until a final status.
func (r *registration) run(ctx context.Context, t exchanger) (Result, error) {
	a, err := r.retrying(ctx, "register", t.register)
	if err != nil {
		return Result{}, err
	}
	operationID := ""
	for {
		var st operationStatus
		if err := json.Unmarshal(a.body, &st); err != nil {
			return Result{}, fmt.Errorf("DPS answered %d with a body that is not a registration status: %v", a.status, err)
		}
		if operationID == "" {
			operationID = st.OperationID
		}
		r.progress(st.Status)
		switch st.Status {
		case StatusAssigned, StatusFailed, StatusDisabled:
			return r.finish(st, operationID, a.body)
		case StatusAssigning:
		default:
			return Result{}, fmt.Errorf("DPS answered %d with the unexpected status %q", a.status, st.Status)
		}
		if operationID == "" {
			return Result{}, fmt.Errorf("DPS answered %d %q without an operationId to poll", a.status, st.Status)
		}
		if err := sleep(ctx, wait(a.retryAfter, r.maxWait)); err != nil {
			return Result{}, err
		}
		if a, err = r.retrying(ctx, "poll", func(ctx context.Context) (answer, error) { return t.poll(ctx, operationID) }); err != nil {
			return Result{}, err
		}
	}
}

// retrying sends a request until its answer is not 429 or 5xx. An answer
// of 300 or more is a *ServiceError.
func (r *registration) retrying(ctx context.Context, what string, send func(context.Context) (answer, error)) (answer, error) {
	for {
		a, err := send(ctx)
		if err != nil {
			return answer{}, err
		}
		r.log.Debug("dps answer", "request", what, "status", a.status, "retryAfter", a.retryAfter, "body", string(a.body))
		switch {
		case a.status >= 200 && a.status < 300:
			return a, nil
		case a.status == 429 || a.status >= 500:
			r.progress("retrying")
			if err := sleep(ctx, wait(a.retryAfter, r.maxWait)); err != nil {
				return answer{}, err
			}
		default:
			return answer{}, serviceError(a)
		}
	}
}

// finish turns a final status into the Result (and the error for failed
// and disabled).
func (r *registration) finish(st operationStatus, operationID string, raw []byte) (Result, error) {
	res := Result{Status: st.Status, RegistrationID: r.opts.RegistrationID, OperationID: operationID, Raw: raw}
	if s := st.RegistrationState; s != nil {
		if s.RegistrationID != "" {
			res.RegistrationID = s.RegistrationID
		}
		res.AssignedHub, res.DeviceID, res.Substatus = s.AssignedHub, s.DeviceID, s.Substatus
		res.ErrorMessage = s.ErrorMessage
		res.ErrorCode, _ = strconv.Atoi(s.ErrorCode.String())
		if len(s.Payload) > 0 && string(s.Payload) != "null" {
			res.Payload = s.Payload
		}
	}
	if st.Status == StatusAssigned {
		if res.AssignedHub == "" || res.DeviceID == "" {
			return res, fmt.Errorf("DPS answered %q without assignedHub and deviceId", st.Status)
		}
		return res, nil
	}
	return res, &RegistrationError{RegistrationID: res.RegistrationID, Status: st.Status, ErrorCode: res.ErrorCode, Message: res.ErrorMessage}
}

// serviceError reads DPS's error body (dps-protocol.md §2.7).
func serviceError(a answer) error {
	e := &ServiceError{Status: a.status, TrackingID: a.trackingID}
	var details struct {
		ErrorCode  json.Number `json:"errorCode"`
		TrackingID string      `json:"trackingId"`
		Message    string      `json:"message"`
	}
	if err := json.Unmarshal(a.body, &details); err == nil && (details.Message != "" || details.ErrorCode != "") {
		e.Message = details.Message
		e.ErrorCode, _ = strconv.Atoi(details.ErrorCode.String())
		if details.TrackingID != "" {
			e.TrackingID = details.TrackingID
		}
		return e
	}
	if s := strings.TrimSpace(string(a.body)); s != "" {
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		e.Message = s
	}
	return e
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("registration did not finish: %w", context.Cause(ctx))
	}
}
