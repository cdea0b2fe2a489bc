package mqttapi

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/hub"
)

// Captured topics (wire/hub-device-mqtt.md, wire/c-sdk-hub-device-mqtt.md).
var hubTopicSeeds = []string{
	"$iothub/twin/GET/?$rid=fd045e44-b5e9-49d4-b1f4-c67d76468561",
	"$iothub/twin/GET/?$rid=3",
	"$iothub/twin/PATCH/properties/reported/?$rid=20d62d7a-bdbc-4efd-b0d4-cd9062d23373",
	"$iothub/twin/PATCH/properties/reported/?$rid=6&$version=2",
	"$iothub/methods/res/200/?$rid=1",
	"devices/cap-mqtt-hub-dev/messages/events/%24.mid=msg-0001&%24.cid=corr-0001&%24.ct=application%2Fjson&%24.ce=utf-8&alert=false",
	"devices/cap-c-hub-dev-01/messages/events/alert=no&%24.mid=msg-1&%24.ct=application%2Fjson&%24.ce=utf-8",
	"devices/edge-1/modules/$edgeAgent/messages/events/%24.on=output1",
	"devices/d/messages/events/",
}

func TestParseHubTopic(t *testing.T) {
	tests := []struct {
		name  string
		topic string
		want  hubTopic
		ok    bool
	}{
		{"ok/twin GET, Node uuid", hubTopicSeeds[0], hubTopic{op: opTwinGet, rid: "fd045e44-b5e9-49d4-b1f4-c67d76468561"}, true},
		{"ok/twin GET, C integer", hubTopicSeeds[1], hubTopic{op: opTwinGet, rid: "3"}, true},
		{"ok/reported with $version", hubTopicSeeds[3], hubTopic{op: opReported, rid: "6"}, true},
		{"ok/$rid not first", "$iothub/twin/GET/?x=1&$rid=9", hubTopic{op: opTwinGet, rid: "9"}, true},
		{"ok/twin GET without $rid", "$iothub/twin/GET/", hubTopic{op: opTwinGet}, true},
		{"ok/method answer", "$iothub/methods/res/504/?$rid=17", hubTopic{op: opMethodResponse, status: 504, rid: "17"}, true},
		{"ok/Node telemetry", hubTopicSeeds[5], hubTopic{op: opTelemetry, deviceID: "cap-mqtt-hub-dev", bag: propertyBag{
			system: hub.SystemProperties{MessageID: "msg-0001", CorrelationID: "corr-0001", ContentType: "application/json", ContentEncoding: "utf-8"},
			app:    map[string]string{"alert": "false"}}}, true},
		{"ok/C SDK telemetry, application properties first", hubTopicSeeds[6], hubTopic{op: opTelemetry, deviceID: "cap-c-hub-dev-01", bag: propertyBag{
			system: hub.SystemProperties{MessageID: "msg-1", ContentType: "application/json", ContentEncoding: "utf-8"},
			app:    map[string]string{"alert": "no"}}}, true},
		{"ok/every system property, '$' not encoded", "devices/d/messages/events/$.mid=1&$.cid=2&$.uid=3&$.to=4&$.exp=2026-01-01T00%3A00%3A00Z&$.ct=5&$.ce=6&$.ifid=7&$.sub=8&$.on=9",
			hubTopic{op: opTelemetry, deviceID: "d", bag: propertyBag{system: hub.SystemProperties{MessageID: "1", CorrelationID: "2", UserID: "3", To: "4",
				Expiry: "2026-01-01T00:00:00Z", ContentType: "5", ContentEncoding: "6", InterfaceID: "7", Subject: "8", OutputName: "9"}}}, true},
		{"ok/valueless, empty, encoded and repeated names", "devices/d/messages/events/flag&empty=&sp%20ace=a%20b%26c&flag=2&bad=%zz",
			hubTopic{op: opTelemetry, deviceID: "d", bag: propertyBag{app: map[string]string{"flag": "", "empty": "", "sp ace": "a b&c", "bad": "%zz"}}}, true},
		{"ok/module telemetry", hubTopicSeeds[7], hubTopic{op: opTelemetry, deviceID: "edge-1", moduleID: "$edgeAgent", bag: propertyBag{system: hub.SystemProperties{OutputName: "output1"}}}, true},
		{"ok/events without a trailing slash", "devices/d/messages/events", hubTopic{op: opTelemetry, deviceID: "d"}, true},
		{"refused/method answer without a status", "$iothub/methods/res/ok/?$rid=1", hubTopic{}, false},
		{"refused/method answer without /?", "$iothub/methods/res/200", hubTopic{}, false},
		{"refused/twin GET with a path", "$iothub/twin/GET/extra", hubTopic{}, false},
		{"refused/desired push topic", "$iothub/twin/PATCH/properties/desired/?$version=2", hubTopic{}, false},
		{"refused/devicebound", "devices/d/messages/devicebound/x=1", hubTopic{}, false},
		{"refused/events suffix", "devices/d/messages/eventsX", hubTopic{}, false},
		{"refused/no device", "devices//messages/events/", hubTopic{}, false},
		{"refused/empty module", "devices/d/modules//messages/events/", hubTopic{}, false},
		{"refused/DPS", "$dps/registrations/PUT/iotdps-register/?$rid=1", hubTopic{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseHubTopic(tt.topic)
			if ok != tt.ok {
				t.Fatalf("parseHubTopic(%q) ok = %v, want %v", tt.topic, ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(hubTopic{}, propertyBag{})); diff != "" {
				t.Errorf("parseHubTopic(%q) (-want +got):\n%s", tt.topic, diff)
			}
		})
	}
}

// encodeBag writes a property bag back as a topic suffix, percent-encoding
// everything but unreserved characters.
func encodeBag(b propertyBag) string {
	var pairs []string
	add := func(k, v string) { pairs = append(pairs, escapeAll(k)+"="+escapeAll(v)) }
	s := b.system
	for k, v := range map[string]string{"$.mid": s.MessageID, "$.cid": s.CorrelationID, "$.uid": s.UserID, "$.to": s.To, "$.exp": s.Expiry,
		"$.ct": s.ContentType, "$.ce": s.ContentEncoding, "$.ifid": s.InterfaceID, "$.sub": s.Subject, "$.on": s.OutputName} {
		if v != "" {
			add(k, v)
		}
	}
	for k, v := range b.app {
		add(k, v)
	}
	return strings.Join(pairs, "&")
}

func escapeAll(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func FuzzParseHubTopic(f *testing.F) {
	for _, s := range hubTopicSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		got, ok := parseHubTopic(topic)
		if !ok {
			return
		}
		switch got.op {
		case opTwinGet, opReported, opMethodResponse:
			if strings.Contains(got.rid, "&") {
				t.Errorf("rid %q contains '&'", got.rid)
			}
			if rt := twinAnswerTopic(200, got.rid); !strings.HasPrefix(rt, twinResponseTopic+"200/?$rid="+got.rid) {
				t.Errorf("answer topic %q does not start with the rid", rt)
			}
		case opTelemetry:
			if got.deviceID == "" {
				t.Fatalf("telemetry topic %q parsed without a device", topic)
			}
			for k := range got.bag.app {
				if k == "" {
					t.Errorf("telemetry topic %q gave an empty property name", topic)
				}
			}
			// What was parsed survives being written back and parsed again.
			again, ok := parseHubTopic("devices/d/messages/events/" + encodeBag(got.bag))
			if !ok {
				t.Fatalf("re-encoded bag of %q does not parse", topic)
			}
			if diff := cmp.Diff(got.bag, again.bag, cmp.AllowUnexported(propertyBag{})); diff != "" {
				t.Errorf("bag of %q changed on a round trip (-first +second):\n%s", topic, diff)
			}
		default:
			t.Errorf("parseHubTopic(%q) ok without an operation", topic)
		}
	})
}
