package dps

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/twinquery"
)

// Page is one request for a page of query results.
type Page struct {
	Size         int    // items wanted; DefaultPageSize when 0, capped at MaxPageSize
	Continuation string // token from the previous page, "" for the first
}

// Page sizes for queries (x-ms-max-item-count).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

func (p Page) size() int {
	switch {
	case p.Size <= 0:
		return DefaultPageSize
	case p.Size > MaxPageSize:
		return MaxPageSize
	}
	return p.Size
}

// cursor decodes a continuation token into the key to list after.
func (p Page) cursor() (string, error) {
	if p.Continuation == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Continuation)
	if err != nil || len(b) == 0 || len(b) > 4*MaxIDLength {
		return "", fault.New(fault.Invalid, "x-ms-continuation %q is not a token this service issued", p.Continuation)
	}
	return string(b), nil
}

func continuation(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// condition parses a query specification for collection from. It accepts
// "*" (what the Node SDK sends), "SELECT * FROM <from>" and a WHERE clause
// over the given fields; anything else is an Invalid or Unsupported fault
// that names the offending part.
func condition(q, from string, fields map[string]bool) (*twinquery.Condition, error) {
	q = strings.TrimSpace(q)
	if q == "" || q == "*" {
		return nil, nil
	}
	parsed, err := twinquery.Parse(q)
	if err != nil {
		return nil, queryFault(err)
	}
	switch {
	case !strings.EqualFold(parsed.From, from):
		return nil, fault.New(fault.Invalid, "query must select FROM %s, not %q", from, parsed.From)
	case !parsed.SelectAll:
		return nil, fault.New(fault.Unsupported, "query: only SELECT * is supported here")
	case parsed.GroupBy != nil:
		return nil, fault.New(fault.Unsupported, "query: GROUP BY is not supported here")
	case parsed.Top != 0:
		return nil, fault.New(fault.Unsupported, "query: TOP is not supported here; page with x-ms-max-item-count")
	}
	if parsed.Where == nil {
		return nil, nil
	}
	for _, p := range parsed.Where.Paths() {
		if !knownPath(p, fields) {
			return nil, fault.New(fault.Unsupported, "query: field %q is not an %s field that can be filtered on", p.String(), strings.TrimSuffix(from, "s"))
		}
	}
	return parsed.Where, nil
}

func queryFault(err error) error {
	var unsup *twinquery.UnsupportedError
	if errors.As(err, &unsup) {
		return fault.New(fault.Unsupported, "query: %s", err.Error())
	}
	return fault.New(fault.Invalid, "query: %s", err.Error())
}

// knownPath reports whether p starts at a field the query view has. Fields
// marked true are objects whose members are free-form (tags, desired).
func knownPath(p twinquery.Path, fields map[string]bool) bool {
	for i := len(p); i > 0; i-- {
		open, ok := fields[strings.Join(p[:i], ".")]
		if ok {
			return i == len(p) || open
		}
	}
	return false
}

func (k kind[T]) query(ctx context.Context, q string, page Page) ([]T, string, error) {
	cond, err := condition(q, k.from, k.fields)
	if err != nil {
		return nil, "", err
	}
	match := func(rec *T) bool { return cond == nil || cond.Match(k.doc(rec)) }
	key := func(rec *T) string { return IDKey(k.id(rec)) }
	list := k.list
	if k.where != nil {
		list = k.where(cond)
	}
	return collect(ctx, list, key, match, page)
}

// collect reads records in key order after the page's cursor until it has a
// page of matches, and returns them with the token of the next page ("" when
// no match is left). The token is the key of the last record returned, so it
// serves whichever lister reads the next page.
func collect[T any](ctx context.Context, list lister[T], key func(*T) string, match func(*T) bool, page Page) ([]T, string, error) {
	after, err := page.cursor()
	if err != nil {
		return nil, "", err
	}
	size := page.size()
	var out []T
	for {
		batch, err := list(ctx, after, size+1)
		if err != nil {
			return nil, "", err
		}
		for i := range batch {
			if !match(&batch[i]) {
				continue
			}
			if len(out) == size {
				return out, continuation(key(&out[size-1])), nil
			}
			out = append(out, batch[i])
		}
		if len(batch) < size+1 {
			return out, "", nil
		}
		after = key(&batch[len(batch)-1])
	}
}

// Query-view field names, as Azure's JSON spells them. true marks objects
// whose members are free-form.
var settingsFields = map[string]bool{
	"provisioningStatus":                    false,
	"capabilities":                          false,
	"capabilities.iotEdge":                  false,
	"initialTwin":                           false,
	"initialTwin.tags":                      true,
	"initialTwin.properties":                false,
	"initialTwin.properties.desired":        true,
	"attestation":                           false,
	"attestation.type":                      false,
	"allocationPolicy":                      false,
	"iotHubs":                               false,
	"iotHubHostName":                        false,
	"reprovisionPolicy":                     false,
	"reprovisionPolicy.updateHubAssignment": false,
	"reprovisionPolicy.migrateDeviceData":   false,
	"etag":                                  false,
	"createdDateTimeUtc":                    false,
	"lastUpdatedDateTimeUtc":                false,
}

var enrollmentFields = withFields(settingsFields, map[string]bool{
	"registrationId": false, "deviceId": false, "optionalDeviceInformation": true,
})

var groupFields = withFields(settingsFields, map[string]bool{"enrollmentGroupId": false})

func withFields(base, extra map[string]bool) map[string]bool {
	out := make(map[string]bool, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func enrollmentDoc(e *Enrollment) map[string]any {
	d := settingsDoc(&e.Settings)
	d["registrationId"] = e.RegistrationID
	if e.DeviceID != "" {
		d["deviceId"] = e.DeviceID
	}
	if e.OptionalDeviceInformation != nil {
		d["optionalDeviceInformation"] = e.OptionalDeviceInformation
	}
	return d
}

func groupDoc(g *Group) map[string]any {
	d := settingsDoc(&g.Settings)
	d["enrollmentGroupId"] = g.ID
	return d
}

// timeLayout is how query views and Azure JSON render times.
const timeLayout = "2006-01-02T15:04:05.0000000Z"

func settingsDoc(s *Settings) map[string]any {
	d := map[string]any{
		"provisioningStatus":     string(s.ProvisioningStatus),
		"capabilities":           map[string]any{"iotEdge": s.IoTEdge},
		"attestation":            map[string]any{"type": string(s.Attestation.Type)},
		"etag":                   s.ETag,
		"createdDateTimeUtc":     s.Created.UTC().Format(timeLayout),
		"lastUpdatedDateTimeUtc": s.Updated.UTC().Format(timeLayout),
	}
	if t := s.InitialTwin; t != nil {
		d["initialTwin"] = map[string]any{"tags": orEmpty(t.Tags), "properties": map[string]any{"desired": orEmpty(t.Desired)}}
	}
	if s.AllocationPolicy != "" {
		d["allocationPolicy"] = s.AllocationPolicy
	}
	if s.IoTHubHostName != "" {
		d["iotHubHostName"] = s.IoTHubHostName
	}
	if len(s.IoTHubs) > 0 {
		hubs := make([]any, len(s.IoTHubs))
		for i, h := range s.IoTHubs {
			hubs[i] = h
		}
		d["iotHubs"] = hubs
	}
	if r := s.ReprovisionPolicy; r != nil {
		d["reprovisionPolicy"] = map[string]any{"updateHubAssignment": r.UpdateHubAssignment, "migrateDeviceData": r.MigrateDeviceData}
	}
	return d
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
