package mqttapi

import (
	"errors"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

var (
	errNotSubscribed = errors.New("the client has not subscribed to the answer's topic")
	errInflightFull  = errors.New("the client has too many unacknowledged answers")
)

// deliver writes a PUBLISH to one client, bypassing the broker's topic
// fan-out: every DPS client subscribes to the same filter, and an answer
// belongs to the connection that asked. The QoS is the one the client's
// matching subscription was granted (at most 1). A QoS 1 answer takes a
// packet ID and an inflight slot the way the broker's own deliveries do, so
// the client's PUBACK releases it; clean sessions drop what is left when
// the connection ends.
func (b *broker) deliver(cl *mqtt.Client, topic string, payload []byte) error {
	qos, ok := grantedQoS(cl, topic)
	if !ok {
		return errNotSubscribed
	}
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: min(qos, 1)},
		TopicName:   topic,
		Payload:     payload,
		Created:     time.Now().Unix(),
	}
	if out.FixedHeader.Qos > 0 {
		if cl.State.Inflight.Len() >= maxInflight {
			return errInflightFull
		}
		id, err := cl.NextPacketID()
		if err != nil {
			return err
		}
		out.PacketID = uint16(id)
		if cl.State.Inflight.Set(out) {
			atomic.AddInt64(&b.mqtt.Info.Inflight, 1)
		}
		cl.State.Inflight.DecreaseSendQuota()
	}
	if err := cl.WritePacket(out); err != nil {
		if out.FixedHeader.Qos > 0 && cl.State.Inflight.Delete(out.PacketID) {
			atomic.AddInt64(&b.mqtt.Info.Inflight, -1)
			cl.State.Inflight.IncreaseSendQuota()
		}
		return err
	}
	return nil
}

// grantedQoS returns the highest QoS among the client's subscriptions that
// match topic.
func grantedQoS(cl *mqtt.Client, topic string) (byte, bool) {
	var qos byte
	found := false
	for filter, sub := range cl.State.Subscriptions.GetAll() {
		if matchFilter(filter, topic) {
			qos, found = max(qos, sub.Qos), true
		}
	}
	return qos, found
}

// matchFilter reports whether an MQTT topic filter matches a topic name
// (MQTT 3.1.1 §4.7): '+' is one level, a final '#' the rest, and a filter
// starting with a wildcard does not match topics starting with '$'.
func matchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		switch {
		case f == "#":
			return true
		case i >= len(ts):
			return false
		case f != "+" && f != ts[i]:
			return false
		}
	}
	return len(fs) == len(ts)
}
