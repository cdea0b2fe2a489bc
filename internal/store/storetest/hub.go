package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/hub"
)

// hubRegistry checks the identity registry part of hub.Store: devices,
// modules and twins, their conditional writes and cascading deletes. The
// cases share one store, so each names its devices with its own prefix.
func hubRegistry(t *testing.T, s Store) {
	for i, tc := range []struct {
		name string
		fn   func(*testing.T, Store, string)
	}{
		{"identity round trip", hubIdentityRoundTrip},
		{"device create conflict", hubCreateConflict},
		{"device conditional update", hubConditionalUpdate},
		{"device list order and paging", hubDevicePaging},
		{"device delete cascades", hubDeleteCascades},
		{"module create update delete", hubModules},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s, fmt.Sprintf("c%d-", i)) })
	}
}

func sampleIdentity(id string, edge bool) hub.Identity {
	d := hub.Device{
		ID: id, GenerationID: "638512345678901234", ETag: "d-" + id, Status: hub.Enabled, StatusUpdated: t0,
		PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2Nzg=", SecondaryKey: "c2Vjb25kYXJ5LWtleS0xMjM0NTY=", IoTEdge: edge,
		Created: t0, Updated: t0,
	}
	twin := func(module string) hub.Twin {
		return hub.Twin{DeviceID: id, ModuleID: module, ETag: "t-" + id + module, Version: 1, DesiredVersion: 1, ReportedVersion: 1,
			Tags:    map[string]any{"site": "lab", "n": json.Number("3"), "nested": map[string]any{"a": []any{json.Number("1.5"), "x"}}},
			Desired: map[string]any{"interval": json.Number("30")}, Updated: t0}
	}
	out := hub.Identity{Device: d, Twin: twin("")}
	if edge {
		out.Device.DeviceScope = "ms-azure-iot-edge://" + id + "-" + d.GenerationID
		for _, m := range []string{hub.EdgeAgent, hub.EdgeHub} {
			out.Modules = append(out.Modules, sampleModule(id, m))
			out.ModuleTwins = append(out.ModuleTwins, twin(m))
		}
	}
	return out
}

func sampleModule(deviceID, moduleID string) hub.Module {
	return hub.Module{DeviceID: deviceID, ID: moduleID, GenerationID: "638512345678909999", ETag: "m-" + moduleID, ManagedBy: "IotEdge",
		PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2Nzg=", SecondaryKey: "c2Vjb25kYXJ5LWtleS0xMjM0NTY=", Created: t0, Updated: t0}
}

func hubIdentityRoundTrip(t *testing.T, s Store, p string) {
	want := sampleIdentity(p+"edge-1", true)
	mustNil(t, s.CreateIdentity(ctx(), want), "create")
	d, err := s.Device(ctx(), p+"edge-1")
	mustNil(t, err, "device")
	if diff := cmp.Diff(want.Device, d); diff != "" {
		t.Errorf("device changed in the store (-want +got):\n%s", diff)
	}
	tw, err := s.Twin(ctx(), p+"edge-1", "")
	mustNil(t, err, "twin")
	if diff := cmp.Diff(want.Twin, tw); diff != "" {
		t.Errorf("twin changed in the store (-want +got):\n%s", diff)
	}
	mods, err := s.Modules(ctx(), p+"edge-1")
	mustNil(t, err, "modules")
	if diff := cmp.Diff(want.Modules, mods); diff != "" {
		t.Errorf("modules (-want +got):\n%s", diff)
	}
	mt, err := s.Twin(ctx(), p+"edge-1", hub.EdgeAgent)
	mustNil(t, err, "module twin")
	if diff := cmp.Diff(want.ModuleTwins[0], mt); diff != "" {
		t.Errorf("module twin (-want +got):\n%s", diff)
	}
	_, err = s.Device(ctx(), p+"EDGE-1")
	wantKind(t, err, fault.NotFound, "device IDs are case-sensitive")
	_, err = s.Module(ctx(), p+"edge-1", "nope")
	wantKind(t, err, fault.NotFound, "missing module")
}

func hubCreateConflict(t *testing.T, s Store, p string) {
	mustNil(t, s.CreateIdentity(ctx(), sampleIdentity(p+"d1", false)), "create")
	wantKind(t, s.CreateIdentity(ctx(), sampleIdentity(p+"d1", false)), fault.Conflict, "second create")
	mustNil(t, s.CreateIdentity(ctx(), sampleIdentity(p+"D1", false)), "create with other case (a different device)")
}

func hubConditionalUpdate(t *testing.T, s Store, p string) {
	id := sampleIdentity(p+"d1", false)
	mustNil(t, s.CreateIdentity(ctx(), id), "create")
	d := id.Device
	d.Status, d.ETag = hub.Disabled, "d-2"
	wantKind(t, s.UpdateIdentity(ctx(), d, "stale", nil, nil, nil), fault.PreconditionFailed, "stale etag")
	mustNil(t, s.UpdateIdentity(ctx(), d, id.Device.ETag, nil, nil, nil), "matching etag")
	got, err := s.Device(ctx(), p+"d1")
	mustNil(t, err, "read back")
	if got.Status != hub.Disabled || got.ETag != "d-2" {
		t.Errorf("after update: status %q etag %q, want disabled d-2", got.Status, got.ETag)
	}
	d.ID = p + "nobody"
	wantKind(t, s.UpdateIdentity(ctx(), d, "", nil, nil, nil), fault.NotFound, "update of a missing device")
}

func hubDevicePaging(t *testing.T, s Store, p string) {
	for _, id := range []string{"b", "a", "C", "c", "$x"} {
		mustNil(t, s.CreateIdentity(ctx(), sampleIdentity(p+id, false)), "create "+id)
	}
	var got []string
	after := p
	for len(got) < 10 {
		page, err := s.Devices(ctx(), after, 2)
		mustNil(t, err, "list")
		for _, d := range page {
			if strings.HasPrefix(d.ID, p) {
				got = append(got, strings.TrimPrefix(d.ID, p))
			}
		}
		if len(page) < 2 || !strings.HasPrefix(page[len(page)-1].ID, p) {
			break
		}
		after = page[len(page)-1].ID
	}
	if diff := cmp.Diff([]string{"$x", "C", "a", "b", "c"}, got); diff != "" {
		t.Errorf("device order (byte order, case-sensitive) (-want +got):\n%s", diff)
	}
}

func hubDeleteCascades(t *testing.T, s Store, p string) {
	id := sampleIdentity(p+"edge-1", true)
	mustNil(t, s.CreateIdentity(ctx(), id), "create")
	mustNil(t, s.CreateIdentity(ctx(), sampleIdentity(p+"other", true)), "create other")
	wantKind(t, s.DeleteDevice(ctx(), p+"edge-1", "stale"), fault.PreconditionFailed, "stale etag")
	if _, err := s.Twin(ctx(), p+"edge-1", hub.EdgeHub); err != nil {
		t.Fatalf("a refused delete removed a module twin: %v", err)
	}
	mustNil(t, s.DeleteDevice(ctx(), p+"edge-1", id.Device.ETag), "delete with etag")
	_, err := s.Device(ctx(), p+"edge-1")
	wantKind(t, err, fault.NotFound, "deleted device")
	for _, m := range []string{"", hub.EdgeAgent, hub.EdgeHub} {
		_, err := s.Twin(ctx(), p+"edge-1", m)
		wantKind(t, err, fault.NotFound, "twin "+m+" of a deleted device")
	}
	_, err = s.Module(ctx(), p+"edge-1", hub.EdgeAgent)
	wantKind(t, err, fault.NotFound, "module of a deleted device")
	mods, err := s.Modules(ctx(), p+"edge-1")
	if err != nil || len(mods) != 0 {
		t.Errorf("modules of a deleted device: %v %v, want none", mods, err)
	}
	recs, err := s.TwinRecords(ctx(), true, hub.TwinKey{DeviceID: p}, 10)
	mustNil(t, err, "module twin records")
	recs = slices.DeleteFunc(recs, func(r hub.TwinRecord) bool { return !strings.HasPrefix(r.Twin.DeviceID, p) })
	if len(recs) != 2 || recs[0].Twin.DeviceID != p+"other" {
		t.Errorf("module twins left: %d, want the other device's 2", len(recs))
	}
	wantKind(t, s.DeleteDevice(ctx(), p+"edge-1", ""), fault.NotFound, "second delete")
	mustNil(t, s.DeleteDevice(ctx(), p+"other", ""), "unconditional delete")
}

func hubModules(t *testing.T, s Store, p string) {
	m := sampleModule(p+"d1", "m1")
	twin := hub.Twin{DeviceID: p + "d1", ModuleID: "m1", ETag: "mt", Version: 1, DesiredVersion: 1, ReportedVersion: 1, Updated: t0}
	wantKind(t, s.CreateModule(ctx(), m, twin), fault.NotFound, "module of a missing device")
	mustNil(t, s.CreateIdentity(ctx(), sampleIdentity(p+"d1", false)), "create device")
	mustNil(t, s.CreateModule(ctx(), m, twin), "create module")
	wantKind(t, s.CreateModule(ctx(), m, twin), fault.Conflict, "second create")
	mustNil(t, s.CreateModule(ctx(), sampleModule(p+"d1", "$edgeAgent"), hub.Twin{DeviceID: p + "d1", ModuleID: "$edgeAgent"}), "create second module")
	got, err := s.Module(ctx(), p+"d1", "m1")
	mustNil(t, err, "read module")
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("module changed in the store (-want +got):\n%s", diff)
	}
	gotTwin, err := s.Twin(ctx(), p+"d1", "m1")
	mustNil(t, err, "module twin")
	if diff := cmp.Diff(twin, gotTwin); diff != "" {
		t.Errorf("module twin (-want +got):\n%s", diff)
	}
	mods, err := s.Modules(ctx(), p+"d1")
	mustNil(t, err, "list")
	if len(mods) != 2 || mods[0].ID != "$edgeAgent" || mods[1].ID != "m1" {
		t.Errorf("modules = %v, want $edgeAgent, m1 in order", mods)
	}

	upd := m
	upd.PrimaryKey, upd.ETag = "bmV3LXByaW1hcnkta2V5LTEyMzQ1Ng==", "m-2"
	wantKind(t, s.UpdateModule(ctx(), upd, "stale"), fault.PreconditionFailed, "stale etag")
	mustNil(t, s.UpdateModule(ctx(), upd, m.ETag), "update with etag")
	got, _ = s.Module(ctx(), p+"d1", "m1")
	if got.PrimaryKey != upd.PrimaryKey || got.ETag != "m-2" {
		t.Errorf("after update: %+v", got)
	}
	missing := upd
	missing.ID = "nope"
	wantKind(t, s.UpdateModule(ctx(), missing, ""), fault.NotFound, "update of a missing module")

	wantKind(t, s.DeleteModule(ctx(), p+"d1", "m1", "stale"), fault.PreconditionFailed, "delete with stale etag")
	mustNil(t, s.DeleteModule(ctx(), p+"d1", "m1", "m-2"), "delete")
	_, err = s.Twin(ctx(), p+"d1", "m1")
	wantKind(t, err, fault.NotFound, "twin of a deleted module")
	wantKind(t, s.DeleteModule(ctx(), p+"d1", "m1", ""), fault.NotFound, "second delete")
	if _, err := s.Twin(ctx(), p+"d1", ""); err != nil {
		t.Errorf("deleting a module removed the device twin: %v", err)
	}
}
