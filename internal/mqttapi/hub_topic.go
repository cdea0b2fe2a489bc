package mqttapi

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/usher-iot/usher/internal/hub"
)

// Hub device topics (hub-protocol.md §6.3; wire/hub-device-mqtt.md,
// wire/c-sdk-hub-device-mqtt.md).
const (
	// Filters a hub device may subscribe to.
	twinResponseFilter = "$iothub/twin/res/#"
	desiredFilter      = "$iothub/twin/PATCH/properties/desired/#"
	methodsFilter      = "$iothub/methods/POST/#"
	deviceboundSuffix  = "/messages/devicebound/#" // after devices/{deviceId}

	// Topics the hub publishes.
	twinResponseTopic  = "$iothub/twin/res/"                                // {status}/?$rid={rid}[&$version={v}]
	desiredPushTopic   = "$iothub/twin/PATCH/properties/desired/?$version=" // {v}
	methodRequestTopic = "$iothub/methods/POST/"                            // {name}/?$rid={rid}

	// Request topics a device publishes.
	twinGetTopic        = "$iothub/twin/GET/"                       // ?$rid={rid}
	reportedTopic       = "$iothub/twin/PATCH/properties/reported/" // ?$rid={rid}[&$version={v}]
	methodResponseTopic = "$iothub/methods/res/"                    // {status}/?$rid={rid}
	eventsSegment       = "/messages/events"                        // devices/{d}[/modules/{m}]/messages/events/{bag}
)

// hubOp is what a device's publish asks for.
type hubOp int

const (
	opTwinGet hubOp = iota + 1
	opReported
	opMethodResponse
	opTelemetry
)

// hubTopic is a parsed hub request topic.
type hubTopic struct {
	op hubOp
	// rid is the request ID of twin requests and method responses, exactly
	// as sent (echoed byte for byte); "" when absent.
	rid string
	// status is a method response's status.
	status int
	// deviceID and moduleID name the identity whose events topic a
	// telemetry publish used, percent-decoded.
	deviceID, moduleID string
	// bag is a telemetry publish's property bag.
	bag propertyBag
}

// propertyBag is a message's properties from its topic.
type propertyBag struct {
	system hub.SystemProperties
	app    map[string]string // nil when there are none
}

// parseHubTopic reads a topic a hub device publishes to. It knows the
// topic's shape only; whether the identity may use it is the ACL's call.
func parseHubTopic(topic string) (hubTopic, bool) {
	switch {
	case strings.HasPrefix(topic, twinGetTopic):
		return requestTopic(opTwinGet, topic[len(twinGetTopic):])
	case strings.HasPrefix(topic, reportedTopic):
		return requestTopic(opReported, topic[len(reportedTopic):])
	case strings.HasPrefix(topic, methodResponseTopic):
		status, query, ok := strings.Cut(topic[len(methodResponseTopic):], "/")
		n, err := strconv.Atoi(status)
		if !ok || err != nil || n < 0 || n > 999_999 {
			return hubTopic{}, false
		}
		t, ok := requestTopic(opMethodResponse, query)
		t.status = n
		return t, ok
	case strings.HasPrefix(topic, "devices/"):
		return telemetryTopic(topic[len("devices/"):])
	}
	return hubTopic{}, false
}

// requestTopic reads the "?$rid=…" part of a twin request or method
// response. The query is split by hand: the C SDK's integer $rid and
// Node's UUID must come back byte for byte.
func requestTopic(op hubOp, query string) (hubTopic, bool) {
	t := hubTopic{op: op}
	if query == "" {
		return t, true
	}
	query, ok := strings.CutPrefix(query, "?")
	if !ok {
		return hubTopic{}, false
	}
	for pair := range strings.SplitSeq(query, "&") {
		if v, ok := strings.CutPrefix(pair, "$rid="); ok {
			t.rid = v
			break
		}
	}
	return t, true
}

// telemetryTopic reads {deviceId}/messages/events[/{bag}] or
// {deviceId}/modules/{moduleId}/messages/events[/{bag}].
func telemetryTopic(rest string) (hubTopic, bool) {
	i := strings.Index(rest, eventsSegment)
	if i < 0 {
		return hubTopic{}, false
	}
	who, after := rest[:i], rest[i+len(eventsSegment):]
	if after != "" && after[0] != '/' {
		return hubTopic{}, false
	}
	after = strings.TrimPrefix(after, "/")
	t := hubTopic{op: opTelemetry}
	segs := strings.Split(who, "/")
	switch {
	case len(segs) == 1:
		t.deviceID = unescape(segs[0])
	case len(segs) == 3 && segs[1] == "modules":
		t.deviceID, t.moduleID = unescape(segs[0]), unescape(segs[2])
		if t.moduleID == "" {
			return hubTopic{}, false
		}
	default:
		return hubTopic{}, false
	}
	if t.deviceID == "" {
		return hubTopic{}, false
	}
	t.bag = parsePropertyBag(after)
	return t, true
}

// parsePropertyBag reads a URL-encoded k=v&k2=v2 list (hub-protocol.md §6.3).
// System properties ($.mid, $.cid, …, with '$' encoded or not) may come in
// any order, before or after the application properties (the C SDK puts
// application properties first, Node last). A name without '=' has the
// value "". Names and values are percent-decoded once; an invalid escape is
// kept as sent. The first occurrence of a name wins.
func parsePropertyBag(s string) propertyBag {
	var b propertyBag
	seen := map[string]bool{}
	for pair := range strings.SplitSeq(s, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, v = unescape(k), unescape(v)
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		if f := b.systemField(k); f != nil {
			*f = v
			continue
		}
		if b.app == nil {
			b.app = map[string]string{}
		}
		b.app[k] = v
	}
	return b
}

// systemField returns where a system property's value goes, nil for
// application properties.
func (b *propertyBag) systemField(name string) *string {
	p := &b.system
	switch name {
	case "$.mid":
		return &p.MessageID
	case "$.cid":
		return &p.CorrelationID
	case "$.uid":
		return &p.UserID
	case "$.to":
		return &p.To
	case "$.exp":
		return &p.Expiry
	case "$.ct":
		return &p.ContentType
	case "$.ce":
		return &p.ContentEncoding
	case "$.ifid":
		return &p.InterfaceID
	case "$.sub":
		return &p.Subject
	case "$.on":
		return &p.OutputName
	}
	return nil
}

// unescape percent-decodes s once, leaving '+' alone; s is kept as sent
// when it is not validly encoded.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}
