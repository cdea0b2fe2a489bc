package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// Config is everything `usher serve` can be told. Sources apply in order:
// defaults, then the config file (--config), then USHER_* environment
// variables, then flags.
type Config struct {
	DataDir        string   `toml:"data-dir"`
	Store          string   `toml:"store"`
	PostgresURL    string   `toml:"postgres-url"`
	SecretsKeyFile string   `toml:"secrets-key-file"`
	Hostnames      []string `toml:"hostname"`
	HubHost        string   `toml:"hub-hostname"`
	HTTPSAddr      string   `toml:"https-addr"`
	MQTTAddr       string   `toml:"mqtt-addr"`
	TLSCert        string   `toml:"tls-cert"`
	MessageWebhook string   `toml:"message-webhook"`
	TLSKey         string   `toml:"tls-key"`
	LogLevel       string   `toml:"log-level"`
	LogFormat      string   `toml:"log-format"`

	// Overload limits (limits.go); empty means the built-in default.
	LimitRegistrations          textOrNumber `toml:"limit-registrations"`
	LimitRegistrationsPerDevice textOrNumber `toml:"limit-registrations-per-device"`
	LimitPollsPerDevice         textOrNumber `toml:"limit-polls-per-device"`
	LimitRequestsPerSource      textOrNumber `toml:"limit-requests-per-source"`
	MaxConnections              textOrNumber `toml:"max-connections"`
	// Observability (docs/decisions/0014-observability.md).
	MetricsAddr     string `toml:"metrics-addr"`
	AuditMaxAge     string `toml:"audit-max-age"`
	AuditMaxEntries string `toml:"audit-max-entries"`
	// Seed is a seed file applied at every start (docs/seed.md).
	Seed string `toml:"seed"`
}

// DefaultConfig is the embedded default: everything in ./usher-data, HTTPS
// on 443 and MQTT on 8883 (the ports the Azure SDKs dial), named localhost.
func DefaultConfig() Config {
	return Config{
		DataDir:   "usher-data",
		Store:     storeSQLite,
		Hostnames: []string{"localhost"},
		HTTPSAddr: ":443",
		MQTTAddr:  ":8883",
		LogLevel:  "info",
		LogFormat: "text",
	}
}

// HubHostName is the built-in hub's name: --hub-hostname, else the first
// --hostname.
func (c Config) HubHostName() string {
	if c.HubHost != "" {
		return c.HubHost
	}
	if len(c.Hostnames) > 0 {
		return c.Hostnames[0]
	}
	return "localhost"
}

// setting describes one configuration key in all its spellings.
type setting struct {
	key   string // flag name and config-file key
	usage string
	list  bool
	field func(*Config) any // *string or *[]string
}

var settings = []setting{
	{"data-dir", "directory for the database, TLS material and secrets (created 0700)", false, func(c *Config) any { return &c.DataDir }},
	{"store", "where records live: sqlite (one file in the data directory) or postgres (shared by several nodes; needs --postgres-url)", false, func(c *Config) any { return &c.Store }},
	{"postgres-url", "PostgreSQL URL for --store postgres, e.g. postgres://user@host/db?sslmode=verify-full", false, func(c *Config) any { return &c.PostgresURL }},
	{"secrets-key-file", "file holding the base64 32-byte key that encrypts keys and secrets stored in PostgreSQL (or the key itself in env USHER_SECRETS_KEY); every node needs the same", false, func(c *Config) any { return &c.SecretsKeyFile }},
	{"hostname", "host name devices and clients use; repeatable, the first is announced and used as the hub's name", true, func(c *Config) any { return &c.Hostnames }},
	{"hub-hostname", "host name of the built-in IoT hub, returned to devices as assignedHub (default: the first --hostname); the Azure IoT C SDK needs a name with a dot", false, func(c *Config) any { return &c.HubHost }},
	{"https-addr", "address for HTTPS (DPS device and service APIs, hub API, console)", false, func(c *Config) any { return &c.HTTPSAddr }},
	{"mqtt-addr", "address for MQTT over TLS (device registration and hub devices)", false, func(c *Config) any { return &c.MQTTAddr }},
	{"tls-cert", "PEM certificate chain to serve instead of the generated one (needs --tls-key)", false, func(c *Config) any { return &c.TLSCert }},
	{"tls-key", "PEM private key for --tls-cert", false, func(c *Config) any { return &c.TLSKey }},
	{"message-webhook", "http(s) URL that receives every device-to-cloud message as a JSON POST (best effort, never blocks devices)", false, func(c *Config) any { return &c.MessageWebhook }},
	{"log-level", "debug, info, warn or error", false, func(c *Config) any { return &c.LogLevel }},
	{"log-format", "text or json", false, func(c *Config) any { return &c.LogFormat }},
	{"limit-registrations", "registrations this node admits, from all devices: N/s, N/min, N/h or N/<duration> (bursts of N), or off; over it devices are answered 429 with Retry-After (default " + defaultLimitRegistrations + ")", false, func(c *Config) any { return (*string)(&c.LimitRegistrations) }},
	{"limit-registrations-per-device", "registrations of one registration ID that proved its key, or off (default " + defaultLimitRegistrationsPerDevice + ")", false, func(c *Config) any { return (*string)(&c.LimitRegistrationsPerDevice) }},
	{"limit-polls-per-device", "operation polls and status lookups of one registration ID, or off (default " + defaultLimitPollsPerDevice + ")", false, func(c *Config) any { return (*string)(&c.LimitPollsPerDevice) }},
	{"limit-requests-per-source", "device registrations, polls and lookups from one IP address (IPv6: one /64), or off (default " + defaultLimitRequestsPerSource + "; devices behind one NAT share an address)", false, func(c *Config) any { return (*string)(&c.LimitRequestsPerSource) }},
	{"max-connections", "connections each listener (HTTPS, MQTT) holds at once; more are closed at once; 0 for no limit (default " + strconv.Itoa(defaultMaxConnections) + ")", false, func(c *Config) any { return (*string)(&c.MaxConnections) }},
	{"metrics-addr", "address for Prometheus metrics over plain HTTP at /metrics, e.g. 127.0.0.1:9464; empty (the default) serves none", false, func(c *Config) any { return &c.MetricsAddr }},
	{"audit-max-age", "how long audit log entries are kept: a duration such as 720h, or days such as 90d (empty: 90d)", false, func(c *Config) any { return &c.AuditMaxAge }},
	{"audit-max-entries", "how many audit log entries are kept at most, the oldest pruned first (empty: 1000000)", false, func(c *Config) any { return &c.AuditMaxEntries }},
	{"seed", "YAML or JSON seed file of policies, enrollments, groups and hub configurations, applied idempotently at every start before serving (docs/seed.md; check one with `usher seed check`)", false, func(c *Config) any { return &c.Seed }},
}

// auditRetention reads the validated audit retention settings; zero values
// leave audit's defaults (audit.DefaultMaxAge, audit.DefaultMaxEntries).
func (c Config) auditRetention() (time.Duration, int) {
	age, _ := parseAge(c.AuditMaxAge)
	n, _ := strconv.Atoi(c.AuditMaxEntries)
	return age, n
}

// parseAge reads a positive duration in Go's syntax or in whole days ("90d").
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days from 1 to 36500", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 720h or 90d", s)
	}
	return d, nil
}

func envName(key string) string {
	return "USHER_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// addConfigFlags registers every setting as a flag on fs, with its
// environment variable named in the help text.
func addConfigFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	for _, s := range settings {
		usage := fmt.Sprintf("%s (env %s)", s.usage, envName(s.key))
		switch p := s.field(&d).(type) {
		case *string:
			fs.String(s.key, *p, usage)
		case *[]string:
			fs.StringArray(s.key, *p, usage)
		}
	}
	fs.String("config", "", "TOML config file; keys are the flag names, unknown keys are errors (env USHER_CONFIG)")
}

// loadConfig builds the configuration from defaults, file, environment and
// the flags the user set.
func loadConfig(fs *pflag.FlagSet, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	path, _ := fs.GetString("config")
	if !fs.Changed("config") {
		path = getenv("USHER_CONFIG")
	}
	if path != "" {
		if err := readConfigFile(path, &cfg); err != nil {
			return cfg, err
		}
	}
	for _, s := range settings {
		if v := getenv(envName(s.key)); v != "" {
			set(s.field(&cfg), strings.Split(v, ","), v)
		}
		if fs.Changed(s.key) {
			if s.list {
				v, _ := fs.GetStringArray(s.key)
				set(s.field(&cfg), v, "")
			} else {
				v, _ := fs.GetString(s.key)
				set(s.field(&cfg), nil, v)
			}
		}
	}
	return cfg, cfg.Validate()
}

func set(field any, list []string, one string) {
	switch p := field.(type) {
	case *string:
		*p = one
	case *[]string:
		*p = list
	}
}

func readConfigFile(path string, cfg *Config) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return fmt.Errorf("config file %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir must not be empty"))
	}
	switch c.Store {
	case storeSQLite:
	case storePostgres:
		if c.PostgresURL == "" {
			errs = append(errs, errors.New("store postgres needs postgres-url"))
		}
	default:
		errs = append(errs, fmt.Errorf("store %q is not sqlite or postgres", c.Store))
	}
	if len(c.Hostnames) == 0 {
		errs = append(errs, errors.New("at least one hostname is required"))
	}
	for _, h := range c.Hostnames {
		if h == "" || strings.ContainsAny(h, " /:@") && net.ParseIP(h) == nil {
			errs = append(errs, fmt.Errorf("hostname %q is not a host name or IP address", h))
		}
	}
	if c.HubHost != "" && (strings.ContainsAny(c.HubHost, " /:@") && net.ParseIP(c.HubHost) == nil) {
		errs = append(errs, fmt.Errorf("hub-hostname %q is not a host name or IP address", c.HubHost))
	}
	for _, a := range []struct{ name, v string }{{"https-addr", c.HTTPSAddr}, {"mqtt-addr", c.MQTTAddr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not host:port", a.name, a.v))
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("metrics-addr %q is not host:port", c.MetricsAddr))
		}
	}
	if _, err := parseAge(c.AuditMaxAge); err != nil && c.AuditMaxAge != "" {
		errs = append(errs, fmt.Errorf("audit-max-age: %w", err))
	}
	if n, err := strconv.Atoi(c.AuditMaxEntries); c.AuditMaxEntries != "" && (err != nil || n < 1) {
		errs = append(errs, fmt.Errorf("audit-max-entries %q is not a positive whole number", c.AuditMaxEntries))
	}
	if w := c.MessageWebhook; w != "" && !strings.HasPrefix(w, "https://") && !strings.HasPrefix(w, "http://") {
		errs = append(errs, fmt.Errorf("message-webhook %q is not an http(s) URL", w))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key must be given together"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q is not one of debug, info, warn, error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log-format %q is not text or json", c.LogFormat))
	}
	if _, _, err := c.Limits(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
