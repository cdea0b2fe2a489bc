package hub_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/store/sqlite"
	"github.com/usher-iot/usher/internal/wire"
)

// The fuzz hub is named as in the Node captures (hub-device-mqtt.md), its
// clock stands at fuzzNow, and its identities have fixed keys so that seed
// tokens signed with them verify.
const (
	fuzzHost   = "localhost"
	fuzzKeyA   = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
	fuzzKeyB   = "c2Vjb25kYXJ5LWtleS1mb3ItZnV6emluZy0wMDAwMDA="
	fuzzSkew   = time.Minute
	fuzzDevice = "cap-mqtt-hub-dev" // enabled, keys A/B
	fuzzModDev = "cap-c-hub-dev-01" // enabled, keys B/A, module m1 with keys A/A
	fuzzOffDev = "v10-twin-get-404" // disabled, keys A/B
	fuzzModule = "m1"
	fuzzSE     = "1700003600"
	fuzzExpiry = "1699999000" // expired at fuzzNow beyond the skew
)

var fuzzNow = time.Unix(1700000000, 0)

// fuzzKeys are the keys of each identity, "device/module".
var fuzzKeys = map[string][2]string{
	fuzzDevice:                    {fuzzKeyA, fuzzKeyB},
	fuzzModDev:                    {fuzzKeyB, fuzzKeyA},
	fuzzModDev + "/" + fuzzModule: {fuzzKeyA, fuzzKeyA},
	fuzzOffDev:                    {fuzzKeyA, fuzzKeyB},
}

// newFuzzHub opens a hub on a fresh SQLite store with the fuzz identities.
func newFuzzHub(tb testing.TB) *hub.Service {
	tb.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "usher.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	s := hub.NewService(db, hub.Options{HostName: fuzzHost, Now: func() time.Time { return fuzzNow }})
	for _, id := range []string{fuzzDevice, fuzzModDev, fuzzOffDev} {
		k := fuzzKeys[id]
		if _, err := s.CreateDevice(ctx, hub.DeviceSpec{ID: id, PrimaryKey: k[0], SecondaryKey: k[1]}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := s.UpdateDevice(ctx, hub.DeviceSpec{ID: fuzzOffDev, Status: hub.Disabled}, "*"); err != nil {
		tb.Fatal(err)
	}
	k := fuzzKeys[fuzzModDev+"/"+fuzzModule]
	if _, err := s.CreateModule(ctx, hub.ModuleSpec{DeviceID: fuzzModDev, ID: fuzzModule, PrimaryKey: k[0], SecondaryKey: k[1]}); err != nil {
		tb.Fatal(err)
	}
	return s
}

// signFuzz builds a token over sr exactly as given with a base64 key.
func signFuzz(sr, key, se string) string {
	k, _ := base64.StdEncoding.DecodeString(key)
	h := hmac.New(sha256.New, k)
	h.Write([]byte(sr + "\n" + se))
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(h.Sum(nil))) + "&se=" + se
}

// FuzzAuthenticateDevice checks the hub's device-token check: every
// refusal is Unauthenticated, and an accepted token names an enabled
// identity of this hub (the claimed one, when there is a claim), was
// signed over its raw sr with that identity's primary or secondary key,
// and has not expired beyond the skew.
func FuzzAuthenticateDevice(f *testing.F) {
	s := newFuzzHub(f)
	ctx := context.Background()
	// Audiences as the Node SDK (encoded) and the C SDK (raw) send them
	// (hub-device-mqtt.md, c-sdk-hub-device-mqtt.md), then variants.
	for _, c := range []struct{ sr, key, se, dev, mod string }{
		{"localhost%2Fdevices%2Fcap-mqtt-hub-dev", fuzzKeyA, fuzzSE, fuzzDevice, ""},
		{"localhost/devices/cap-mqtt-hub-dev", fuzzKeyB, fuzzSE, "", ""},
		{"LOCALHOST/devices/CAP-MQTT-HUB-DEV/", fuzzKeyA, fuzzSE, fuzzDevice, ""},
		{"localhost/devices/cap-mqtt-hub-dev", fuzzKeyA, fuzzExpiry, fuzzDevice, ""},
		{"127.0.0.1/devices/cap-c-hub-dev-01", fuzzKeyB, fuzzSE, fuzzModDev, ""},
		{"localhost/devices/cap-c-hub-dev-01", fuzzKeyB, fuzzSE, fuzzModDev, ""},
		{"localhost/devices/cap-c-hub-dev-01/modules/m1", fuzzKeyA, fuzzSE, fuzzModDev, fuzzModule},
		{"localhost%2Fdevices%2Fcap-c-hub-dev-01%2Fmodules%2Fm1", fuzzKeyA, fuzzSE, "", ""},
		{"localhost/devices/cap-c-hub-dev-01/modules/m1", fuzzKeyB, fuzzSE, fuzzModDev, fuzzModule},
		{"localhost/devices/v10-twin-get-404", fuzzKeyA, fuzzSE, fuzzOffDev, ""},
		{"localhost/devices/cap-mqtt-hub-dev", fuzzKeyA, "9223372036854775807", fuzzDevice, ""},
		{"localhost", fuzzKeyA, fuzzSE, fuzzDevice, ""},
	} {
		f.Add(signFuzz(c.sr, c.key, c.se), c.dev, c.mod)
	}
	f.Add(signFuzz("localhost/devices/cap-mqtt-hub-dev", fuzzKeyA, fuzzSE)+"&skn=iothubowner", fuzzDevice, "")
	f.Add("SharedAccessSignature sr=localhost/devices/x&sig=<sig>&se=<expiry-epoch-seconds>", "x", "")
	f.Fuzz(func(t *testing.T, token, wantDevice, wantModule string) {
		want := hub.DeviceIdentity{DeviceID: wantDevice, ModuleID: wantModule}
		id, err := s.AuthenticateDevice(ctx, token, want, fuzzSkew)
		if err != nil {
			if !fault.Is(err, fault.Unauthenticated) {
				t.Fatalf("AuthenticateDevice(%q, %+v) failed with kind %v: %v", token, want, fault.KindOf(err), err)
			}
			return
		}
		if wantDevice != "" && id != want {
			t.Fatalf("AuthenticateDevice(%q) claimed %+v, got %+v", token, want, id)
		}
		name := id.DeviceID
		if id.ModuleID != "" {
			name += "/" + id.ModuleID
		}
		keys, ok := fuzzKeys[name]
		if !ok {
			t.Fatalf("AuthenticateDevice(%q, %+v) admitted an identity that does not exist: %+v", token, want, id)
		}
		if id.DeviceID == fuzzOffDev {
			t.Fatalf("AuthenticateDevice(%q) admitted a disabled device", token)
		}
		tok, err := sas.Parse(token)
		if err != nil {
			t.Fatalf("accepted a token that does not parse: %v", err)
		}
		res, _ := tok.Resource()
		aud := fuzzHost + "/devices/" + id.DeviceID
		if id.ModuleID != "" {
			aud += "/modules/" + id.ModuleID
		}
		if !strings.EqualFold(strings.TrimSuffix(res, "/"), aud) {
			t.Fatalf("AuthenticateDevice(%q) admitted %+v for the audience %q", token, id, res)
		}
		signed := false
		for _, k := range keys {
			kb, _ := base64.StdEncoding.DecodeString(k)
			h := hmac.New(sha256.New, kb)
			h.Write([]byte(tok.RawResource + "\n" + tok.RawExpiry))
			signed = signed || bytes.Equal(h.Sum(nil), tok.Signature)
		}
		if !signed {
			t.Fatalf("AuthenticateDevice(%q) admitted %+v without its key", token, id)
		}
		if tok.Expiry.Before(fuzzNow.Add(-fuzzSkew)) {
			t.Fatalf("AuthenticateDevice(%q) admitted an expired token", token)
		}
	})
}

// Twin writes the fuzz target makes, chosen by the op byte.
const (
	opPatchTwin   = iota // PATCH /twins/{id}: tags and desired merge
	opReplaceTwin        // PUT /twins/{id}: tags and desired replace
	opReported           // $iothub/twin/PATCH/properties/reported from the device
	opReportedModule
	opPatchModuleTwin
	numTwinOps
)

// twinTarget is the identity an op writes.
func twinTarget(op uint8) (string, string) {
	switch op {
	case opReportedModule, opPatchModuleTwin:
		return fuzzModDev, fuzzModule
	}
	return fuzzDevice, ""
}

// writeTwin decodes body as the transport for op does and applies it.
func writeTwin(ctx context.Context, s *hub.Service, op uint8, body []byte) error {
	dev, mod := twinTarget(op)
	switch op {
	case opReported, opReportedModule:
		// As mqttapi's reported handler: a JSON object, not null.
		var patch map[string]any
		if err := wire.Decode(body, &patch); err != nil {
			return err
		}
		if patch == nil {
			return fault.New(fault.Malformed, "null patch")
		}
		_, err := s.PatchReported(ctx, dev, mod, patch)
		return err
	}
	var u wire.TwinUpdate
	if err := wire.Decode(body, &u); err != nil {
		return err
	}
	p, err := u.ToTwinPatch()
	if err != nil {
		return err
	}
	if op == opReplaceTwin {
		_, err = s.ReplaceTwin(ctx, dev, mod, p, "")
	} else {
		_, err = s.PatchTwin(ctx, dev, mod, p, "")
	}
	return err
}

// resetTwin empties the tags, desired and reported properties of the
// identity op writes, so that each input starts from the same twin.
func resetTwin(t *testing.T, ctx context.Context, s *hub.Service, op uint8) hub.Twin {
	t.Helper()
	dev, mod := twinTarget(op)
	tw, err := s.DeviceTwin(ctx, dev, mod)
	if err != nil {
		t.Fatal(err)
	}
	if len(tw.Reported) > 0 {
		clear := map[string]any{}
		for k := range tw.Reported {
			clear[k] = nil
		}
		if _, err := s.PatchReported(ctx, dev, mod, clear); err != nil {
			t.Fatalf("clearing reported properties %v: %v", tw.Reported, err)
		}
	}
	if len(tw.Tags) > 0 || len(tw.Desired) > 0 {
		if _, err := s.ReplaceTwin(ctx, dev, mod, hub.TwinPatch{Tags: map[string]any{}, Desired: map[string]any{}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if tw, err = s.DeviceTwin(ctx, dev, mod); err != nil {
		t.Fatal(err)
	}
	return tw
}

// FuzzTwinPatch decodes arbitrary bodies as twin writes (service PATCH and
// PUT of tags and desired properties, device reported patches) and applies
// them to a real twin on SQLite. Refusals are Malformed, Invalid or
// TooLarge and leave the twin untouched; what is accepted is stored within
// IoT Hub's limits (keys, depth, string length, collection sizes), without
// '$' keys, and equals an independent RFC 7386 merge of the patch.
func FuzzTwinPatch(f *testing.F) {
	s := newFuzzHub(f)
	ctx := context.Background()
	for _, seed := range []struct {
		op   uint8
		body string
	}{
		// hub-device-mqtt.md: the Node device's reported patch.
		{opReported, `{"firmware":{"version":"1.0.1"},"battery":97}`},
		// c-sdk-hub-device-mqtt.md: the C SDK's reported patch.
		{opReportedModule, `{"firmware":"1.2.3","telemetryInterval":30}`},
		// hub-service-registry.md: Registry.updateTwin.
		{opPatchTwin, `{"tags":{"site":"lab-9"},"properties":{"desired":{"telemetryInterval":10}}}`},
		{opPatchTwin, `{"properties":{"desired":{"fw":"1.2.3"}}}`},
		{opReplaceTwin, `{"deviceId":"cap-mqtt-hub-dev","etag":"AAAAAAAAAAE=","tags":{"a":{"b":[1,2.5e3,"x",null,true]}},"properties":{"desired":{"$version":3,"$metadata":{}},"reported":{"$version":1}}}`},
		{opPatchModuleTwin, `{"properties":{"desired":{"routes":{"r1":"FROM /messages/* INTO $upstream"},"$version":1}}}`},
		{opPatchTwin, `{"properties":{"reported":{"x":1}}}`},
		{opReported, `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":1}}}}}}}}}}`},
		{opReported, `{"a":[[[[[[[[[[[1]]]]]]]]]]]}`},
		{opReported, `{"a":[{"$k":"v"}]}`},
		{opReported, `{"a.b":1}`},
		{opReported, `{"a":"` + strings.Repeat("x", hub.MaxStringBytes+1) + `"}`},
		{opPatchTwin, `{"tags":{"t":"` + strings.Repeat("y", hub.MaxStringBytes) + `","u":"` + strings.Repeat("z", hub.MaxStringBytes) + `"}}`},
		{opReported, `null`}, {opReported, ` `}, {opPatchTwin, `{"tags":null}`}, {opReported, `{"a":1e400}`}, {opReported, `{"a":1}{}`},
	} {
		f.Add(seed.op, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		op %= numTwinOps
		dev, mod := twinTarget(op)
		before := resetTwin(t, ctx, s, op)
		err := writeTwin(ctx, s, op, body)
		after, rerr := s.DeviceTwin(ctx, dev, mod)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			switch fault.KindOf(err) {
			case fault.Malformed, fault.Invalid, fault.TooLarge:
			default:
				t.Fatalf("op %d on %q failed with kind %v: %v", op, body, fault.KindOf(err), err)
			}
			if after.ETag != before.ETag || after.ReportedVersion != before.ReportedVersion {
				t.Fatalf("op %d on %q was refused (%v) but changed the twin", op, body, err)
			}
			return
		}
		checkTwinLimits(t, after)
		var want hub.Twin
		switch op {
		case opReported, opReportedModule:
			var patch map[string]any
			_ = wire.Decode(body, &patch)
			want.Reported = refMerge(nil, patch)
			if after.ReportedVersion != before.ReportedVersion+1 {
				t.Errorf("reported version %d after %d", after.ReportedVersion, before.ReportedVersion)
			}
		default:
			var u wire.TwinUpdate
			_ = wire.Decode(body, &u)
			p, _ := u.ToTwinPatch()
			want.Tags, want.Desired = refMerge(nil, p.Tags), refMerge(nil, p.Desired)
			if p.Desired != nil && after.DesiredVersion != before.DesiredVersion+1 {
				t.Errorf("desired version %d after %d for a desired write", after.DesiredVersion, before.DesiredVersion)
			}
		}
		for _, c := range []struct {
			what      string
			got, want map[string]any
		}{{"tags", after.Tags, want.Tags}, {"desired", after.Desired, want.Desired}, {"reported", after.Reported, want.Reported}} {
			if diff := cmp.Diff(canonical(t, c.want), canonical(t, c.got)); diff != "" {
				t.Fatalf("op %d on %q: stored %s differ from the merge (-want +got):\n%s", op, body, c.what, diff)
			}
		}
	})
}

// refMerge is RFC 7386 over objects, independent of hub.MergePatch, with
// '$' keys of objects ignored (IoT Hub's metadata, echoed by clients).
func refMerge(doc map[string]any, patch map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range doc {
		out[k] = v
	}
	for k, v := range patch {
		if k != "" && k[0] == '$' {
			continue
		}
		if v == nil {
			delete(out, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			dm, _ := out[k].(map[string]any)
			out[k] = refMerge(dm, pm)
			continue
		}
		out[k] = v
	}
	return out
}

// canonical renders a collection as generic JSON (numbers as written), so
// that what went into the store and what came out compare as JSON.
func canonical(t *testing.T, m map[string]any) any {
	t.Helper()
	if len(m) == 0 {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkTwinLimits checks a stored twin against IoT Hub's documented limits
// without the package's own validation: keys of 1–1024 bytes without '.',
// ' ', '$' or control characters; objects and arrays nested at most
// MaxTwinDepth levels (a collection's own members are level 1); strings of
// at most MaxStringBytes; and each collection within its size limit.
func checkTwinLimits(t *testing.T, tw hub.Twin) {
	t.Helper()
	for _, c := range []struct {
		what string
		m    map[string]any
		max  int
	}{{"tags", tw.Tags, hub.MaxTagsBytes}, {"desired", tw.Desired, hub.MaxDesiredBytes}, {"reported", tw.Reported, hub.MaxReportedBytes}} {
		size := walkLimits(t, c.what, c.m, 1)
		if size > c.max {
			t.Fatalf("%s stored with %d bytes; the limit is %d", c.what, size, c.max)
		}
	}
}

// walkLimits checks one value at a nesting level and returns its size as
// IoT Hub counts it: keys and strings by length, numbers 8, booleans 4.
func walkLimits(t *testing.T, path string, v any, level int) int {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		if level > hub.MaxTwinDepth+1 {
			t.Fatalf("%s: an object nested %d levels deep was stored", path, level-1)
		}
		n := 0
		for k, e := range x {
			if k == "" || len(k) > hub.MaxKeyBytes || strings.ContainsAny(k, ". $") || strings.IndexFunc(k, func(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 }) >= 0 {
				t.Fatalf("%s: the invalid key %q was stored", path, k)
			}
			n += len(k) + walkLimits(t, path+"."+k, e, level+1)
		}
		return n
	case []any:
		if level > hub.MaxTwinDepth+1 {
			t.Fatalf("%s: an array nested %d levels deep was stored", path, level-1)
		}
		n := 0
		for _, e := range x {
			n += walkLimits(t, path+"[]", e, level+1)
		}
		return n
	case string:
		if len(x) > hub.MaxStringBytes {
			t.Fatalf("%s: a string of %d bytes was stored", path, len(x))
		}
		return len(x)
	case bool:
		return 4
	case nil:
		return 0
	}
	return 8
}

// FuzzConfiguration decodes arbitrary bodies as PUT /configurations and
// puts them to a hub whose devices carry the captures' tags, so target
// conditions and metric queries are parsed and evaluated. Refusals are
// client errors; an accepted configuration reads back, renders, decodes
// and puts again (with its etag) unchanged.
func FuzzConfiguration(f *testing.F) {
	s := newFuzzHub(f)
	ctx := context.Background()
	if _, err := s.PatchTwin(ctx, fuzzDevice, "", hub.TwinPatch{Tags: map[string]any{"site": "lab-9", "environment": "test"}}, ""); err != nil {
		f.Fatal(err)
	}
	if _, err := s.PatchReported(ctx, fuzzModDev, "", map[string]any{"firmware": map[string]any{"version": "1.0.1"}, "battery": json.Number("97")}); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		// hub-service-registry.md: Registry.addConfiguration.
		`{"id":"cap-config-1","content":{"deviceContent":{"properties.desired.settings":{"mode":"eco"}}},"targetCondition":"tags.site='lab-9'","priority":10,"labels":{"purpose":"capture"},"metrics":{"queries":{"eco":"SELECT deviceId FROM devices WHERE properties.reported.settings.mode='eco'"}}}`,
		`{"id":"edge-1","content":{"modulesContent":{"$edgeAgent":{"properties.desired":{"schemaVersion":"1.1","runtime":{"type":"docker"},"systemModules":{},"modules":{}}},"$edgeHub":{"properties.desired.routes.r1":"FROM /messages/* INTO $upstream"}}},"targetCondition":"*","priority":0}`,
		`{"id":"mod-1","content":{"moduleContent":{"properties.desired":{"a":1}}},"targetCondition":"FROM devices.modules WHERE moduleId = 'm1'"}`,
		`{"id":"x","content":{"deviceContent":{}},"targetCondition":"properties.reported.battery > 50 AND NOT is_defined(tags.x)","metrics":{"queries":{"low":"SELECT deviceId FROM devices WHERE properties.reported.battery < 10"}}}`,
		`{"id":"X","content":{"deviceContent":{},"moduleContent":{}}}`, `{"id":"y","content":{"deviceContent":{"properties.reported.a":1}}}`,
		`{"id":"z","targetCondition":"tags.a IN ['x', 'y']","priority":-1,"content":{"deviceContent":{"properties.desired.a.$b":1}}}`, `{}`, `[]`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in wire.Configuration
		if err := wire.Decode(body, &in); err != nil {
			if k := fault.KindOf(err); k != fault.Malformed && k != fault.Invalid {
				t.Fatalf("decode failed with kind %v: %v", k, err)
			}
			return
		}
		c := in.ToConfiguration()
		_ = s.TestQueries(c.TargetCondition, c.MetricQueries)
		rep, err := s.PutConfiguration(ctx, c, "")
		if err != nil {
			switch fault.KindOf(err) {
			case fault.Invalid, fault.Malformed, fault.Conflict, fault.TooLarge:
			default:
				t.Fatalf("PutConfiguration(%s) failed with kind %v: %v", body, fault.KindOf(err), err)
			}
			if _, gerr := s.Configuration(ctx, c.ID); err != nil && !fault.Is(err, fault.Conflict) && !fault.Is(gerr, fault.NotFound) {
				t.Fatalf("a refused configuration (%v) was stored: %v", err, gerr)
			}
			return
		}
		defer func() {
			if err := s.DeleteConfiguration(ctx, c.ID, "*"); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}()
		out, err := json.Marshal(wire.FromConfiguration(rep))
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		var again wire.Configuration
		if err := wire.Decode(out, &again); err != nil {
			t.Fatalf("re-decode of %s: %v", out, err)
		}
		c2 := again.ToConfiguration()
		if _, err := s.PutConfiguration(ctx, c2, rep.ETag); err != nil {
			t.Fatalf("putting the rendered configuration %s back: %v", out, err)
		}
		got, err := s.Configuration(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.TargetCondition != rep.TargetCondition || got.Priority != rep.Priority {
			t.Fatalf("put back changed the configuration: %+v vs %+v", got.Configuration, rep.Configuration)
		}
	})
}
