package instance_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/access"
	"github.com/usher-iot/usher/internal/fault"
	"github.com/usher-iot/usher/internal/instance"
	"github.com/usher-iot/usher/internal/store/sqlite"
)

// TestBootstrapHubPolicies checks that a new installation has IoT Hub's
// default policies, and that only the owner comes back once deleted.
func TestBootstrapHubPolicies(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "usher.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := instance.Bootstrap(ctx, db, db); err != nil {
		t.Fatal(err)
	}
	rights := func() map[string][]string {
		ps, err := db.Policies(ctx, access.Hub)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, p := range ps {
			out[p.Name] = p.Rights.Names()
		}
		return out
	}
	want := map[string][]string{
		"iothubowner":       {"RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"},
		"service":           {"ServiceConnect"},
		"device":            {"DeviceConnect"},
		"registryRead":      {"RegistryRead"},
		"registryReadWrite": {"RegistryRead", "RegistryWrite"},
	}
	if diff := cmp.Diff(want, rights()); diff != "" {
		t.Errorf("hub policies after first start (-want +got):\n%s", diff)
	}

	for _, name := range []string{"registryRead", access.HubOwner} {
		if err := db.DeletePolicy(ctx, access.Hub, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := instance.Bootstrap(ctx, db, db); err != nil {
		t.Fatal(err)
	}
	got := rights()
	if _, ok := got["registryRead"]; ok {
		t.Errorf("a deleted default policy came back on restart")
	}
	if _, ok := got[access.HubOwner]; !ok {
		t.Errorf("iothubowner was not re-created")
	}
	if _, err := db.Policy(ctx, access.Hub, "nope"); !fault.Is(err, fault.NotFound) {
		t.Errorf("unknown policy: %v", err)
	}
}
