// Command usher is a self-hosted, Azure-compatible IoT Device Provisioning
// Service with a built-in IoT Hub. One binary: `usher serve` runs the
// server; the other subcommands manage it the way `az iot dps` manages Azure
// DPS.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

// gcPercent is the garbage collector's target when GOGC is not set. Usher's
// live heap is small (tens of MiB), so Go's default of 100 collects very
// often under load; 400 spent about a tenth less CPU per registration in
// `usher bench` (docs/benchmarks.md) for some 15 MiB more peak RSS.
const gcPercent = 400

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// env is what a command may read of its surroundings; tests pass their own.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// timeouts of `usher serve`; zero takes the defaults. Tests shorten
	// them.
	timeouts timeouts
	// hangup, when set, stands in for SIGHUP to `usher serve` (tests send
	// on it); nil subscribes to the process's SIGHUP while serving.
	hangup <-chan os.Signal
}

// threeStateFlags are boolean flags that, as in the Azure CLI, take an
// optional separate value: "--edge-enabled", "--edge-enabled true" and
// "--edge-enabled=false" all work.
var threeStateFlags = []string{"--edge-enabled", "--ee"}

// joinBoolValues rewrites "--flag true|false" into "--flag=true|false" for
// the given boolean flags, because a boolean flag never consumes the next
// argument on its own.
func joinBoolValues(args, flags []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if i+1 < len(args) && slices.Contains(flags, a) {
			if v := strings.ToLower(args[i+1]); v == "true" || v == "false" {
				out = append(out, a+"="+v)
				i++
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// run executes one usher command line. Errors are printed to stderr here.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "usher",
		Short:         "Usher: a self-hosted, Azure-compatible IoT device provisioning service with a built-in IoT Hub",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       currentVersion().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetArgs(joinBoolValues(args, threeStateFlags))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		serveCommand(e),
		infoCommand(e),
		policyCommand(e),
		enrollmentCommand(e),
		groupCommand(e),
		deviceCommand(e),
		hubCommand(e),
		benchCommand(e),
		auditCommand(e),
		backupCommand(e),
		restoreCommand(e),
		versionCommand(e),
		seedCommand(e),
		migrateCommand(e),
	)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "usher:", err)
		return err
	}
	return nil
}
