package main

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawMQTT is a minimal MQTT 3.1.1 client over TLS that writes exactly the
// packets a case asks for (QoS 2, retain, bad UTF-8, oversized, nothing at
// all) and reports what the server answers, including a closed connection.
type rawMQTT struct {
	t *testing.T
	c *tls.Conn
	r *bufio.Reader
}

// mqttPacket is one packet read from the server.
type mqttPacket struct {
	typ   byte // the high nibble of the first byte
	flags byte // the low nibble
	body  []byte
}

// MQTT control packet types (MQTT 3.1.1 §2.2.1).
const (
	mqttConnect   = 1
	mqttConnack   = 2
	mqttPublish   = 3
	mqttPuback    = 4
	mqttPubrec    = 5
	mqttSubscribe = 8
	mqttSuback    = 9
)

func (f *badFixture) dialMQTT(t *testing.T) *rawMQTT {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", f.s.Info.MQTTAddr, f.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawMQTT{t: t, c: c, r: bufio.NewReader(c)}
}

// mqttString is a length-prefixed MQTT string, written as given (valid
// UTF-8 or not).
func mqttString(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// mqttFrame prefixes a packet body with its fixed header.
func mqttFrame(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func (m *rawMQTT) write(p []byte) {
	m.t.Helper()
	_ = m.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	if _, err := m.c.Write(p); err != nil {
		m.t.Logf("write: %v", err) // the server may already have closed
	}
}

// connectPacket is a CONNECT with protocol level level, clean session,
// keepalive 60 s, and the username and password given.
func connectPacket(level byte, clientID, username, password string) []byte {
	name := "MQTT"
	if level == 3 {
		name = "MQIsdp"
	}
	body := mqttString(name)
	body = append(body, level, 0x02|0x80|0x40, 0, 60)
	body = append(body, mqttString(clientID)...)
	body = append(body, mqttString(username)...)
	body = append(body, mqttString(password)...)
	return mqttFrame(mqttConnect<<4, body)
}

// connect sends an MQTT 3.1.1 CONNECT and returns "connack N" or "closed".
func (m *rawMQTT) connect(clientID, username, password string) string {
	return m.connectLevel(4, clientID, username, password)
}

func (m *rawMQTT) connectLevel(level byte, clientID, username, password string) string {
	m.t.Helper()
	m.write(connectPacket(level, clientID, username, password))
	p, err := m.read(20 * time.Second)
	if err != nil {
		return "closed"
	}
	if p.typ != mqttConnack || len(p.body) != 2 {
		m.t.Fatalf("answer to CONNECT: type %d body %x", p.typ, p.body)
	}
	return fmt.Sprintf("connack %d", p.body[1])
}

// mustConnect connects and fails the test unless it was accepted.
func (m *rawMQTT) mustConnect(clientID, username, password string) {
	m.t.Helper()
	if got := m.connect(clientID, username, password); got != "connack 0" {
		m.t.Fatalf("CONNECT as %s: %s", username, got)
	}
}

// subscribe subscribes to filter at QoS 1 and returns "suback 0xNN", or
// "closed".
func (m *rawMQTT) subscribe(filter string) string {
	m.t.Helper()
	body := binary.BigEndian.AppendUint16(nil, 7)
	body = append(body, mqttString(filter)...)
	body = append(body, 1)
	m.write(mqttFrame(mqttSubscribe<<4|0x02, body))
	p, err := m.await(mqttSuback)
	if err != nil {
		return "closed"
	}
	return fmt.Sprintf("suback %#02x", p.body[len(p.body)-1])
}

// publish sends a PUBLISH (packet ID 9 when qos > 0).
func (m *rawMQTT) publish(topic string, payload []byte, qos byte, retain bool) {
	m.t.Helper()
	first := byte(mqttPublish<<4) | qos<<1
	if retain {
		first |= 1
	}
	body := mqttString(topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, 9)
	}
	m.write(mqttFrame(first, append(body, payload...)))
}

// read reads one packet within limit.
func (m *rawMQTT) read(limit time.Duration) (mqttPacket, error) {
	_ = m.c.SetReadDeadline(time.Now().Add(limit))
	first, err := m.r.ReadByte()
	if err != nil {
		return mqttPacket{}, err
	}
	n, shift := 0, 0
	for {
		b, err := m.r.ReadByte()
		if err != nil {
			return mqttPacket{}, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(m.r, body); err != nil {
		return mqttPacket{}, err
	}
	return mqttPacket{typ: first >> 4, flags: first & 0x0f, body: body}, nil
}

// await reads packets until one of type typ arrives.
func (m *rawMQTT) await(typ byte) (mqttPacket, error) {
	for {
		p, err := m.read(20 * time.Second)
		if err != nil || p.typ == typ {
			return p, err
		}
	}
}

// answer waits for a PUBLISH whose topic starts with prefix and returns its
// topic's status part and the errorCode of its body when it has one:
// "res/401 401002", "twin/res/200"; or "closed" when the server closes the
// connection first.
func (m *rawMQTT) answer(prefix string) string {
	m.t.Helper()
	for {
		p, err := m.await(mqttPublish)
		if err != nil {
			return "closed"
		}
		topic, payload := splitPublish(p)
		if p.flags&1 != 0 {
			m.t.Errorf("the server published %s with the retain flag", topic)
		}
		if p.flags>>1&3 > 0 {
			m.write(mqttFrame(mqttPuback<<4, p.body[2+len(topic):4+len(topic)]))
		}
		rest, ok := strings.CutPrefix(topic, prefix)
		if !ok {
			continue
		}
		status, _, _ := strings.Cut(rest, "/")
		kind := "res/"
		if strings.HasPrefix(prefix, "$iothub/twin") {
			kind = "twin/res/"
		}
		out := kind + status
		var e struct{ ErrorCode int }
		if json.Unmarshal(payload, &e) == nil && e.ErrorCode != 0 {
			out += fmt.Sprintf(" %d", e.ErrorCode)
		}
		return out
	}
}

// splitPublish returns a PUBLISH's topic and payload.
func splitPublish(p mqttPacket) (string, []byte) {
	n := int(binary.BigEndian.Uint16(p.body))
	topic := string(p.body[2 : 2+n])
	rest := p.body[2+n:]
	if p.flags>>1&3 > 0 {
		rest = rest[2:]
	}
	return topic, rest
}

// closed reports "closed" when the server closes the connection within
// 20 s, reading and dropping whatever it sends before, else "open".
func (m *rawMQTT) closed() string {
	for {
		_, err := m.read(20 * time.Second)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "open"
		}
		return "closed"
	}
}

// DPS and hub MQTT identities.

func (f *badFixture) dpsUsername(id string) string {
	return f.scope + "/registrations/" + id + "/api-version=2019-03-31&ClientVersion=badinput"
}

func hubUsername(id string) string {
	return badHub + "/" + id + "/?api-version=2021-04-12"
}

// dpsSession connects as a DPS registration with the given password and
// subscribes to the response topic.
func (f *badFixture) dpsSession(t *testing.T, id, password string) *rawMQTT {
	t.Helper()
	m := f.dialMQTT(t)
	m.mustConnect(id, f.dpsUsername(id), password)
	if got := m.subscribe("$dps/registrations/res/#"); got != "suback 0x01" {
		t.Fatalf("subscribe to the DPS response topic: %s", got)
	}
	return m
}

// hubSession connects as hub device id with a valid token of key.
func (f *badFixture) hubSession(t *testing.T, id, key string) *rawMQTT {
	t.Helper()
	m := f.dialMQTT(t)
	m.mustConnect(id, hubUsername(id), f.hubDeviceToken(t, id, key, time.Now().Add(time.Hour)))
	return m
}

// register publishes a DPS registration at QoS 1 and returns the answer.
func (m *rawMQTT) register(payload string, qos byte, retain bool) string {
	m.t.Helper()
	m.publish("$dps/registrations/PUT/iotdps-register/?$rid=1", []byte(payload), qos, retain)
	return m.answer("$dps/registrations/res/")
}
