package sas

import (
	"strings"

	"github.com/usher-iot/usher/internal/fault"
)

// ConnectionString is a parsed Azure connection string such as
// "HostName=…;SharedAccessKeyName=…;SharedAccessKey=…" (service) or
// "HostName=…;DeviceId=…;SharedAccessKey=…" (device), optionally with
// ModuleId and GatewayHostName.
type ConnectionString struct {
	HostName            string // host (and optional :port) of the hub or DPS
	SharedAccessKeyName string // policy name; "" for device and module keys
	SharedAccessKey     string // base64 key, as written
	DeviceID            string // DeviceId
	ModuleID            string // ModuleId
	GatewayHostName     string // IoT Edge gateway to connect through
}

// connPart names one known part and the field that holds it.
type connPart struct {
	name  string
	field func(*ConnectionString) *string
}

// connParts lists the known parts in the order String writes them.
var connParts = []connPart{
	{"HostName", func(c *ConnectionString) *string { return &c.HostName }},
	{"DeviceId", func(c *ConnectionString) *string { return &c.DeviceID }},
	{"ModuleId", func(c *ConnectionString) *string { return &c.ModuleID }},
	{"SharedAccessKeyName", func(c *ConnectionString) *string { return &c.SharedAccessKeyName }},
	{"SharedAccessKey", func(c *ConnectionString) *string { return &c.SharedAccessKey }},
	{"GatewayHostName", func(c *ConnectionString) *string { return &c.GatewayHostName }},
}

// lookupPart finds the known part called name, ASCII case-insensitively;
// ok is false for a part this package ignores.
func lookupPart(name string) (p connPart, ok bool) {
	for _, p := range connParts {
		if asciiEqualFold(p.name, name) {
			return p, true
		}
	}
	return connPart{}, false
}

// ParseConnectionString parses ';'-separated Name=Value parts. Each part is
// split on its first '=' so a base64 value keeps its padding; names are
// matched ASCII case-insensitively (Azure's SDKs are case-sensitive, Usher
// is lenient); spaces around names and values are trimmed; empty parts, such as
// a trailing ';', are skipped; unknown names (SharedAccessSignature, x509, …)
// are ignored. A part without '=', a known name given twice, or a missing or
// empty HostName or SharedAccessKey is a fault Invalid naming the problem.
// The key is not decoded here; use [ValidateKey] for that.
func ParseConnectionString(s string) (ConnectionString, error) {
	var c ConnectionString
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return ConnectionString{}, fault.New(fault.Invalid, "connection string has a part without '='")
		}
		p, ok := lookupPart(strings.TrimSpace(name))
		if !ok {
			continue
		}
		if seen[p.name] {
			return ConnectionString{}, fault.New(fault.Invalid, "connection string has %s more than once", p.name)
		}
		seen[p.name] = true
		*p.field(&c) = strings.TrimSpace(value)
	}
	if err := c.check(); err != nil {
		return ConnectionString{}, err
	}
	return c, nil
}

// check reports a missing HostName or SharedAccessKey.
func (c ConnectionString) check() error {
	if c.HostName == "" {
		return fault.New(fault.Invalid, "connection string has no HostName")
	}
	if c.SharedAccessKey == "" {
		return fault.New(fault.Invalid, "connection string has no SharedAccessKey")
	}
	return nil
}

// String renders c in the order Azure uses: HostName, DeviceId, ModuleId,
// SharedAccessKeyName, SharedAccessKey, GatewayHostName, leaving out empty
// parts. It contains the key: do not log it.
func (c ConnectionString) String() string {
	var parts []string
	for _, p := range connParts {
		if v := *p.field(&c); v != "" {
			parts = append(parts, p.name+"="+v)
		}
	}
	return strings.Join(parts, ";")
}
