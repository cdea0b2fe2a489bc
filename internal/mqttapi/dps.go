package mqttapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/throttle"
	"github.com/usher-iot/usher/internal/wire"
)

// DPS topics (dps-protocol.md §4.2; wire/dps-mqtt-register.md,
// wire/c-sdk-dps-mqtt-register.md).
const (
	dpsResponseFilter = "$dps/registrations/res/#"
	dpsRegisterTopic  = "$dps/registrations/PUT/iotdps-register/?"
	dpsPollTopic      = "$dps/registrations/GET/iotdps-get-operationstatus/?"
	dpsResponseTopic  = "$dps/registrations/res/"
)

// dpsHandler serves devices registering over MQTT: it decodes the request
// topics, calls the registrar, and encodes its answers the way the HTTPS
// device API does (internal/httpapi/registration.go), with the status in
// the response topic.
type dpsHandler struct {
	reg        *dps.Registrar
	retryAfter int
	limits     *throttle.Limiter // nil: no limits
	now        func() time.Time
	log        *slog.Logger
	obs        Observer
}

var _ handler = (*dpsHandler)(nil)

// authenticate admits every well-formed DPS CONNECT, whatever its
// password: real DPS accepts the connection and answers bad credentials with
// a 401 on the response topic (dps-protocol.md §4.1, observed from the
// service), which gives the SDKs a typed error (Node: UnauthorizedError)
// instead of a bare "connection refused". The registrar verifies the token
// on every request, so an unauthenticated connection can do nothing but be
// told 401.
func (h *dpsHandler) authenticate(context.Context, identity, string) error { return nil }

// configure makes every DPS session clean and will-less: DPS keeps no
// sessions (dps-protocol.md §4.1; Python connects with clean session
// false), so a reconnecting device never resumes stale subscriptions or
// answers, and no SDK sends a will.
func (h *dpsHandler) configure(cl *mqtt.Client) {
	cl.Properties.Clean = true
	cl.Properties.Will = mqtt.Will{}
}

func (h *dpsHandler) maySubscribe(_ *session, filter string) bool { return filter == dpsResponseFilter }

func (h *dpsHandler) mayPublish(_ *session, topic string) bool {
	_, ok := parseDPSRequest(topic)
	return ok
}

// started, ended and admit have nothing to do: DPS keeps no per-connection
// state and answers every request after acknowledging it.
func (h *dpsHandler) started(*session) {}
func (h *dpsHandler) ended(*session)   {}
func (h *dpsHandler) admit(context.Context, *session, packets.Packet) error {
	return nil
}

// dpsRequest is a parsed request topic.
type dpsRequest struct {
	register    bool   // register, else operation status
	rid         string // echoed exactly as sent
	operationID string // percent-decoded
}

// parseDPSRequest reads a request topic. The query is split by hand: $rid
// must be echoed byte for byte (Python sends it URL-quoted and compares
// the quoted form), and the C SDK sends operationId unescaped.
func parseDPSRequest(topic string) (dpsRequest, bool) {
	var r dpsRequest
	var query string
	switch {
	case strings.HasPrefix(topic, dpsRegisterTopic):
		r.register, query = true, topic[len(dpsRegisterTopic):]
	case strings.HasPrefix(topic, dpsPollTopic):
		query = topic[len(dpsPollTopic):]
	default:
		return r, false
	}
	var haveRID, haveOp bool
	for _, pair := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		switch {
		case k == "$rid" && !haveRID:
			r.rid, haveRID = v, true
		case k == "operationId" && !haveOp:
			if d, err := url.QueryUnescape(v); err == nil {
				v = d
			}
			r.operationID, haveOp = v, true
		}
	}
	return r, true
}

// serve answers one request on the session's connection: 202 with
// "assigning" for a registration (the work is done; the poll returns it),
// 200 with the operation for a poll, and errors with the status and body of
// the one DPS error table (wire.DPSError). A request over the node's limits
// (internal/throttle) is answered 429 with the limiter's retry-after, as
// over HTTPS; registrations and polls are limited as there
// (internal/httpapi/registration.go). Each request gets a tracking ID that
// its error body, its audit entries and its log line carry.
func (h *dpsHandler) serve(ctx context.Context, s *session, topic string, payload []byte) {
	start := time.Now()
	req, _ := parseDPSRequest(topic)
	trackingID := newTrackingID()
	ctx = dps.WithOrigin(ctx, dps.Origin{Transport: "mqtt", Address: hostOf(s.cl.Net.Remote), TrackingID: trackingID})
	class := throttle.Poll
	if req.register {
		class = throttle.Registration
	}
	retryAfter := h.retryAfter
	var status int
	var body any
	var outcome string // set by register when the registrar answered
	limit := h.limits.Admit(throttle.Request{Transport: "mqtt", Class: class, DeviceID: s.id.id, Source: s.cl.Net.Remote})
	err := limit.Err()
	if err != nil {
		retryAfter = limit.RetryAfterSeconds()
	} else if status, body, err = h.answer(ctx, s, req, payload, &outcome); err == nil {
		limit.Charge()
	}
	if err != nil {
		var details wire.ErrorDetails
		status, details = wire.DPSError(err, trackingID, h.now())
		body = details
	}
	d := time.Since(start)
	if req.register {
		if outcome == "" {
			outcome = dps.RegistrationOutcome(dps.Operation{}, err)
		}
		h.obs.Registration("mqtt", outcome, d)
	}
	h.logRequest(ctx, s, req, trackingID, status, d, err)
	s.send(responseTopicAfter(status, req.rid, retryAfter), encodeJSON(body))
}

// logRequest writes the request's one log line: debug, warn for 5xx
// answers, error when the cause is a bug. The token is never logged.
func (h *dpsHandler) logRequest(ctx context.Context, s *session, req dpsRequest, trackingID string, status int, d time.Duration, err error) {
	level := slog.LevelDebug
	switch {
	case status >= 500 && fault.KindOf(err) == fault.Internal:
		level = slog.LevelError
	case status >= 500:
		level = slog.LevelWarn
	}
	if !h.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("trackingId", trackingID), slog.Any("session", s), slog.Bool("register", req.register),
		slog.Int("status", status), slog.Duration("duration", d)}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	h.log.LogAttrs(ctx, level, "MQTT DPS request", attrs...)
}

// hostOf returns the host part of a host:port address.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func (h *dpsHandler) answer(ctx context.Context, s *session, req dpsRequest, payload []byte, outcome *string) (int, any, error) {
	switch {
	case req.rid == "":
		return 0, nil, fault.New(fault.Invalid, "the request topic has no $rid")
	case len(payload) > MaxPayloadBytes:
		return 0, nil, fault.New(fault.TooLarge, "the request payload is larger than %d bytes", MaxPayloadBytes)
	case req.register:
		return h.register(ctx, s, payload, outcome)
	}
	return h.poll(ctx, s, req)
}

// register decodes the optional DeviceRegistration payload: JSON with or
// without registrationId, or nothing at all (C# without a payload, the
// embedded SDK); the registration ID is the connection's.
func (h *dpsHandler) register(ctx context.Context, s *session, payload []byte, outcome *string) (int, any, error) {
	body, err := wire.DecodeDeviceRegistration(payload)
	if err != nil {
		return 0, nil, err
	}
	op, err := h.reg.Register(ctx, dps.RegisterRequest{
		IDScope: s.id.scope, RegistrationID: s.id.id, Proof: dps.Proof{SASToken: s.password},
		BodyRegistrationID: body.RegistrationID, Payload: body.Payload,
	})
	*outcome = dps.RegistrationOutcome(op, err)
	if err != nil {
		return 0, nil, err
	}
	return 202, wire.Assigning(op), nil
}

// poll answers an operation status request; its payload (" " from Node,
// the registration JSON from the C SDK, nothing from C#) is ignored.
func (h *dpsHandler) poll(ctx context.Context, s *session, req dpsRequest) (int, any, error) {
	if req.operationID == "" {
		return 0, nil, fault.New(fault.Invalid, "the request topic has no operationId")
	}
	op, err := h.reg.OperationStatus(ctx, s.id.scope, s.id.id, req.operationID, dps.Proof{SASToken: s.password})
	if err != nil {
		return 0, nil, err
	}
	if op.Status == dps.Assigning {
		return 202, wire.FromOperation(op), nil
	}
	return 200, wire.FromOperation(op), nil
}

// responseTopic is $dps/registrations/res/{status}/?$rid={rid}, $rid first
// (C# matches the topic with a regular expression that requires it, Python
// splits on '$'), then retry-after in seconds when the device should come
// back: on 202, 429 and 5xx (the C SDK repeats requests answered ≥ 429).
func (h *dpsHandler) responseTopic(status int, rid string) string {
	return responseTopicAfter(status, rid, h.retryAfter)
}

// responseTopicAfter is responseTopic with retryAfter seconds where it
// names a delay (a throttled request's own).
func responseTopicAfter(status int, rid string, retryAfter int) string {
	t := dpsResponseTopic + strconv.Itoa(status) + "/?$rid=" + rid
	if status == 202 || status == 429 || status >= 500 {
		t += "&retry-after=" + strconv.Itoa(retryAfter)
	}
	return t
}

// encodeJSON renders an answer as the HTTPS API does, without the trailing
// newline.
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // the wire types always encode
		return []byte(`{}`)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// newTrackingID returns a random UUID-shaped ID for an error answer.
func newTrackingID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
