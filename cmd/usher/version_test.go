package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuildVersion(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	vcs := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-20T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		name  string
		stamp linkerStamp
		bi    *debug.BuildInfo
		ok    bool
		want  versionInfo
		line  string
	}{
		{"devel/no build info", linkerStamp{}, nil, false,
			versionInfo{Version: "devel", GoVersion: runtime.Version(), Platform: platform},
			"usher devel " + runtime.Version() + " " + platform},
		{"checkout/vcs settings", linkerStamp{}, vcs, true,
			versionInfo{Version: "devel", Commit: "0123456789abcdef0123", Modified: true, BuildDate: "2026-11-20T10:00:00Z", GoVersion: "go1.99.1", Platform: platform},
			"usher devel (commit 0123456789ab, modified) built 2026-11-20T10:00:00Z go1.99.1 " + platform},
		{"go install/module version", linkerStamp{}, &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v0.8.0"}}, true,
			versionInfo{Version: "v0.8.0", GoVersion: "go1.99.1", Platform: platform},
			"usher v0.8.0 go1.99.1 " + platform},
		{"release/linker stamp wins", linkerStamp{"v1.2.0", "fedcba", "2026-12-01T00:00:00Z"}, vcs, true,
			versionInfo{Version: "v1.2.0", Commit: "fedcba", BuildDate: "2026-12-01T00:00:00Z", GoVersion: "go1.99.1", Platform: platform},
			"usher v1.2.0 (commit fedcba) built 2026-12-01T00:00:00Z go1.99.1 " + platform},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := buildVersion(tc.stamp, tc.bi, tc.ok)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("buildVersion (-want +got):\n%s", diff)
			}
			if got.String() != tc.line {
				t.Errorf("String() = %q, want %q", got.String(), tc.line)
			}
		})
	}
}

// TestVersionCommand runs `usher version`, `usher version --json` and
// `usher --version` as a user would.
func TestVersionCommand(t *testing.T) {
	s := &testServer{DataDir: t.TempDir()} // no server: version needs none
	line := strings.TrimSpace(s.mustUsher(t, "version"))
	if !strings.HasPrefix(line, "usher ") || !strings.Contains(line, runtime.Version()) {
		t.Errorf("usher version = %q, want usher <version> … %s", line, runtime.Version())
	}
	if got := strings.TrimSpace(s.mustUsher(t, "--version")); got != line {
		t.Errorf("usher --version = %q, want %q", got, line)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(s.mustUsher(t, "version", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "goVersion", "platform"} {
		if s, _ := v[k].(string); s == "" {
			t.Errorf("version --json lacks %q: %v", k, v)
		}
	}
	if v["goVersion"] != runtime.Version() {
		t.Errorf("goVersion = %v, want %s", v["goVersion"], runtime.Version())
	}
	if _, _, err := s.usher(t, "version", "extra"); err == nil {
		t.Error("usher version extra: no error")
	}
}
