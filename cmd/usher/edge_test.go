package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/deviceclient"
)

// aziotConfig is the part of /etc/aziot/config.toml edge-config writes,
// with aziot's key names (template.toml); decoding fails the test on any
// other key.
type aziotConfig struct {
	TrustBundleCert string `toml:"trust_bundle_cert"`
	Provisioning    struct {
		Source         string `toml:"source"`
		GlobalEndpoint string `toml:"global_endpoint"`
		IDScope        string `toml:"id_scope"`
		Attestation    struct {
			Method         string `toml:"method"`
			RegistrationID string `toml:"registration_id"`
			SymmetricKey   struct {
				Value string `toml:"value"`
				URI   string `toml:"uri"`
			} `toml:"symmetric_key"`
		} `toml:"attestation"`
	} `toml:"provisioning"`
}

func parseAziot(t *testing.T, text string) aziotConfig {
	t.Helper()
	var c aziotConfig
	md, err := toml.Decode(text, &c)
	if err != nil {
		t.Fatalf("output is not TOML: %v\n%s", err, text)
	}
	if un := md.Undecoded(); len(un) > 0 {
		t.Fatalf("unexpected keys %v in:\n%s", un, text)
	}
	return c
}

// hmacKey derives a group member's key the way the Azure SDKs document it,
// independently of internal/sas.
func hmacKey(t *testing.T, groupKey, regID string) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(groupKey)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(regID))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func primaryKeyOf(t *testing.T, showJSON string) string {
	t.Helper()
	var rec struct {
		Attestation struct {
			SymmetricKey struct {
				PrimaryKey string `json:"primaryKey"`
			} `json:"symmetricKey"`
		} `json:"attestation"`
	}
	if err := json.Unmarshal([]byte(showJSON), &rec); err != nil || rec.Attestation.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("no primary key in %s (%v)", showJSON, err)
	}
	return rec.Attestation.SymmetricKey.PrimaryKey
}

// TestEdgeConfig prints the config for individual and group enrollments
// against a real server, parses it as TOML, checks every field against
// the enrollment, and registers a device with exactly the parsed values
// over real TLS, trusting only the CA file --ca-out wrote.
func TestEdgeConfig(t *testing.T) {
	s := startServer(t)
	s.mustUsher(t, "enrollment", "create", "--enrollment-id", "edge-1", "--attestation-type", "symmetrickey", "--edge-enabled", "true")
	s.mustUsher(t, "enrollment", "create", "--enrollment-id", "plain-1", "--attestation-type", "symmetrickey")
	s.mustUsher(t, "enrollment", "create", "--enrollment-id", "off-1", "--attestation-type", "symmetrickey", "--edge-enabled", "true", "--provisioning-status", "disabled")
	s.mustUsher(t, "enrollment-group", "create", "--group-id", "edge-fleet", "--attestation-type", "symmetrickey", "--edge-enabled", "true")
	s.mustUsher(t, "enrollment-group", "create", "--group-id", "off-fleet", "--attestation-type", "symmetrickey", "--provisioning-status", "disabled")
	edgeKey := primaryKeyOf(t, s.mustUsher(t, "enrollment", "show", "--enrollment-id", "edge-1", "--show-keys"))
	plainKey := primaryKeyOf(t, s.mustUsher(t, "enrollment", "show", "--enrollment-id", "plain-1", "--show-keys"))
	groupKey := primaryKeyOf(t, s.mustUsher(t, "enrollment-group", "show", "--group-id", "edge-fleet", "--show-keys"))
	caPEM := readTestFile(t, s.Info.CAFile)
	_, httpsPort, _ := strings.Cut(s.Info.HTTPSAddr, ":")
	localEndpoint := "https://" + s.Info.HostName + ":" + httpsPort + "/"
	const deviceCA = "file:///etc/aziot/usher-ca.pem"

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "device.key")
	remote := []string{"--login", s.Info.ServiceConnectionString, "--address", s.Info.HTTPSAddr, "--ca-file", s.Info.CAFile}
	for _, tc := range []struct {
		name     string
		args     []string
		regID    string
		key      string // want inline, or in keyFile when keyURI is set
		keyURI   string
		endpoint string
		scope    string
		trust    string
		warn     string // in stderr
		register bool   // register a device with the parsed values
	}{
		{name: "ok/individual", args: []string{"enrollment", "edge-config", "--enrollment-id", "edge-1"},
			regID: "edge-1", key: edgeKey, endpoint: localEndpoint, scope: s.Info.IDScope, trust: deviceCA, register: true},
		{name: "ok/group derived key", args: []string{"enrollment-group", "edge-config", "--group-id", "edge-fleet", "--registration-id", "edge-0042"},
			regID: "edge-0042", key: hmacKey(t, groupKey, "edge-0042"), endpoint: localEndpoint, scope: s.Info.IDScope, trust: deviceCA, register: true},
		{name: "ok/key file", args: []string{"enrollment", "edge-config", "--enrollment-id", "edge-1", "--key-file", keyFile},
			regID: "edge-1", key: edgeKey, keyURI: "file://" + filepath.ToSlash(keyFile), endpoint: localEndpoint, scope: s.Info.IDScope, trust: deviceCA, register: true},
		{name: "ok/az aliases and device CA path", args: []string{"enrollment-group", "edge-config", "--gid", "edge-fleet", "--rid", "edge-7", "--device-ca-path", "/opt/usher/ca.pem"},
			regID: "edge-7", key: hmacKey(t, groupKey, "edge-7"), endpoint: localEndpoint, scope: s.Info.IDScope, trust: "file:///opt/usher/ca.pem"},
		{name: "warn/not edge enabled", args: []string{"enrollment", "edge-config", "--enrollment-id", "plain-1"},
			regID: "plain-1", key: plainKey, endpoint: localEndpoint, scope: s.Info.IDScope, trust: deviceCA, warn: `enrollment "plain-1" is not IoT Edge enabled`},
		{name: "warn/individual enrollment shadows the group", args: []string{"enrollment-group", "edge-config", "--group-id", "edge-fleet", "--registration-id", "edge-1"},
			regID: "edge-1", key: hmacKey(t, groupKey, "edge-1"), endpoint: localEndpoint, scope: s.Info.IDScope, trust: deviceCA, warn: `an individual enrollment "edge-1" exists`},
		{name: "ok/remote server with flags", args: append([]string{"enrollment", "edge-config", "--enrollment-id", "edge-1", "--id-scope", "0ne0000CAFE", "--global-endpoint", "https://dps.example.test:8443/x"}, remote...),
			regID: "edge-1", key: edgeKey, endpoint: "https://dps.example.test:8443/", scope: "0ne0000CAFE", trust: deviceCA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caOut := filepath.Join(t.TempDir(), "usher-ca.pem")
			out, stderr, err := s.usher(t, append(tc.args, "--ca-out", caOut)...)
			if err != nil {
				t.Fatalf("%v\nstderr: %s", err, stderr)
			}
			if tc.warn == "" && stderr != "" && !strings.Contains(stderr, "port") {
				t.Errorf("unexpected stderr: %s", stderr)
			}
			if tc.endpoint == localEndpoint && !strings.Contains(stderr, "IoT Edge calls the hub's REST API on port 443") {
				t.Errorf("no warning that the test server's HTTPS port is not 443: %s", stderr)
			}
			if !strings.Contains(stderr, tc.warn) {
				t.Errorf("stderr lacks %q: %s", tc.warn, stderr)
			}
			c := parseAziot(t, out)
			var want aziotConfig
			want.TrustBundleCert = tc.trust
			want.Provisioning.Source = "dps"
			want.Provisioning.GlobalEndpoint = tc.endpoint
			want.Provisioning.IDScope = tc.scope
			want.Provisioning.Attestation.Method = "symmetric_key"
			want.Provisioning.Attestation.RegistrationID = tc.regID
			if tc.keyURI != "" {
				want.Provisioning.Attestation.SymmetricKey.URI = tc.keyURI
			} else {
				want.Provisioning.Attestation.SymmetricKey.Value = tc.key
			}
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("config (-want +got):\n%s\n%s", diff, out)
			}
			for _, note := range []string{`#   UpstreamProtocol = "Mqtt"`, `"edgeHub":   { ..., "env": { "UpstreamProtocol": { "value": "Mqtt" } } }`, "iotedge config apply"} {
				if !strings.Contains(out, note) {
					t.Errorf("output lacks %q", note)
				}
			}
			if got := readTestFile(t, caOut); !bytes.Equal(got, caPEM) {
				t.Errorf("--ca-out wrote %d bytes that are not the server's CA file", len(got))
			}
			key := c.Provisioning.Attestation.SymmetricKey.Value
			if tc.keyURI != "" {
				u, err := url.Parse(c.Provisioning.Attestation.SymmetricKey.URI)
				if err != nil {
					t.Fatal(err)
				}
				key = string(readTestFile(t, u.Path))
				if key != tc.key {
					t.Errorf("key file holds %q, want the enrollment's key", key)
				}
				if fi, err := os.Stat(u.Path); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("key file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
				}
				if strings.Contains(out, tc.key) {
					t.Error("the key is inline although --key-file was given")
				}
			}
			if !tc.register {
				return
			}
			// A device with exactly these values, trusting only the CA
			// file written by --ca-out.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := deviceclient.Register(ctx, deviceclient.Options{
				Endpoint: c.Provisioning.GlobalEndpoint, IDScope: c.Provisioning.IDScope,
				RegistrationID: c.Provisioning.Attestation.RegistrationID, Key: key, RootCAs: pool(t, caOut),
			})
			if err != nil {
				t.Fatalf("registering with the printed config: %v", err)
			}
			if res.Status != "assigned" || res.DeviceID != tc.regID || res.AssignedHub != s.Info.HubHostName {
				t.Errorf("registration = %+v, want assigned to %s as %s", res, s.Info.HubHostName, tc.regID)
			}
		})
	}

	t.Run("ok/json", func(t *testing.T) {
		var c edgeConfig
		if err := json.Unmarshal([]byte(s.mustUsher(t, "enrollment", "edge-config", "--enrollment-id", "edge-1", "-o", "json")), &c); err != nil {
			t.Fatal(err)
		}
		if c.Provisioning.Attestation.SymmetricKey.Value != edgeKey || c.Provisioning.IDScope != s.Info.IDScope || c.TrustBundleCert != deviceCA {
			t.Errorf("json = %+v", c)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"refused/disabled enrollment", []string{"enrollment", "edge-config", "--enrollment-id", "off-1"}, `enrollment "off-1" is disabled`},
		{"refused/disabled group", []string{"enrollment-group", "edge-config", "--group-id", "off-fleet", "--registration-id", "d"}, `enrollment group "off-fleet" is disabled`},
		{"refused/unknown enrollment", []string{"enrollment", "edge-config", "--enrollment-id", "nobody"}, "HTTP 404"},
		{"refused/remote without ID scope", append([]string{"enrollment", "edge-config", "--enrollment-id", "edge-1"}, remote...), "--id-scope"},
		{"refused/relative key file", []string{"enrollment", "edge-config", "--enrollment-id", "edge-1", "--key-file", "device.key"}, "must be an absolute path"},
		{"refused/http endpoint", []string{"enrollment", "edge-config", "--enrollment-id", "edge-1", "--global-endpoint", "http://dps.example.test/"}, "is not an https://host[:port]/ URL"},
		{"refused/table output", []string{"enrollment", "edge-config", "--enrollment-id", "edge-1", "-o", "table"}, "prints toml or json"},
		{"refused/no registration id", []string{"enrollment-group", "edge-config", "--group-id", "edge-fleet"}, `"registration-id" not set`},
		{"refused/ca-out without a known CA", []string{"enrollment", "edge-config", "--enrollment-id", "edge-1", "--id-scope", "x", "--ca-out", filepath.Join(dir, "ca.pem"), "--login", s.Info.ServiceConnectionString, "--address", s.Info.HTTPSAddr}, "Usher's CA is not known here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := s.usher(t, tc.args...)
			if err == nil {
				t.Fatalf("no error; stdout:\n%s", out)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tc.want)
			}
		})
	}
}
