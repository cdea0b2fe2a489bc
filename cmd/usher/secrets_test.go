package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/usher-iot/usher/internal/deviceclient"
	"github.com/usher-iot/usher/internal/sas"
)

// secretSet collects every secret a test handed to or got from the server,
// in each spelling a log line could carry it.
type secretSet struct {
	values map[string]string // spelling → what it is
}

// key adds a base64 key: as given, URL-encoded, in the other base64
// alphabets and as hex of its bytes.
func (s *secretSet) key(what, k string) {
	s.add(what, k)
	s.add(what+" (URL-encoded)", url.QueryEscape(k))
	if b, err := base64.StdEncoding.DecodeString(k); err == nil {
		s.add(what+" (hex)", hex.EncodeToString(b))
		s.add(what+" (base64url)", base64.RawURLEncoding.EncodeToString(b))
		s.add(what+" (unpadded)", base64.RawStdEncoding.EncodeToString(b))
	}
}

// token adds the signature of a SAS token, encoded as sent and decoded.
func (s *secretSet) token(what, tok string) {
	_, rest, ok := strings.Cut(tok, "sig=")
	if !ok {
		panic("token without sig: " + tok)
	}
	raw, _, _ := strings.Cut(rest, "&")
	s.add(what+" sig", raw)
	if dec, err := url.QueryUnescape(raw); err == nil {
		s.key(what+" sig (decoded)", dec)
	}
}

func (s *secretSet) add(what, v string) {
	if len(v) < 16 { // a fragment this short would match by chance
		return
	}
	if s.values == nil {
		s.values = map[string]string{}
	}
	s.values[v] = what
}

// check fails for every secret found in logs.
func (s *secretSet) check(t *testing.T, logs string) {
	t.Helper()
	for v, what := range s.values {
		if i := strings.Index(logs, v); i >= 0 {
			start, end := max(i-200, 0), min(i+len(v)+50, len(logs))
			t.Errorf("the logs hold %s (%s):\n…%s…", what, v, logs[start:end])
		}
	}
}

// signatures adds the signature of every token a client that signs with
// se = now + ttl (deviceclient) could have made between from and to.
func (s *secretSet) signatures(what, sr, key string, from, to time.Time, ttl time.Duration) {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		panic(err)
	}
	for se := from.Add(ttl).Unix() - 1; se <= to.Add(ttl).Unix()+1; se++ {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(sr + "\n" + strconv.FormatInt(se, 10)))
		sig := base64.StdEncoding.EncodeToString(m.Sum(nil))
		s.key(what+" sig", sig)
	}
}

// TestSecretsNeverLogged runs the server at debug level in both log
// formats, hands it and takes from it every kind of secret (policy keys,
// enrollment and group keys, derived device keys, hub device keys, SAS
// tokens good and bad over the service APIs, HTTPS and MQTT registration
// and hub device MQTT), stops it, and then looks for each secret in
// everything it logged.
func TestSecretsNeverLogged(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var secrets secretSet
			var s *testServer
			// Registered before startServer's cleanup, so it runs after
			// the server has stopped and logged its last line.
			t.Cleanup(func() {
				logs := s.Stderr.String()
				if !strings.Contains(logs, "https request") || !strings.Contains(logs, "Unauthenticated") || !strings.Contains(logs, "MQTT connection refused") || !strings.Contains(logs, "message webhook failed") {
					t.Errorf("the debug logs lack the refusals the test caused; is the level right?\n%s", logs)
				}
				secrets.check(t, logs)
				t.Logf("%d secrets checked against %d bytes of %s logs", len(secrets.values), len(logs), format)
			})
			// A webhook URL carries its credentials in the user info and
			// the query (Azure Functions' ?code=); nothing listens there,
			// so every message's post fails and is logged.
			secrets.add("webhook password", "webhook-password-secret")
			secrets.add("webhook code", "webhook-code-secret")
			webhook := "https://user:webhook-password-secret@127.0.0.1:1/api/hook?code=webhook-code-secret"
			s = startServer(t, "--log-level", "debug", "--log-format", format, "--hub-hostname", "hub.usher.test", "--message-webhook", webhook)
			exerciseSecrets(t, s, &secrets)
		})
	}
}

// secretsClient drives one server for TestSecretsNeverLogged.
type secretsClient struct {
	t       *testing.T
	s       *testServer
	secrets *secretSet
	http    *http.Client
}

func exerciseSecrets(t *testing.T, s *testServer, secrets *secretSet) {
	c := &secretsClient{t: t, s: s, secrets: secrets, http: caClient(t, s.Info.CAFile)}
	dpsOwner := mustDecode[policyView](t, s.mustUsher(t, "policy", "show", "provisioningserviceowner"))
	hubOwner := mustDecode[policyView](t, s.mustUsher(t, "policy", "show", "iothubowner", "--hub"))
	for _, p := range []policyView{dpsOwner, hubOwner} {
		secrets.key(p.Name+" primary key", p.PrimaryKey)
		secrets.key(p.Name+" secondary key", p.SecondaryKey)
	}
	newKey := func(what string) string {
		k, err := sas.NewKey(64)
		if err != nil {
			t.Fatal(err)
		}
		secrets.key(what, k)
		return k
	}
	dpsToken := func(what, key string) string { return c.sign(what, s.Info.HostName, dpsOwner.Name, key) }
	hubToken := func(what, key string) string { return c.sign(what, "hub.usher.test", hubOwner.Name, key) }

	// The DPS service API: records with keys, with a good token, a forged
	// one and an expired one, and a key that is not base64.
	indKey, grpKey := newKey("enrollment primary key"), newKey("group primary key")
	keys := func(p, sec string) map[string]any {
		return map[string]any{"type": "symmetricKey", "symmetricKey": map[string]any{"primaryKey": p, "secondaryKey": sec}}
	}
	c.do("PUT", "/enrollments/sec-ind", dpsToken("owner", dpsOwner.PrimaryKey), map[string]any{"registrationId": "sec-ind", "attestation": keys(indKey, newKey("enrollment secondary key"))}, 200)
	c.do("PUT", "/enrollmentGroups/sec-grp", dpsToken("owner", dpsOwner.SecondaryKey), map[string]any{"enrollmentGroupId": "sec-grp", "attestation": keys(grpKey, newKey("group secondary key"))}, 200)
	c.do("POST", "/enrollments/sec-ind/attestationmechanism", dpsToken("owner", dpsOwner.PrimaryKey), nil, 200)
	c.do("PUT", "/enrollments/sec-bad", dpsToken("owner", dpsOwner.PrimaryKey), map[string]any{"registrationId": "sec-bad", "attestation": keys("this-is-not-base64-but-a-secret!", "")}, 400)
	secrets.add("a key that is not base64", "this-is-not-base64-but-a-secret!")
	c.do("GET", "/enrollments/sec-ind", dpsToken("forged", newKey("forged policy key")), nil, 401)
	expired := c.signAt("expired", s.Info.HostName, dpsOwner.Name, dpsOwner.PrimaryKey, time.Now().Add(-time.Hour))
	c.do("GET", "/enrollments/sec-ind", expired, nil, 401)
	c.do("GET", "/enrollments/sec-ind", "SharedAccessSignature sr="+s.Info.HostName+"&sig=not%2Bbase64%2Fbut%3Dsecret&se=1&skn=x", nil, 401)
	secrets.add("a malformed sig", "not%2Bbase64%2Fbut%3Dsecret")
	secrets.add("a malformed sig (decoded)", "not+base64/but=secret")

	// Registrations: individual and group member, HTTPS and MQTT, good
	// and bad keys.
	memberKey, err := sas.DeriveDeviceKey(grpKey, "sec-member")
	if err != nil {
		t.Fatal(err)
	}
	secrets.key("derived device key", memberKey)
	c.register("sec-ind", indKey, deviceclient.HTTPS, true)
	c.register("sec-member", memberKey, deviceclient.MQTT, true)
	c.register("sec-ind", newKey("wrong device key"), deviceclient.HTTPS, false)
	c.register("sec-member", newKey("wrong member key"), deviceclient.MQTT, false)
	rawReg := c.sign("registration token", s.Info.IDScope+"/registrations/sec-other", "registration", newKey("unknown registration key"))
	c.do("PUT", "/"+s.Info.IDScope+"/registrations/sec-other/register", rawReg, map[string]any{"registrationId": "sec-other"}, 401)

	// The hub service API and device MQTT.
	hubKey := newKey("hub device key")
	c.do("PUT", "/devices/sec-dev?api-version=2021-04-12", hubToken("hub owner", hubOwner.PrimaryKey), map[string]any{"deviceId": "sec-dev",
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": hubKey, "secondaryKey": newKey("hub device secondary key")}}}, 200)
	c.do("PATCH", "/twins/sec-dev?api-version=2021-04-12", hubToken("hub owner", hubOwner.PrimaryKey), map[string]any{"tags": map[string]any{"a": 1}}, 200)
	c.do("GET", "/devices/sec-dev?api-version=2021-04-12", hubToken("forged hub", newKey("forged hub key")), nil, 401)
	c.do("POST", "/twins/sec-dev/methods?api-version=2021-04-12", hubToken("hub owner", hubOwner.PrimaryKey), map[string]any{"methodName": "m"}, 404)
	devTok := c.sign("device", url.QueryEscape("hub.usher.test/devices/sec-dev"), "", hubKey)
	c.do("PUT", "/devices/sec-dev/modules/sec-mod?api-version=2021-04-12", devTok, map[string]any{"moduleId": "sec-mod",
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]any{"primaryKey": newKey("module key"), "secondaryKey": newKey("module secondary key")}}}, 200)
	c.hubMQTT("sec-dev", devTok, true)
	c.hubMQTT("sec-dev", c.sign("forged device", url.QueryEscape("hub.usher.test/devices/sec-dev"), "", newKey("forged device key")), false)
	// The web console: sign-ins with a wrong key, the right key and a
	// connection string; its session cookies are secrets too.
	c.console("provisioningserviceowner", newKey("wrong console key"), "", false)
	c.console("provisioningserviceowner", dpsOwner.PrimaryKey, "", true)
	c.console("", "", dpsOwner.PrimaryConnectionString, true)
	// The CLI against the API with a connection string.
	login := fmt.Sprintf("HostName=%s;SharedAccessKeyName=%s;SharedAccessKey=%s", s.Info.HostName, dpsOwner.Name, dpsOwner.PrimaryKey)
	if _, _, err := s.usher(t, "enrollment", "show", "--enrollment-id", "sec-ind", "--login", login, "--ca-file", s.Info.CAFile, "--address", s.Info.HTTPSAddr); err != nil {
		t.Logf("enrollment show with --login: %v (not needed for the check)", err)
	}
}

func (c *secretsClient) sign(what, sr, keyName, key string) string {
	return c.signAt(what, sr, keyName, key, time.Now().Add(time.Hour))
}

func (c *secretsClient) signAt(what, sr, keyName, key string, expiry time.Time) string {
	c.t.Helper()
	tok, err := sas.SignKey(sr, keyName, key, expiry)
	if err != nil {
		c.t.Fatal(err)
	}
	c.secrets.token(what, tok)
	return tok
}

// do sends a request (api-version added when missing) and checks its status.
func (c *secretsClient) do(method, path, auth string, body any, want int) {
	c.t.Helper()
	if !strings.Contains(path, "api-version") {
		path += "?api-version=2021-10-01"
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, "https://"+c.s.Info.HTTPSAddr+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		c.t.Errorf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
}

// register runs deviceclient's registration and records every signature
// it could have sent.
func (c *secretsClient) register(regID, key, transport string, good bool) {
	c.t.Helper()
	const ttl = time.Hour
	from := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := deviceclient.Register(ctx, deviceclient.Options{
		Endpoint: c.endpoint(transport), IDScope: c.s.Info.IDScope, RegistrationID: regID, Key: key,
		Transport: transport, RootCAs: pool(c.t, c.s.Info.CAFile), ServerName: "localhost", TokenTTL: ttl,
	})
	c.secrets.signatures(transport+" registration of "+regID, c.s.Info.IDScope+"/registrations/"+regID, key, from, time.Now(), ttl)
	if good && (err != nil || res.Status != deviceclient.StatusAssigned) {
		c.t.Errorf("register %s over %s: %+v %v", regID, transport, res, err)
	}
	if !good && err == nil {
		c.t.Errorf("register %s over %s with a wrong key: %+v, want a refusal", regID, transport, res)
	}
}

func (c *secretsClient) endpoint(transport string) string {
	if transport == deviceclient.MQTT {
		return c.s.Info.MQTTAddr
	}
	return c.s.Info.HTTPSAddr
}

// hubMQTT connects a hub device over MQTT, sends a message when it may.
func (c *secretsClient) hubMQTT(id, token string, good bool) {
	c.t.Helper()
	opts := paho.NewClientOptions().AddBroker("tls://" + c.s.Info.MQTTAddr).SetClientID(id).
		SetUsername("hub.usher.test/" + id + "/?api-version=2021-04-12").SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: pool(c.t, c.s.Info.CAFile), ServerName: "localhost"}).SetProtocolVersion(4).SetAutoReconnect(false)
	cl := paho.NewClient(opts)
	tk := cl.Connect()
	if !tk.WaitTimeout(10 * time.Second) {
		c.t.Fatalf("MQTT connect of %s did not finish", id)
	}
	if (tk.Error() == nil) != good {
		c.t.Fatalf("MQTT connect of %s: %v, want success %v", id, tk.Error(), good)
	}
	if !good {
		return
	}
	defer cl.Disconnect(0)
	p := cl.Publish("devices/"+id+"/messages/events/", 1, false, `{"t":1}`)
	if !p.WaitTimeout(10*time.Second) || p.Error() != nil {
		c.t.Errorf("publish: %v", p.Error())
	}
}

// console signs in to the web console with a policy and key or a
// connection string, and visits a page when that worked.
func (c *secretsClient) console(policy, key, connectionString string, good bool) {
	c.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	hc := caClient(c.t, c.s.Info.CAFile)
	hc.Jar = jar
	base := "https://" + c.s.Info.HTTPSAddr
	resp, err := hc.PostForm(base+"/console/signin", url.Values{"policy": {policy}, "key": {key}, "connectionString": {connectionString}})
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(base)
	for _, ck := range jar.Cookies(u) {
		c.secrets.add("console cookie "+ck.Name, ck.Value)
	}
	if signedIn := resp.Request.URL.Path == "/console/"; signedIn != good {
		c.t.Errorf("console sign-in ended at %s (%d), want signed in %v", resp.Request.URL.Path, resp.StatusCode, good)
		return
	}
	if good {
		if resp, err := hc.Get(base + "/console/enrollments"); err == nil {
			resp.Body.Close()
		}
	}
}
