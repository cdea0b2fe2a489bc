package deviceclient

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// MQTTAPIVersion is the device API version named in the MQTT username, the
// one the Node, Python, C# and embedded C SDKs send (dps-protocol.md §2.2).
const MQTTAPIVersion = "2019-03-31"

// DPS topics (dps-protocol.md §4.2).
const (
	responseFilter = "$dps/registrations/res/#"
	responsePrefix = "$dps/registrations/res/"
	registerTopic  = "$dps/registrations/PUT/iotdps-register/?$rid="
	pollTopic      = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="
)

// ConnectionRefusedError is a CONNACK with a non-zero return code, which is
// how a DPS may refuse a wrong key over MQTT (5, not authorized).
type ConnectionRefusedError struct {
	ReturnCode byte
}

func (e *ConnectionRefusedError) Error() string {
	reason := map[byte]string{
		packets.ErrRefusedBadProtocolVersion:    "unacceptable protocol version",
		packets.ErrRefusedIDRejected:            "client identifier rejected",
		packets.ErrRefusedServerUnavailable:     "server unavailable",
		packets.ErrRefusedBadUsernameOrPassword: "bad user name or password",
		packets.ErrRefusedNotAuthorised:         "not authorized",
	}[e.ReturnCode]
	if reason == "" {
		reason = "refused"
	}
	return fmt.Sprintf("DPS refused the MQTT connection: %s (CONNACK return code %d)", reason, e.ReturnCode)
}

// mqttExchanger registers over one MQTT 3.1.1 connection: client ID = the
// registration ID, username "{idScope}/registrations/{id}/api-version=…&
// ClientVersion=…", password = the SAS token, clean session; answers arrive
// on $dps/registrations/res/{status}/?$rid={rid}[&retry-after=N] and are
// matched to requests by $rid, as the Node SDK does.
type mqttExchanger struct {
	r       *registration
	client  mqtt.Client
	answers chan mqttAnswer
	done    chan struct{}
	rid     atomic.Int64
}

// mqttAnswer is one PUBLISH on the response topic.
type mqttAnswer struct {
	topic   string
	payload []byte
}

// dialMQTT connects and subscribes to the response topic.
func dialMQTT(ctx context.Context, r *registration) (*mqttExchanger, error) {
	m := &mqttExchanger{r: r, answers: make(chan mqttAnswer, 16), done: make(chan struct{})}
	o := mqtt.NewClientOptions().
		AddBroker("tls://" + r.addr).
		SetClientID(r.opts.RegistrationID).
		SetUsername(r.opts.IDScope + "/registrations/" + r.opts.RegistrationID + "/api-version=" + MQTTAPIVersion + "&ClientVersion=" + userAgent).
		SetPassword(r.token).
		SetCleanSession(true).
		SetProtocolVersion(4).
		SetTLSConfig(r.tls).
		SetKeepAlive(60 * time.Second).
		SetConnectTimeout(requestTimeout).
		SetWriteTimeout(requestTimeout).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetDefaultPublishHandler(m.receive)
	if r.opts.Dialer != nil {
		o.SetDialer(r.opts.Dialer)
	}
	m.client = mqtt.NewClient(o)
	tok := m.client.Connect()
	if err := waitToken(ctx, tok); err != nil {
		m.client.Disconnect(0)
		if ct, ok := tok.(*mqtt.ConnectToken); ok {
			if rc := ct.ReturnCode(); rc != packets.Accepted && rc != packets.ErrNetworkError {
				return nil, &ConnectionRefusedError{ReturnCode: rc}
			}
		}
		return nil, fmt.Errorf("DPS at %s (MQTT): %w", r.addr, err)
	}
	sub := m.client.Subscribe(responseFilter, 1, m.receive)
	if err := waitToken(ctx, sub); err != nil {
		m.close()
		return nil, fmt.Errorf("DPS at %s (MQTT): subscribing to %s: %w", r.addr, responseFilter, err)
	}
	if granted, ok := sub.(*mqtt.SubscribeToken).Result()[responseFilter]; ok && granted == 0x80 {
		m.close()
		return nil, fmt.Errorf("DPS at %s (MQTT) refused the subscription to %s", r.addr, responseFilter)
	}
	return m, nil
}

// receive hands an incoming PUBLISH to the request waiting for it.
func (m *mqttExchanger) receive(_ mqtt.Client, msg mqtt.Message) {
	a := mqttAnswer{topic: msg.Topic(), payload: append([]byte(nil), msg.Payload()...)}
	select {
	case m.answers <- a:
	case <-m.done:
	}
}

func (m *mqttExchanger) register(ctx context.Context) (answer, error) {
	rid := m.nextRID()
	return m.exchange(ctx, registerTopic+rid, rid, m.r.body)
}

func (m *mqttExchanger) poll(ctx context.Context, operationID string) (answer, error) {
	rid := m.nextRID()
	return m.exchange(ctx, pollTopic+rid+"&operationId="+operationID, rid, nil)
}

func (m *mqttExchanger) nextRID() string { return strconv.FormatInt(m.rid.Add(1), 10) }

func (m *mqttExchanger) close() {
	select {
	case <-m.done:
		return
	default:
	}
	close(m.done)
	m.client.Disconnect(250)
}

// exchange publishes one request at QoS 1 and waits for the answer that
// carries its $rid; answers to other requests are skipped.
func (m *mqttExchanger) exchange(parent context.Context, topic, rid string, body []byte) (answer, error) {
	ctx, cancel := context.WithTimeout(parent, requestTimeout)
	defer cancel()
	m.r.log.Debug("dps request", "topic", topic)
	if err := waitToken(ctx, m.client.Publish(topic, 1, false, body)); err != nil {
		return answer{}, fmt.Errorf("DPS at %s (MQTT): publishing to %s: %w", m.r.addr, topic, err)
	}
	for {
		select {
		case a := <-m.answers:
			status, params, ok := parseResponseTopic(a.topic)
			if !ok {
				m.r.log.Debug("dps: ignoring a message on an unexpected topic", "topic", a.topic)
				continue
			}
			if params["$rid"] != rid {
				m.r.log.Debug("dps: ignoring an answer to another request", "topic", a.topic, "want", rid)
				continue
			}
			return answer{status: status, retryAfter: params["retry-after"], body: a.payload}, nil
		case <-ctx.Done():
			if parent.Err() != nil {
				return answer{}, fmt.Errorf("registration did not finish: %w", context.Cause(parent))
			}
			return answer{}, fmt.Errorf("DPS at %s (MQTT) sent no answer to %s within %s", m.r.addr, topic, requestTimeout)
		}
	}
}

// parseResponseTopic reads "$dps/registrations/res/{status}/?{k=v&…}".
func parseResponseTopic(topic string) (int, map[string]string, bool) {
	rest, ok := strings.CutPrefix(topic, responsePrefix)
	if !ok {
		return 0, nil, false
	}
	code, query, ok := strings.Cut(rest, "/?")
	if !ok {
		return 0, nil, false
	}
	status, err := strconv.Atoi(code)
	if err != nil {
		return 0, nil, false
	}
	params := map[string]string{}
	for kv := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := params[k]; !dup {
			params[k] = v
		}
	}
	return status, params, true
}

// waitToken waits for a paho token or ctx.
func waitToken(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
