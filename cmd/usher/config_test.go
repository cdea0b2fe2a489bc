package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "usher.toml")
	if err := os.WriteFile(file, []byte(`
data-dir = "from-file"
hostname = ["file.example", "alt.example"]
https-addr = ":9443"
mqtt-addr = ":9883"
log-level = "debug"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"USHER_CONFIG": file, "USHER_MQTT_ADDR": "127.0.0.1:1884", "USHER_HOSTNAME": "env-a.example,env-b.example", "USHER_LOG_LEVEL": "warn"}
	onPostgres := DefaultConfig()
	onPostgres.Store, onPostgres.PostgresURL = "postgres", "postgres://u@db.example/usher"
	tests := []struct {
		name  string
		flags []string
		env   map[string]string
		want  Config
	}{
		{"ok/defaults", nil, nil, DefaultConfig()},
		{"ok/postgres from env", nil, map[string]string{"USHER_STORE": "postgres", "USHER_POSTGRES_URL": "postgres://u@db.example/usher"}, onPostgres},
		{"ok/file over defaults", []string{"--config", file}, nil, Config{DataDir: "from-file", Store: "sqlite", Hostnames: []string{"file.example", "alt.example"}, HTTPSAddr: ":9443", MQTTAddr: ":9883", LogLevel: "debug", LogFormat: "text"}},
		{"ok/env over file", nil, env, Config{DataDir: "from-file", Store: "sqlite", Hostnames: []string{"env-a.example", "env-b.example"}, HTTPSAddr: ":9443", MQTTAddr: "127.0.0.1:1884", LogLevel: "warn", LogFormat: "text"}},
		{"ok/flags over env", []string{"--mqtt-addr", ":1", "--hostname", "flag.example", "--data-dir", "d"}, env, Config{DataDir: "d", Store: "sqlite", Hostnames: []string{"flag.example"}, HTTPSAddr: ":9443", MQTTAddr: ":1", LogLevel: "warn", LogFormat: "text"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			addConfigFlags(fs)
			if err := fs.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			got, err := loadConfig(fs, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("data-dir = \"x\"\nhttps_adress = \":1\"\n[extra]\nk = 1\n"), 0o600)
	badType := filepath.Join(dir, "type.toml")
	os.WriteFile(badType, []byte("hostname = 5\n"), 0o600)
	tests := []struct {
		name  string
		flags []string
		want  []string
	}{
		{"error/unknown keys in file", []string{"--config", unknown}, []string{"unknown keys", "https_adress", "extra"}},
		{"error/wrong type in file", []string{"--config", badType}, []string{"hostname"}},
		{"error/missing file", []string{"--config", filepath.Join(dir, "nope.toml")}, []string{"nope.toml"}},
		{"error/postgres without a URL", []string{"--store", "postgres"}, []string{"postgres-url"}},
		{"error/unknown store", []string{"--store", "mysql"}, []string{`store "mysql"`}},
		{"error/every problem at once", []string{"--https-addr", "443", "--log-level", "loud", "--tls-cert", "c.pem", "--hostname", "a b"}, []string{"https-addr", "log-level", "tls-key", `hostname "a b"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			addConfigFlags(fs)
			if err := fs.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(fs, noEnv)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestServeHelpDocumentsEverySetting(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(t.Context(), []string{"serve", "--help"}, noEnv, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		for _, want := range []string{"--" + s.key, envName(s.key)} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("serve --help does not mention %s", want)
			}
		}
	}
	if !strings.Contains(out.String(), "--config") {
		t.Errorf("serve --help does not mention --config")
	}
}

func TestJoinBoolValues(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"ok/separate true", []string{"enrollment", "create", "--edge-enabled", "true", "--eid", "x"}, []string{"enrollment", "create", "--edge-enabled=true", "--eid", "x"}},
		{"ok/separate False", []string{"--ee", "False"}, []string{"--ee=false"}},
		{"ok/bare flag", []string{"--edge-enabled", "--eid", "x"}, []string{"--edge-enabled", "--eid", "x"}},
		{"ok/equals form untouched", []string{"--edge-enabled=false"}, []string{"--edge-enabled=false"}},
		{"ok/after -- untouched", []string{"--", "--edge-enabled", "true"}, []string{"--", "--edge-enabled", "true"}},
		{"ok/other flags untouched", []string{"--show-keys", "true"}, []string{"--show-keys", "true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, joinBoolValues(tc.in, threeStateFlags)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
