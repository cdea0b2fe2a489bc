package mqttapi

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/wire"
)

// hubHandler serves devices and modules talking to the built-in hub
// (hub-protocol.md §6): twin reads and reported patches answered on the
// connection that asked, desired pushes and direct methods from the bus,
// telemetry into the hub's message log. Each connection is a hubConn on
// the bus.
type hubHandler struct {
	hub     *hub.Service
	bus     *hub.Bus
	keep    int           // messages the log keeps
	skew    time.Duration // allowed clock skew on device tokens
	webhook *webhook      // nil when messages are not forwarded
	now     func() time.Time
	log     *slog.Logger
}

var _ handler = (*hubHandler)(nil)

// authenticate checks the CONNECT as IoT Hub does, before answering it
// (wire/hub-device-mqtt.md §8, wire/c-sdk-hub-device-mqtt.md §3): the
// username names this hub (host names compare case-insensitively), and the
// password is a token for exactly the identity the client ID names, signed
// with its key, unexpired, of an enabled device. Failures are
// fault.Unauthenticated (CONNACK 5).
func (h *hubHandler) authenticate(ctx context.Context, id identity, password string) error {
	if !strings.EqualFold(id.scope, h.hub.HostName()) {
		return fault.New(fault.Unauthenticated, "the username names hub %q, not this hub", id.scope)
	}
	_, err := h.hub.AuthenticateDevice(ctx, password, hub.DeviceIdentity{DeviceID: id.id, ModuleID: id.module}, h.skew)
	return err
}

// configure keeps the client's clean-session choice (the SDKs connect with
// clean session false and a reconnect may resume its subscriptions) and
// drops any will: IoT Hub would send it as telemetry, which Usher does not
// yet, and no Azure SDK sets one.
func (h *hubHandler) configure(cl *mqtt.Client) { cl.Properties.Will = mqtt.Will{} }

// maySubscribe allows the filters of the identity's own topics: twin
// answers, desired pushes, method requests and, for devices, its
// cloud-to-device messages (accepted; nothing is delivered until C2D
// arrives with AMQP).
func (h *hubHandler) maySubscribe(s *session, filter string) bool {
	switch filter {
	case twinResponseFilter, desiredFilter, methodsFilter:
		return true
	}
	return s.id.module == "" && filter == "devices/"+s.id.id+deviceboundSuffix
}

// mayPublish allows twin requests, method answers and telemetry on the
// identity's own events topic.
func (h *hubHandler) mayPublish(s *session, topic string) bool {
	t, ok := parseHubTopic(topic)
	if !ok {
		return false
	}
	if t.op == opTelemetry {
		return t.deviceID == s.id.id && t.moduleID == s.id.module
	}
	return true
}

// started puts the connection on the bus and ends it when its token
// expires (hub-protocol.md §6.2: MQTT has no in-band token refresh; the
// SDKs reconnect with a fresh token).
func (h *hubHandler) started(s *session) {
	c := newHubConn(s, h)
	s.hub = c
	go c.drain()
	c.detach = h.bus.Attach(s.id.id, s.id.module, c)
	if exp, ok := tokenExpiry(s.password); ok {
		c.expiry = time.AfterFunc(max(exp.Add(h.skew).Sub(h.now()), 0), func() { c.Close("the SAS token expired") })
	}
}

func (h *hubHandler) ended(s *session) {
	if s.hub != nil {
		s.hub.end()
	}
}

// admit stores telemetry before the broker acknowledges it, so a PUBACK
// means the message is in the log. A body over hub.MaxMessageBytes or a
// store failure ends the connection unacknowledged (MQTT 3.1.1 has no
// negative PUBACK; IoT Hub closes the connection too).
func (h *hubHandler) admit(ctx context.Context, s *session, pk packets.Packet) error {
	t, ok := parseHubTopic(pk.TopicName)
	if !ok || t.op != opTelemetry {
		return nil
	}
	h.bus.Touch(s.id.id, s.id.module)
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	m := hub.Message{DeviceID: s.id.id, ModuleID: s.id.module, System: t.bag.system, Properties: t.bag.app, Body: bytes.Clone(pk.Payload)}
	if pk.FixedHeader.Retain { // hub-protocol.md §6.4: not retained, flagged
		if m.Properties == nil {
			m.Properties = map[string]string{}
		}
		m.Properties["mqtt-retain"] = "true"
	}
	m, err := h.hub.ReceiveMessage(ctx, m, h.keep)
	if err != nil {
		return err
	}
	if h.webhook != nil {
		h.webhook.enqueue(m)
	}
	return nil
}

// serve answers twin requests and routes method answers; telemetry was
// handled by admit.
func (h *hubHandler) serve(ctx context.Context, s *session, topic string, payload []byte) {
	t, _ := parseHubTopic(topic)
	h.bus.Touch(s.id.id, s.id.module)
	switch t.op {
	case opTwinGet:
		h.twinGet(ctx, s, t.rid)
	case opReported:
		h.reported(ctx, s, t.rid, payload)
	case opMethodResponse:
		s.hub.answered(t.rid, t.status, payload)
	}
}

// twinGet answers $iothub/twin/GET with the desired and reported
// properties, each with its $version. The payload (" " from Node, nothing
// from the C SDK) is ignored.
func (h *hubHandler) twinGet(ctx context.Context, s *session, rid string) {
	if rid == "" {
		h.twinFailed(s, rid, fault.New(fault.Invalid, "the twin request has no $rid"))
		return
	}
	t, err := h.hub.DeviceTwin(ctx, s.id.id, s.id.module)
	if err != nil {
		h.twinFailed(s, rid, err)
		return
	}
	body := wire.TwinProperties{Desired: withVersion(t.Desired, t.DesiredVersion), Reported: withVersion(t.Reported, t.ReportedVersion)}
	s.send(twinAnswerTopic(200, rid), encodeJSON(body))
}

// reported merges a reported-properties patch and answers 204 with the new
// reported version, without a body.
func (h *hubHandler) reported(ctx context.Context, s *session, rid string, payload []byte) {
	var patch map[string]any
	err := wire.Decode(payload, &patch)
	switch {
	case rid == "":
		err = fault.New(fault.Invalid, "the twin request has no $rid")
	case err == nil && patch == nil:
		err = fault.New(fault.Malformed, "the reported properties patch must be a JSON object")
	}
	if err != nil {
		h.twinFailed(s, rid, err)
		return
	}
	v, err := h.hub.PatchReported(ctx, s.id.id, s.id.module, patch)
	if err != nil {
		h.twinFailed(s, rid, err)
		return
	}
	s.send(twinAnswerTopic(204, rid)+"&$version="+strconv.FormatInt(v, 10), nil)
}

// twinFailed answers a twin request with the hub's status for err and a
// body carrying errorCode: Node ignores the status and turns a body with
// errorCode into an error (wire/hub-device-mqtt.md, "What the SDK reads").
func (h *hubHandler) twinFailed(s *session, rid string, err error) {
	trackingID := newTrackingID()
	now := h.now()
	status, name, _ := wire.HubError(err, trackingID, now)
	if status >= 500 {
		h.log.Error("hub twin request failed", "trackingId", trackingID, "session", s, "err", err)
	} else {
		h.log.Debug("hub twin request refused", "trackingId", trackingID, "session", s, "status", status, "err", err)
	}
	body := wire.ErrorDetails{ErrorCode: hubErrorCode(status, name), TrackingID: trackingID, Message: fault.MessageOf(err), TimestampUTC: wire.FormatTime(now)}
	s.send(twinAnswerTopic(status, rid), encodeJSON(body))
}

// twinAnswerTopic is $iothub/twin/res/{status}/?$rid={rid}: $rid first,
// as the C SDK requires (wire/c-sdk-hub-device-mqtt.md, "What the SDK
// reads"), and the .NET regex wants at least one character after "/?".
func twinAnswerTopic(status int, rid string) string {
	return twinResponseTopic + strconv.Itoa(status) + "/?$rid=" + rid
}

// hubErrorCodes are IoT Hub's six-digit error codes for the error names
// of wire.HubError (Azure/azure-iot-sdk-csharp
// iothub/service/src/Common/Exceptions/ErrorCode.cs).
var hubErrorCodes = map[string]int{
	"ArgumentInvalid":          400004,
	"IotHubFormatError":        400006,
	"IotHubUnauthorizedAccess": 401002,
	"DeviceNotFound":           404001,
	"ModuleNotFound":           404010,
	"DeviceNotOnline":          404103,
	"DeviceAlreadyExists":      409001,
	"PreconditionFailed":       412001,
	"MessageTooLarge":          413001,
	"ThrottlingException":      429001,
	"ServerError":              500001,
	"ServiceUnavailable":       503001,
	"GatewayTimeout":           504101,
}

// hubErrorCode is the errorCode of an MQTT twin error: IoT Hub's code for
// the error name, else the status followed by 001.
func hubErrorCode(status int, name string) int {
	if c, ok := hubErrorCodes[name]; ok {
		return c
	}
	return status*1000 + 1
}

// withVersion copies a property collection and adds its "$version".
func withVersion(m map[string]any, version int64) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out["$version"] = version
	return out
}
