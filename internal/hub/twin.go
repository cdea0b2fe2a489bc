package hub

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/usher-iot/usher/internal/fault"
)

// Twin size and shape limits (hub-protocol.md §3.4).
const (
	MaxTagsBytes     = 8 << 10
	MaxDesiredBytes  = 32 << 10
	MaxReportedBytes = 32 << 10
	MaxTwinDepth     = 10
	MaxKeyBytes      = 1024
	MaxStringBytes   = 4096
)

// TwinPatch is what the service side may change in a twin: tags and desired
// properties. A nil map leaves that collection alone.
type TwinPatch struct {
	Tags    map[string]any
	Desired map[string]any
}

// MergePatch applies a JSON merge patch (RFC 7386) to doc and returns the
// result: objects merge recursively, other values replace, null deletes.
// Keys starting with '$' ($version, $metadata echoed by clients) are ignored.
// doc is not modified.
func MergePatch(doc, patch map[string]any) map[string]any {
	out := make(map[string]any, len(doc)+len(patch))
	for k, v := range doc {
		out[k] = v
	}
	for k, v := range patch {
		if strings.HasPrefix(k, "$") {
			continue
		}
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			old, _ := out[k].(map[string]any)
			out[k] = MergePatch(old, pv)
		default:
			out[k] = v
		}
	}
	return out
}

// withoutMeta returns m without '$'-prefixed keys at the top level and below.
func withoutMeta(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return MergePatch(nil, m)
}

// pushPatch is a desired patch as devices receive it: '$' keys dropped at
// every level, nulls kept (a null tells the device the property is gone).
func pushPatch(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if strings.HasPrefix(k, "$") {
			continue
		}
		if sub, ok := v.(map[string]any); ok {
			v = pushPatch(sub)
		}
		out[k] = v
	}
	return out
}

// ValidateCollection checks a tags or properties collection against IoT
// Hub's limits: key syntax, depth, value kinds, string length and total
// size. what names the collection in the error.
func ValidateCollection(what string, m map[string]any, maxBytes int) error {
	size, err := collectionSize(what, m, 1, false)
	if err != nil {
		return err
	}
	if size > maxBytes {
		return fault.NewReason(fault.TooLarge, ReasonTwinTooLarge, "%s is %d bytes; the limit is %d", what, size, maxBytes)
	}
	return nil
}

// collectionSize measures an object at a nesting depth (a collection is
// depth 1; objects and arrays each add a level). Keys starting with '$'
// ($version, $metadata echoed by clients) are skipped where a merge drops
// them, but inside arrays, which are stored verbatim (verbatim), they are
// keys like any other and so invalid.
func collectionSize(path string, m map[string]any, depth int, verbatim bool) (int, error) {
	if depth > MaxTwinDepth {
		return 0, fault.New(fault.Invalid, "%s is nested deeper than %d levels", path, MaxTwinDepth)
	}
	total := 0
	for k, v := range m {
		if strings.HasPrefix(k, "$") && !verbatim {
			continue
		}
		if k == "" || len(k) > MaxKeyBytes || strings.ContainsAny(k, ". $") || hasControl(k) {
			return 0, fault.New(fault.Invalid, "%s has an invalid key %q (keys are 1–1024 bytes without '.', ' ', '$' or control characters)", path, k)
		}
		n, err := valueSize(path+"."+k, v, depth, verbatim)
		if err != nil {
			return 0, err
		}
		total += len(k) + n
	}
	return total, nil
}

func valueSize(path string, v any, depth int, verbatim bool) (int, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case bool:
		return 4, nil
	case json.Number, float64, int, int64:
		return 8, nil
	case string:
		if len(x) > MaxStringBytes {
			return 0, fault.New(fault.Invalid, "%s is a string of %d bytes; the limit is %d", path, len(x), MaxStringBytes)
		}
		return len(x), nil
	case map[string]any:
		return collectionSize(path, x, depth+1, verbatim)
	case []any:
		if depth+1 > MaxTwinDepth {
			return 0, fault.New(fault.Invalid, "%s is nested deeper than %d levels", path, MaxTwinDepth)
		}
		total := 0
		for _, e := range x {
			n, err := valueSize(path, e, depth+1, true)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	}
	return 0, fault.New(fault.Invalid, "%s has a value of an unsupported type", path)
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r < 0xa0 {
			return true
		}
	}
	return false
}

// TwinChange is what a twin write changed, for notifications.
type TwinChange struct {
	DeviceID, ModuleID string
	// Desired is the desired patch as applied (or the whole desired
	// document after a replace); nil when desired did not change.
	Desired        map[string]any
	DesiredVersion int64
	TagsChanged    bool
}

// maxTwinAttempts bounds retries of read-modify-write twin updates.
const maxTwinAttempts = 8

// PatchTwin merges a patch into the tags and desired properties of a device
// twin (moduleID "") or module twin, as PATCH /twins does. ifMatch is the
// request's If-Match ("" or "*" for none).
func (s *Service) PatchTwin(ctx context.Context, deviceID, moduleID string, patch TwinPatch, ifMatch string) (Twin, error) {
	var before string
	t, err := s.updateTwin(ctx, deviceID, moduleID, ifMatch, func(t *Twin) (TwinChange, error) {
		before = t.ETag
		ch := TwinChange{}
		if patch.Tags != nil {
			t.Tags = MergePatch(t.Tags, patch.Tags)
			ch.TagsChanged = true
		}
		if patch.Desired != nil {
			t.Desired = MergePatch(t.Desired, patch.Desired)
			ch.Desired = pushPatch(patch.Desired)
		}
		return ch, nil
	})
	if err == nil {
		s.audit.Changed(ctx, Change{Kind: ChangeTwin, ID: subject(deviceID, moduleID), Action: "update", ETagBefore: before, ETagAfter: t.ETag, Detail: patched("patched", patch)})
	}
	return t, err
}

// patched says which collections a twin write touched.
func patched(verb string, p TwinPatch) string {
	var parts []string
	if p.Tags != nil {
		parts = append(parts, "tags")
	}
	if p.Desired != nil {
		parts = append(parts, "desired properties")
	}
	if len(parts) == 0 {
		return verb + " nothing"
	}
	return verb + " " + strings.Join(parts, " and ")
}

// ReplaceTwin replaces the tags and desired properties wholesale (PUT
// /twins); reported properties are untouched.
func (s *Service) ReplaceTwin(ctx context.Context, deviceID, moduleID string, patch TwinPatch, ifMatch string) (Twin, error) {
	var before string
	t, err := s.updateTwin(ctx, deviceID, moduleID, ifMatch, func(t *Twin) (TwinChange, error) {
		before = t.ETag
		t.Tags, t.Desired = withoutMeta(patch.Tags), withoutMeta(patch.Desired)
		return TwinChange{TagsChanged: true, Desired: t.Desired}, nil
	})
	if err == nil {
		s.audit.Changed(ctx, Change{Kind: ChangeTwin, ID: subject(deviceID, moduleID), Action: "update", ETagBefore: before, ETagAfter: t.ETag, Detail: "replaced tags and desired properties"})
	}
	return t, err
}

// PatchReported merges a device's reported-properties patch into its twin
// and returns the new reported version.
func (s *Service) PatchReported(ctx context.Context, deviceID, moduleID string, patch map[string]any) (int64, error) {
	t, err := s.updateTwin(ctx, deviceID, moduleID, "", func(t *Twin) (TwinChange, error) {
		t.Reported = MergePatch(t.Reported, patch)
		t.ReportedVersion++
		if err := ValidateCollection("properties.reported", t.Reported, MaxReportedBytes); err != nil {
			return TwinChange{}, err
		}
		return TwinChange{}, nil
	})
	return t.ReportedVersion, err
}

// updateTwin is the read-modify-write every twin change goes through:
// apply, validate the limits, bump versions and etag, write conditionally
// (retrying a concurrent writer when the caller gave no If-Match), then
// notify.
func (s *Service) updateTwin(ctx context.Context, deviceID, moduleID, ifMatch string, apply func(*Twin) (TwinChange, error)) (Twin, error) {
	want := NormalizeETag(ifMatch)
	for attempt := 0; ; attempt++ {
		t, err := s.store.Twin(ctx, deviceID, moduleID)
		if fault.Is(err, fault.NotFound) {
			return Twin{}, s.missing(ctx, deviceID, moduleID)
		}
		if err != nil {
			return Twin{}, err
		}
		if want != "" && want != "*" && want != t.ETag {
			return Twin{}, fault.New(fault.PreconditionFailed, "If-Match %q does not match the twin's etag", want)
		}
		old := t.ETag
		ch, err := apply(&t)
		if err != nil {
			return Twin{}, err
		}
		if err := ValidateCollection("tags", t.Tags, MaxTagsBytes); err != nil {
			return Twin{}, err
		}
		if err := ValidateCollection("properties.desired", t.Desired, MaxDesiredBytes); err != nil {
			return Twin{}, err
		}
		if ch.Desired != nil {
			t.DesiredVersion++
		}
		if ch.Desired != nil || ch.TagsChanged {
			t.Version++
		}
		t.ETag, t.Updated = newETag(), s.now().UTC()
		err = s.store.UpdateTwin(ctx, t, old)
		if fault.Is(err, fault.PreconditionFailed) && (want == "" || want == "*") && attempt+1 < maxTwinAttempts {
			continue
		}
		if err != nil {
			return Twin{}, err
		}
		ch.DeviceID, ch.ModuleID, ch.DesiredVersion = deviceID, moduleID, t.DesiredVersion
		s.twinChanged(ctx, ch)
		return t, nil
	}
}

// twinChanged tells connected devices about desired changes and lets
// deployments re-evaluate a device whose tags changed.
func (s *Service) twinChanged(ctx context.Context, ch TwinChange) {
	if ch.Desired != nil && s.bus != nil {
		s.bus.DesiredChanged(ch.DeviceID, ch.ModuleID, ch.Desired, ch.DesiredVersion)
	}
	if ch.TagsChanged && ch.ModuleID == "" && s.onTagsChanged != nil {
		s.onTagsChanged(ctx, ch.DeviceID)
	}
}

func notFound(deviceID, moduleID string) error {
	if moduleID != "" {
		return fault.NewReason(fault.NotFound, ReasonModuleNotFound, "Module %q on device %q not found.", moduleID, deviceID)
	}
	return fault.New(fault.NotFound, "Device %q not found.", deviceID)
}

// NormalizeETag turns an If-Match value (quoted, unquoted, W/, "*") into the
// bare etag, "*", or "" for none (hub-protocol.md §1.2).
func NormalizeETag(v string) string {
	v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "W/"))
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}
