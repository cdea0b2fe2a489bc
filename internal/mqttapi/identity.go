package mqttapi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// kind is what a connection is for. DPS registrations and hub devices share
// the listener, so the kind is part of every session's identity.
type kind int

const (
	dpsKind kind = iota + 1 // a device registering with DPS
	hubKind                 // a device talking to the built-in hub
)

func (k kind) String() string {
	switch k {
	case dpsKind:
		return "dps"
	case hubKind:
		return "hub"
	}
	return "unknown"
}

// identity is who a CONNECT says it is, read from its username. It carries
// no credentials.
type identity struct {
	kind kind
	// scope is the DPS ID scope or the hub host name.
	scope string
	// id is the registration ID (DPS) or the device ID (hub).
	id string
	// module is the hub module ID, "" for devices and DPS.
	module string
	// params are the username's query parameters, percent-decoded
	// (api-version, ClientVersion, DeviceClientType, model-id).
	params map[string]string
}

// errUsername is the one answer for a username of no known shape.
var errUsername = errors.New("the username is neither a DPS registration nor a hub device")

// parseUsername classifies a CONNECT username.
//
// DPS (dps-protocol.md §4.1): {idScope}/registrations/{registrationId}/api-version=…[&ClientVersion=…].
// No SDK puts a '?' in it; the C SDK leaves ClientVersion unencoded, Node and
// C# percent-encode it, the embedded SDK may leave it out.
//
// Hub (wire/hub-device-mqtt.md, wire/c-sdk-hub-device-mqtt.md):
// {hubHost}/{deviceId}[/{moduleId}]/?api-version=…&DeviceClientType=…; the
// "/?" tells it apart from DPS.
func parseUsername(u string) (identity, error) {
	if path, query, ok := strings.Cut(u, "/?"); ok {
		segs := strings.Split(path, "/")
		if len(segs) < 2 || len(segs) > 3 {
			return identity{}, errUsername
		}
		id := identity{kind: hubKind, scope: segs[0], id: segs[1], params: parseParams(query)}
		if len(segs) == 3 {
			if segs[2] == "" {
				return identity{}, errUsername
			}
			id.module = segs[2]
		}
		return id.complete()
	}
	segs := strings.SplitN(u, "/", 4)
	if len(segs) != 4 || !strings.EqualFold(segs[1], "registrations") {
		return identity{}, errUsername
	}
	id := identity{kind: dpsKind, scope: segs[0], id: segs[2], params: parseParams(segs[3])}
	return id.complete()
}

// complete percent-decodes the path parts and checks that none is empty and
// that an api-version is named, as every Azure SDK does.
func (id identity) complete() (identity, error) {
	for _, p := range []*string{&id.scope, &id.id, &id.module} {
		s, err := url.PathUnescape(*p)
		if err != nil {
			return identity{}, fmt.Errorf("the username has bad percent-encoding: %w", err)
		}
		*p = s
	}
	if id.scope == "" || id.id == "" {
		return identity{}, errUsername
	}
	if id.params["api-version"] == "" {
		return identity{}, errors.New("the username names no api-version")
	}
	return id, nil
}

// parseParams splits a query string leniently: '&'-separated pairs, values
// percent-decoded when they can be and kept as sent when they cannot (an SDK
// version string is informational). Go's url.ParseQuery is stricter (it
// refuses ';'), which user-agent strings contain.
func parseParams(q string) map[string]string {
	params := map[string]string{}
	for _, pair := range strings.Split(q, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if d, err := url.QueryUnescape(v); err == nil {
			v = d
		}
		if d, err := url.QueryUnescape(k); err == nil {
			k = d
		}
		if _, dup := params[k]; !dup {
			params[k] = v
		}
	}
	return params
}

// matchesClientID reports whether the MQTT client ID is the one the username
// names: the registration ID, compared case-insensitively as DPS compares
// registration IDs; the device ID (or "deviceId/moduleId") exactly, as hub
// device IDs are case-sensitive.
func (id identity) matchesClientID(clientID string) bool {
	switch id.kind {
	case dpsKind:
		return strings.EqualFold(clientID, id.id)
	case hubKind:
		if id.module != "" {
			return clientID == id.id+"/"+id.module
		}
		return clientID == id.id
	}
	return false
}

// sessionID is the broker's session key for the connection: the kind, then
// the client identity in its canonical case. A provisioning connection thus
// never takes over a hub session with the same client ID, nor the other way
// round; two connections of one kind and identity take over as MQTT says.
func (id identity) sessionID() string {
	switch id.kind {
	case dpsKind:
		return "dps:" + strings.ToLower(id.id)
	case hubKind:
		if id.module != "" {
			return "hub:" + id.id + "/" + id.module
		}
		return "hub:" + id.id
	}
	return ""
}
