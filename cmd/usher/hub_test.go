package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/usher-iot/usher/internal/sas"
)

// provisionDevice enrolls and registers a device and returns its key.
func provisionDevice(t *testing.T, s *testServer, id string, extra ...string) string {
	t.Helper()
	var e struct {
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	args := append([]string{"enrollment", "create", "--enrollment-id", id, "--show-keys"}, extra...)
	if err := json.Unmarshal([]byte(s.mustUsher(t, args...)), &e); err != nil {
		t.Fatal(err)
	}
	s.mustUsher(t, "device", "register", "--registration-id", id, "--key", e.Attestation.SymmetricKey.PrimaryKey)
	return e.Attestation.SymmetricKey.PrimaryKey
}

func TestHubDeviceAndTwinCommands(t *testing.T) {
	s := startServer(t, "--hub-hostname", "hub.usher.test")
	key := provisionDevice(t, s, "cli-dev", "--initial-twin-tags", `{"environment":"test"}`)
	var d struct {
		DeviceID       string
		Authentication struct {
			SymmetricKey struct{ PrimaryKey string }
		}
	}
	if err := json.Unmarshal([]byte(s.mustUsher(t, "hub", "device", "show", "--device-id", "cli-dev")), &d); err != nil {
		t.Fatal(err)
	}
	if d.DeviceID != "cli-dev" || d.Authentication.SymmetricKey.PrimaryKey != key {
		t.Errorf("hub device show: %+v", d)
	}
	twin := s.mustUsher(t, "hub", "twin", "show", "--device-id", "cli-dev")
	if !strings.Contains(twin, `"environment": "test"`) {
		t.Errorf("twin show lacks the initial tags:\n%s", twin)
	}
	_, errOut, err := s.usher(t, "hub", "device", "show", "--device-id", "nobody")
	if err == nil || !strings.Contains(errOut, "not found") {
		t.Errorf("unknown device: err %v, stderr %q", err, errOut)
	}
	if _, errOut, err := s.usher(t, "hub", "twin", "update", "--device-id", "cli-dev", "--tags", "[1]"); err == nil || !strings.Contains(errOut, "JSON object") {
		t.Errorf("bad --tags: err %v, stderr %q", err, errOut)
	}
}

func TestHubMessagesFromAnMQTTDevice(t *testing.T) {
	s := startServer(t, "--hub-hostname", "hub.usher.test")
	key := provisionDevice(t, s, "talker")
	c := connectDevice(t, s, "talker", key)
	for i := 1; i <= 3; i++ {
		tk := c.Publish(fmt.Sprintf("devices/talker/messages/events/alert=%d&%%24.ct=application%%2Fjson&%%24.ce=utf-8", i), 1, false, fmt.Sprintf(`{"t":%d}`, 20+i))
		if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("publish: %v", tk.Error())
		}
	}
	out := s.mustUsher(t, "hub", "messages", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("--limit 2 printed %d lines:\n%s", len(lines), out)
	}
	var m messageView
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatal(err)
	}
	if m.DeviceID != "talker" || m.Properties["alert"] != "3" || m.System.ContentType != "application/json" || m.BodyEncoding != "json" {
		t.Errorf("last message: %s", lines[1])
	}
}

func TestHubDeploymentQueryAndMethodCommands(t *testing.T) {
	s := startServer(t, "--hub-hostname", "hub.usher.test")
	key := provisionDevice(t, s, "edge-1", "--edge-enabled", "--initial-twin-tags", `{"environment":"test"}`)
	provisionDevice(t, s, "leaf-1", "--initial-twin-tags", `{"environment":"prod"}`)

	content := `{"modulesContent":{"$edgeAgent":{"properties.desired":{"schemaVersion":"1.1","runtime":{"type":"docker","settings":{}},"systemModules":{},"modules":{}}},"$edgeHub":{"properties.desired":{"schemaVersion":"1.1","routes":{}}}}}`
	s.mustUsher(t, "hub", "deployment", "create", "--deployment-id", "base", "--content", content, "--target-condition", "tags.environment='test'", "--priority", "10")
	shown := s.mustUsher(t, "hub", "deployment", "show", "--deployment-id", "base")
	if !strings.Contains(shown, `"targetedCount": 1`) {
		t.Errorf("deployment show: targetedCount is not 1:\n%s", shown)
	}
	agent := s.mustUsher(t, "hub", "twin", "show", "--device-id", "edge-1", "--module-id", "$edgeAgent")
	if !strings.Contains(agent, `"schemaVersion": "1.1"`) {
		t.Errorf("$edgeAgent desired lacks the deployment's content:\n%s", agent)
	}
	q := s.mustUsher(t, "hub", "query", "SELECT deviceId FROM devices WHERE tags.environment = 'prod'")
	if !strings.Contains(q, "leaf-1") || strings.Contains(q, "edge-1") {
		t.Errorf("query: %s", q)
	}
	if _, errOut, err := s.usher(t, "hub", "query", "SELECT * FROM nowhere"); err == nil || !strings.Contains(errOut, "nowhere") {
		t.Errorf("bad query: err %v, stderr %q", err, errOut)
	}
	s.mustUsher(t, "hub", "twin", "update", "--device-id", "edge-1", "--tags", `{"environment":null}`)
	if shown := s.mustUsher(t, "hub", "deployment", "show", "--deployment-id", "base"); !strings.Contains(shown, `"targetedCount": 0`) {
		t.Errorf("after removing the tag, targetedCount is not 0:\n%s", shown)
	}

	// A device that answers direct methods.
	c := connectDevice(t, s, "edge-1", key)
	c.Subscribe("$iothub/methods/POST/#", 0, func(cl paho.Client, m paho.Message) {
		rid := m.Topic()[strings.Index(m.Topic(), "$rid=")+5:]
		cl.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, `{"rebooted":true}`)
	}).Wait()
	if d := s.mustUsher(t, "hub", "device", "show", "--device-id", "edge-1"); !strings.Contains(d, `"connectionState": "Connected"`) {
		t.Errorf("a connected device must show connectionState Connected:\n%s", d)
	}
	if d := s.mustUsher(t, "hub", "device", "show", "--device-id", "leaf-1"); !strings.Contains(d, `"connectionState": "Disconnected"`) {
		t.Errorf("leaf-1 is not connected:\n%s", d)
	}
	out := s.mustUsher(t, "hub", "invoke-method", "--device-id", "edge-1", "--method-name", "reboot", "--method-payload", `{"delay":1}`, "--timeout", "10")
	if !strings.Contains(out, `"status": 200`) || !strings.Contains(out, `"rebooted": true`) {
		t.Errorf("invoke-method: %s", out)
	}
	if _, errOut, err := s.usher(t, "hub", "invoke-method", "--device-id", "leaf-1", "--method-name", "x"); err == nil || !strings.Contains(errOut, "online") {
		t.Errorf("method on an offline device: err %v, stderr %q", err, errOut)
	}
	s.mustUsher(t, "hub", "deployment", "delete", "--deployment-id", "base")
	s.mustUsher(t, "hub", "device", "update", "--device-id", "leaf-1", "--status", "disabled")
	if d := s.mustUsher(t, "hub", "device", "show", "--device-id", "leaf-1"); !strings.Contains(d, `"status": "disabled"`) {
		t.Errorf("device update: %s", d)
	}
}

// connectDevice opens a device MQTT connection to the test server's hub.
func connectDevice(t *testing.T, s *testServer, id, key string) paho.Client {
	t.Helper()
	tok, err := sas.SignKey(url.QueryEscape("hub.usher.test/devices/"+id), "", key, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(s.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	opts := paho.NewClientOptions().AddBroker("tls://" + s.Info.MQTTAddr).SetClientID(id).
		SetUsername("hub.usher.test/" + id + "/?api-version=2021-04-12").SetPassword(tok).
		SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "hub.usher.test"}).SetProtocolVersion(4).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("device connect: %v", tk.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}
