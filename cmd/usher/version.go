package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Release builds stamp these with the linker, for example
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD) -X main.buildDate=$(date -u +%FT%TZ)" ./cmd/usher
//
// They are never assigned at run time. Left empty, `usher version` reports
// what the Go toolchain recorded (runtime/debug.ReadBuildInfo): the module
// version for `go install …@version`, and the VCS revision, time and dirty
// flag for builds from a checkout.
var (
	version   string
	commit    string
	buildDate string
)

// versionInfo is what `usher version --json` prints. The JSON names are a
// contract.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"` // built from a checkout with uncommitted changes
	BuildDate string `json:"buildDate,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// linkerStamp is the -ldflags values.
type linkerStamp struct{ version, commit, buildDate string }

// buildVersion combines the linker's stamp (preferred) with the build
// information the toolchain embedded (ok is false when there is none).
func buildVersion(stamp linkerStamp, bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{Version: "devel", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if ok && bi != nil {
		if bi.GoVersion != "" {
			v.GoVersion = bi.GoVersion
		}
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.BuildDate = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if stamp.version != "" {
		v.Version = stamp.version
	}
	if stamp.commit != "" {
		v.Commit, v.Modified = stamp.commit, false
	}
	if stamp.buildDate != "" {
		v.BuildDate = stamp.buildDate
	}
	return v
}

// currentVersion is this binary's version.
func currentVersion() versionInfo {
	bi, ok := debug.ReadBuildInfo()
	return buildVersion(linkerStamp{version, commit, buildDate}, bi, ok)
}

// short is the version and full commit, as a backup's manifest records
// the Usher that wrote it.
func (v versionInfo) short() string {
	if v.Commit == "" {
		return v.Version
	}
	return v.Version + " " + v.Commit
}

// String is the one line `usher --version` prints.
func (v versionInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usher %s", v.Version)
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		fmt.Fprintf(&b, " (commit %s", c)
		if v.Modified {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	}
	if v.BuildDate != "" {
		fmt.Fprintf(&b, " built %s", v.BuildDate)
	}
	fmt.Fprintf(&b, " %s %s", v.GoVersion, v.Platform)
	return b.String()
}

func (v versionInfo) write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := fmt.Fprintln(w, v.String())
	return err
}

func versionCommand(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print Usher's version, commit, build date and Go version",
		Long: `Print the version of this binary: the release version (or "devel"), the
commit it was built from (marked modified when the checkout had uncommitted
changes), the build date when known, the Go version and the platform.
` + "`usher --version`" + ` prints the same line.`,
		Example: `  usher version
  usher version --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return currentVersion().write(e.stdout, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (version, commit, modified, buildDate, goVersion, platform)")
	return cmd
}
