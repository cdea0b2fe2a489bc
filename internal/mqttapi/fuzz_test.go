package mqttapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"

	"github.com/usher-iot/usher/internal/fault"
)

// FuzzHubRequestTopic checks that a twin GET, reported PATCH or method
// answer topic, once parsed, is written back as a topic that parses to the
// same request: the $rid survives byte for byte, and the status of a
// method answer by value.
func FuzzHubRequestTopic(f *testing.F) {
	for _, s := range hubTopicSeeds {
		f.Add(s)
	}
	// c-sdk-hub-device-mqtt.md and hub-device-mqtt.md
	for _, s := range []string{
		"$iothub/twin/GET/?$rid=4",
		"$iothub/twin/PATCH/properties/reported/?$rid=5",
		"$iothub/twin/PATCH/properties/reported/?$rid=",
		"$iothub/methods/res/200/?$rid=5a82eb74-9f35-4b11-86f5-58b96e9196c8",
		"$iothub/methods/res/007/?$version=1&$rid=a/b?c",
		"$iothub/twin/GET/?$version=1&$rid=3",
	} {
		f.Add(s)
	}
	prefix := map[hubOp]string{opTwinGet: twinGetTopic, opReported: reportedTopic}
	f.Fuzz(func(t *testing.T, topic string) {
		got, ok := parseHubTopic(topic)
		if !ok || got.op == opTelemetry {
			return
		}
		p := prefix[got.op]
		if got.op == opMethodResponse {
			p = methodResponseTopic + strconv.Itoa(got.status) + "/"
		}
		again, ok := parseHubTopic(p + "?$rid=" + got.rid)
		if !ok || again.op != got.op || again.rid != got.rid || again.status != got.status {
			t.Fatalf("%q parsed as %+v; written back as %q it parses as %+v (ok %v)", topic, got, p+"?$rid="+got.rid, again, ok)
		}
	})
}

// FuzzMethodAnswer feeds arbitrary method answers from a device to a
// waiting invocation: the waiter gets the status as sent and either a body
// that is valid JSON (nothing for an empty payload) or an Invalid error,
// never both; the body embeds in the service's JSON answer.
func FuzzMethodAnswer(f *testing.F) {
	for _, s := range []string{`{"result":"rebooting"}`, ``, ` `, `null`, `"x"`, `12`, `{"a":`, "\xff", `{"a":1} {"b":2}`} {
		f.Add(200, []byte(s))
	}
	f.Add(504, []byte(`{}`))
	f.Add(-1, []byte(`[]`))
	h := &hubHandler{log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, status int, payload []byte) {
		ch := make(chan methodAnswer, 1)
		c := &hubConn{h: h, pending: map[string]chan methodAnswer{"1": ch}}
		c.answered("1", status, payload)
		a := <-ch
		if a.status != status {
			t.Fatalf("status %d arrived as %d", status, a.status)
		}
		switch {
		case a.err != nil:
			if !fault.Is(a.err, fault.Invalid) || a.body != nil {
				t.Fatalf("answer %q: error %v with body %q", payload, a.err, a.body)
			}
			if json.Valid(payload) {
				t.Fatalf("valid JSON %q refused: %v", payload, a.err)
			}
		case a.body == nil:
			if len(bytes.TrimSpace(payload)) != 0 {
				t.Fatalf("answer %q arrived without a body", payload)
			}
		default:
			if !json.Valid(a.body) {
				t.Fatalf("answer %q passed on as invalid JSON %q", payload, a.body)
			}
			if _, err := json.Marshal(map[string]any{"status": a.status, "payload": a.body}); err != nil {
				t.Fatalf("answer %q does not embed: %v", payload, err)
			}
		}
		c.answered("1", status, payload) // nobody waits any more: dropped
	})
}
