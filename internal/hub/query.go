package hub

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/twinquery"
)

// TwinKey orders twins: by device ID, then module ID ("" for the device
// twin).
type TwinKey struct{ DeviceID, ModuleID string }

// TwinRecord is a twin with the identity it belongs to.
type TwinRecord struct {
	Twin   Twin
	Device Device
}

// Item types of query answers (x-ms-item-type).
const (
	ItemTwin = "Twin"
	ItemRaw  = "Raw"
)

// QueryPage is one request for a page of results.
type QueryPage struct {
	Size         int    // DefaultQueryPage when 0, capped at MaxQueryPage
	Continuation string // "" for the first page
}

// Query page sizes.
const (
	DefaultQueryPage = 100
	MaxQueryPage     = 1000
)

// QueryResult is one page of a query.
type QueryResult struct {
	Items        []map[string]any
	ItemType     string
	Continuation string // "" on the last page
}

// Query runs a query of the IoT Hub query language over the device twins
// ("FROM devices") or module twins ("FROM devices.modules"): WHERE filters,
// projections, TOP, COUNT() with GROUP BY (hub-protocol.md §4).
func (s *Service) Query(ctx context.Context, q string, page QueryPage) (QueryResult, error) {
	parsed, err := twinquery.Parse(q)
	if err != nil {
		return QueryResult{}, fault.New(fault.Invalid, "query: %s", err.Error())
	}
	modules, err := collection(parsed.From)
	if err != nil {
		return QueryResult{}, err
	}
	if parsed.Count != "" || parsed.GroupBy != nil {
		items, err := s.aggregate(ctx, parsed, modules)
		return QueryResult{Items: items, ItemType: ItemRaw}, err
	}
	return s.selectRows(ctx, parsed, modules, page)
}

// Count returns how many twins a query selects (system metrics count rows).
func (s *Service) Count(ctx context.Context, q string) (int, error) {
	parsed, err := twinquery.Parse(q)
	if err != nil {
		return 0, fault.New(fault.Invalid, "query: %s", err.Error())
	}
	modules, err := collection(parsed.From)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.scan(ctx, modules, TwinKey{}, func(doc map[string]any, _ TwinKey) bool {
		if parsed.Where == nil || parsed.Where.Match(doc) {
			n++
		}
		return true
	})
	return n, err
}

// Matches reports whether a condition (a deployment's target condition)
// selects the device twin of deviceID.
func (s *Service) Matches(ctx context.Context, cond *twinquery.Condition, deviceID string) (bool, error) {
	d, err := s.store.Device(ctx, deviceID)
	if err != nil {
		return false, err
	}
	t, err := s.store.Twin(ctx, deviceID, "")
	if err != nil {
		return false, err
	}
	return cond == nil || cond.Match(TwinDoc(t, d, Connection{})), nil
}

func collection(from string) (bool, error) {
	switch strings.ToLower(from) {
	case "devices":
		return false, nil
	case "devices.modules":
		return true, nil
	}
	return false, fault.New(fault.Invalid, "query: FROM %q is not devices or devices.modules", from)
}

// scanBatch is how many twins a scan reads at a time.
const scanBatch = 500

// scan calls fn with the query document of every device twin (or module
// twin) in key order after after, until fn returns false. Connection
// states are looked up once per batch, never once per twin.
func (s *Service) scan(ctx context.Context, modules bool, after TwinKey, fn func(map[string]any, TwinKey) bool) error {
	for {
		batch, err := s.store.TwinRecords(ctx, modules, after, scanBatch)
		if err != nil {
			return err
		}
		keys := make([]TwinKey, len(batch))
		for i, r := range batch {
			keys[i] = TwinKey{r.Twin.DeviceID, r.Twin.ModuleID}
		}
		conns, err := s.Connections(ctx, keys)
		if err != nil {
			return err
		}
		for i, r := range batch {
			k := keys[i]
			if !fn(TwinDoc(r.Twin, r.Device, conns[k]), k) {
				return nil
			}
			after = k
		}
		if len(batch) < scanBatch {
			return nil
		}
	}
}

func (s *Service) selectRows(ctx context.Context, q *twinquery.Query, modules bool, page QueryPage) (QueryResult, error) {
	size := page.Size
	if size <= 0 {
		size = DefaultQueryPage
	}
	size = min(size, MaxQueryPage)
	after, skipped, err := decodeContinuation(page.Continuation)
	if err != nil {
		return QueryResult{}, err
	}
	res := QueryResult{ItemType: ItemTwin}
	if !q.SelectAll {
		res.ItemType = ItemRaw
	}
	seen := skipped
	var last TwinKey
	more := false
	err = s.scan(ctx, modules, after, func(doc map[string]any, k TwinKey) bool {
		if q.Where != nil && !q.Where.Match(doc) {
			return true
		}
		if q.Top > 0 && seen >= q.Top {
			return false
		}
		if len(res.Items) == size {
			more = true
			return false
		}
		res.Items = append(res.Items, project(q, doc))
		seen++
		last = k
		return true
	})
	if more {
		res.Continuation = encodeContinuation(last, seen)
	}
	return res, err
}

// project renders a selected twin: the whole document for SELECT *, else
// the selected paths under their aliases (or last segment).
func project(q *twinquery.Query, doc map[string]any) map[string]any {
	if q.SelectAll {
		delete(doc, "devices")
		return doc
	}
	row := map[string]any{}
	for _, f := range q.Fields {
		name := f.Alias
		if name == "" {
			name = f.Path[len(f.Path)-1]
		}
		if v, ok := f.Path.Lookup(doc); ok {
			row[name] = v
		}
	}
	return row
}

// aggregate answers COUNT() queries, grouped when GROUP BY is given:
// [{"alias": n}] or [{"<group field>": v, "alias": n}, …].
func (s *Service) aggregate(ctx context.Context, q *twinquery.Query, modules bool) ([]map[string]any, error) {
	alias := q.Count
	if alias == "" {
		return nil, fault.New(fault.Unsupported, "query: GROUP BY needs COUNT() in SELECT")
	}
	counts := map[string]int{}
	values := map[string]any{}
	total := 0
	err := s.scan(ctx, modules, TwinKey{}, func(doc map[string]any, _ TwinKey) bool {
		if q.Where != nil && !q.Where.Match(doc) {
			return true
		}
		total++
		if q.GroupBy != nil {
			v, _ := q.GroupBy.Lookup(doc)
			key := fmt.Sprint(v)
			counts[key]++
			values[key] = v
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if q.GroupBy == nil {
		return []map[string]any{{alias: total}}, nil
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	field := (*q.GroupBy)[len(*q.GroupBy)-1]
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, map[string]any{field: values[k], alias: counts[k]})
	}
	return out, nil
}

func encodeContinuation(k TwinKey, seen int) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d\x00%s\x00%s", seen, k.DeviceID, k.ModuleID))
}

func decodeContinuation(s string) (TwinKey, int, error) {
	if s == "" {
		return TwinKey{}, 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	parts := strings.SplitN(string(b), "\x00", 3)
	var seen int
	if err != nil || len(parts) != 3 {
		return TwinKey{}, 0, fault.New(fault.Invalid, "x-ms-continuation %q is not a token this hub issued", s)
	}
	if _, err := fmt.Sscanf(parts[0], "%d", &seen); err != nil {
		return TwinKey{}, 0, fault.New(fault.Invalid, "x-ms-continuation %q is not a token this hub issued", s)
	}
	return TwinKey{parts[1], parts[2]}, seen, nil
}

// neverTime is how IoT Hub renders "never".
const neverTime = "0001-01-01T00:00:00Z"

func hubTime(t time.Time) string {
	if t.IsZero() {
		return neverTime
	}
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// TwinDoc is the query view of a twin, with the field names of IoT Hub's
// twin JSON: what queries and target conditions match against. Target
// conditions are given the zero Connection (deployments follow tags and
// properties, not who is online right now).
func TwinDoc(t Twin, d Device, c Connection) map[string]any {
	doc := map[string]any{
		"deviceId":           t.DeviceID,
		"etag":               t.ETag,
		"deviceEtag":         d.ETag,
		"status":             string(d.Status),
		"statusUpdateTime":   hubTime(d.StatusUpdated),
		"connectionState":    connectionState(c.Connected),
		"lastActivityTime":   hubTime(c.LastActivity),
		"authenticationType": "sas",
		"version":            t.Version,
		"tags":               orEmpty(t.Tags),
		"properties": map[string]any{
			"desired":  withVersion(t.Desired, t.DesiredVersion),
			"reported": withVersion(t.Reported, t.ReportedVersion),
		},
	}
	// Constant fields of IoT Hub's twin JSON, so that SELECT * answers the
	// same document as GET /twins (no X.509, no PnP models, no C2D queue).
	doc["x509Thumbprint"] = map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil}
	doc["modelId"] = ""
	doc["cloudToDeviceMessageCount"] = 0
	if t.ModuleID != "" {
		doc["moduleId"] = t.ModuleID
	} else {
		doc["capabilities"] = map[string]any{"iotEdge": d.IoTEdge}
		if d.DeviceScope != "" {
			doc["deviceScope"] = d.DeviceScope
		}
	}
	if len(t.Configurations) > 0 {
		cfg := map[string]any{}
		for id, status := range t.Configurations {
			cfg[id] = map[string]any{"status": status}
		}
		doc["configurations"] = cfg
	}
	doc["devices"] = doc // paths may be prefixed by the collection: devices.tags.x
	return doc
}

func connectionState(connected bool) string {
	if connected {
		return "Connected"
	}
	return "Disconnected"
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func withVersion(m map[string]any, version int64) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out["$version"] = version
	return out
}
