package usher_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph guards the architecture: domain packages know nothing of
// transports or storage, and pure packages stay pure (STYLE.md habit 14).
func TestImportGraph(t *testing.T) {
	const mod = "github.com/usher-iot/usher/"
	transportOrStore := []string{"net/http", "database/sql", mod + "internal/httpapi", mod + "internal/mqttapi", mod + "internal/store", mod + "internal/wire", mod + "internal/console", mod + "internal/client", "github.com/jackc/pgx"}
	rules := []struct {
		pkg    string
		banned []string
	}{
		{"internal/dps", transportOrStore},
		{"internal/hub", append(transportOrStore, mod+"internal/dps")},
		{"internal/access", transportOrStore},
		{"internal/instance", transportOrStore},
		{"internal/sas", append(transportOrStore, mod+"internal/dps", mod+"internal/access")},
		{"internal/twinquery", append(transportOrStore, mod+"internal/dps", mod+"internal/fault")},
		{"internal/fault", []string{mod}},
		{"internal/syncbuf", []string{mod}},
		{"internal/store/schema", []string{mod, "database/sql"}},
		{"internal/throttle", append(transportOrStore, mod+"internal/dps", mod+"internal/hub")},
		{"internal/audit", transportOrStore},
		{"internal/seed", transportOrStore},
		// Export, import and migrate speak only the service API.
		{"internal/transfer", []string{"database/sql", mod + "internal/httpapi", mod + "internal/mqttapi", mod + "internal/store", mod + "internal/console", "github.com/jackc/pgx"}},
		// Transports record metrics through interfaces of their own.
		{"internal/httpapi", []string{"github.com/prometheus"}},
		{"internal/mqttapi", []string{"github.com/prometheus"}},
		// The stores share only the conformance suite, never each other.
		{"internal/store/sqlite", []string{mod + "internal/store/postgres", "github.com/jackc/pgx"}},
		{"internal/store/postgres", []string{mod + "internal/store/sqlite", "modernc.org/sqlite"}},
	}
	deps := listDeps(t)
	for _, r := range rules {
		imports, ok := deps[mod+r.pkg]
		if !ok {
			continue // not written yet (e.g. internal/hub before its issue)
		}
		for _, imp := range imports {
			for _, b := range r.banned {
				if imp == b || strings.HasPrefix(imp, b+"/") {
					t.Errorf("%s imports %s (directly or not), which it must not", r.pkg, imp)
				}
			}
		}
	}
}

// listDeps maps each package of the module to its transitive imports.
func listDeps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Deps", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{}
	dec := json.NewDecoder(out)
	for {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		deps[p.ImportPath] = p.Deps
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if len(deps) < 5 {
		t.Fatalf("go list found only %d packages", len(deps))
	}
	return deps
}
