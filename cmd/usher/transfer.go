package main

// `usher enrollment export`, `usher enrollment import` and `usher migrate`
// move enrollments and enrollment groups through internal/transfer's
// pipeline: JSON Lines out of and into a DPS, or from one DPS to another.
// docs/migration.md is the user's guide.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/transfer"
)

// progressEvery is how often a run whose stderr is not a terminal prints a
// progress line.
const progressEvery = 10 * time.Second

func enrollmentExportCommand(c *dpsCLI) *cobra.Command {
	var (
		where, out string
		keys       bool
		parallel   int
		pageSize   int
		kind       = enumFlag{allowed: []string{"all", "individual", "group"}, value: "all"}
	)
	cmd := &cobra.Command{
		Use:   "export [--where CONDITION] [--include-keys] [--kind all|individual|group] [--out FILE]",
		Short: "Write enrollments and enrollment groups as JSON Lines (keys only with --include-keys)",
		Long: `Write every enrollment group and individual enrollment (groups first, each
in the service's order) as JSON Lines, one record a line:

  {"version":1,"kind":"enrollmentGroup","enrollmentGroup":{…}}
  {"version":1,"kind":"enrollment","enrollment":{…}}

The records are the service API's own JSON without what the service assigns
(etag, createdDateTimeUtc, lastUpdatedDateTimeUtc, registrationState), so an
export of a service that imported an export is byte-identical to it. Keys are
fetched through attestationmechanism only with --include-keys (several
requests in flight); without it the lines carry no keys. The export streams:
one page of the query is in memory at a time. Works against Azure DPS too.
Format and rules: docs/migration.md.

` + connectionHelp,
		Example: `  usher enrollment export > enrollments.jsonl
  usher enrollment export --include-keys --out backup.jsonl
  usher enrollment export --kind individual --where "initialTwin.tags.site = 'berlin'"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := transfer.Query{Where: where, Keys: keys, PageSize: pageSize, Parallel: parallel}
			switch kind.value {
			case "individual":
				q.Kinds = []transfer.Kind{transfer.KindEnrollment}
			case "group":
				q.Kinds = []transfer.Kind{transfer.KindGroup}
			}
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				defer cl.CloseIdleConnections()
				w := c.e.stdout
				var f *os.File
				if out != "" && out != "-" {
					// Written beside the target and renamed once complete,
					// so an interrupted export leaves no partial file;
					// CreateTemp makes it 0600, as keys need.
					var err error
					if f, err = os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".partial-*"); err != nil {
						return err
					}
					defer func() { f.Close(); os.Remove(f.Name()) }()
					w = f
				}
				p := newTransferProgress(c.e, "exported")
				n, err := transfer.Export(ctx, cl, newRetry(c.e), q, w, p)
				if err != nil {
					var apiErr *client.APIError
					if where != "" && kind.value == "all" && errors.As(err, &apiErr) && apiErr.Status == http.StatusBadRequest {
						err = fmt.Errorf("%w; --where applies to groups and individual enrollments alike: for fields only one kind has, add --kind individual or --kind group", err)
					}
					return fmt.Errorf("export stopped after %d records: %w", n, err)
				}
				if f != nil {
					if err := f.Close(); err != nil {
						return err
					}
					if err := os.Rename(f.Name(), out); err != nil {
						return err
					}
					fmt.Fprintf(c.e.stderr, "exported %d records to %s\n", n, out)
				}
				return nil
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&where, "where", "", `query condition, as in "SELECT * FROM … WHERE <condition>"; applies to both kinds (use --kind for fields only one has)`)
	fs.BoolVar(&keys, "include-keys", false, "include the symmetric keys (fetched through attestationmechanism); the output is then a secret")
	fs.Var(&kind, "kind", "what to export: all, individual or group")
	fs.StringVar(&out, "out", "", "file to write (mode 0600, replaced only when the export is complete) instead of stdout")
	fs.IntVar(&parallel, "parallel", 8, "key requests in flight")
	fs.IntVar(&pageSize, "page-size", 1000, "records per query page (x-ms-max-item-count)")
	return cmd
}

func enrollmentImportCommand(c *dpsCLI) *cobra.Command {
	var (
		in       string
		opts     transfer.ImportOptions
		parallel int
	)
	cmd := &cobra.Command{
		Use:   "import [--in FILE|-] [--dry-run] [--atomic]",
		Short: "Create or update enrollments and groups from JSON Lines (as export writes them)",
		Long: `Read JSON Lines as ` + "`usher enrollment export`" + ` writes them (stdin by
default) and make the DPS hold the same: each record is compared with what the
DPS holds and created when missing, updated when different, and left alone when
equal, so importing twice changes nothing the second time. Writes go in bulk
batches of 10 (mode "update", which creates or replaces), retried on 429 and
503 after their Retry-After.

Keys: a line without keys keeps the DPS's keys when it updates a record, and
gets generated keys when it creates one. Members a line leaves out that the
service fills in (provisioningStatus, capabilities, reprovisionPolicy,
allocationPolicy, iotHubs) keep the DPS's value on update.

A bad line (not JSON, unknown kind, invalid ID, …) is reported with its line
number and the rest still imports; so is a record the DPS refuses, with the
server's message. The exit status is non-zero when anything failed.

--atomic reads every line first and writes nothing if one is bad (stdin is
spooled to a temporary file); if the DPS then refuses a record, everything
this run wrote is undone (records it created are deleted, records it updated
get back what they held, keys included) and the summary says so.
--dry-run compares only and reports what would be created or updated.

The summary goes to stdout (JSON, or text with -o table), progress to stderr.
Details: docs/migration.md.

` + connectionHelp,
		Example: `  usher enrollment import < enrollments.jsonl
  usher enrollment import --in enrollments.jsonl --dry-run -o table
  usher enrollment import --in enrollments.jsonl --atomic`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r io.Reader = c.e.stdin
			if in != "" && in != "-" {
				f, err := os.Open(in)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			return c.withClient(cmd, func(ctx context.Context, cl *client.Client) error {
				defer cl.CloseIdleConnections()
				opts.Parallel = parallel
				opts.Retry = newRetry(c.e)
				opts.Progress = newTransferProgress(c.e, "records")
				if f, ok := r.(*os.File); ok && opts.Progress.Terminal {
					opts.Progress.Total = countLines(f)
				}
				s, err := transfer.Import(ctx, cl, r, opts)
				if perr := printSummary(c.e, c.out, s); perr != nil && err == nil {
					err = perr
				}
				if err != nil {
					return err
				}
				return summaryError(s)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&in, "in", "-", "file to read; - for stdin")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "compare and report; write nothing")
	fs.BoolVar(&opts.Atomic, "atomic", false, "all or nothing: check every line first, and undo this run's writes if the DPS refuses a record")
	fs.IntVar(&parallel, "parallel", 8, "requests in flight")
	return cmd
}

// migrateFlags are the flags of `usher migrate`.
type migrateFlags struct {
	from, to               string
	fromAddress, toAddress string
	fromCA, toCA           string
	state                  string
	dryRun                 bool
	parallel, pageSize     int
	out                    outputFormat
}

func migrateCommand(e *env) *cobra.Command {
	f := &migrateFlags{out: outputJSON}
	cmd := &cobra.Command{
		Use:   "migrate --from CONNECTION_STRING --to CONNECTION_STRING [flags]",
		Short: "Copy every enrollment and group, keys included, from one DPS to another (Azure or Usher)",
		Long: `Copy every enrollment group and individual enrollment, keys included, from one
DPS to another through the service API both speak: query pages and
attestationmechanism on the source, bulk batches of 10 on the target, 429 and
503 retried after their Retry-After. Azure DPS → Usher, Usher → Azure DPS and
Usher → Usher all work; --from and --to are service connection strings with
enrollment read (source) and write (target) rights, as ` + "`az iot dps policy`" + `
shows them.

Each record is compared with the target first: created when missing, updated
when different, left alone when equal. The run checkpoints to --state after
every batch the target confirms (default: usher-migrate-<from host>-to-<to
host>.json in the current directory); run the same command again after an
interruption and it resumes there. A replayed batch creates no duplicates. If
the source no longer accepts the saved continuation token (Azure's expire),
that kind is read again from the start, cheaply, and the summary says so. When
the checkpoint says the migration finished, a new run starts a fresh pass.

The summary goes to stdout (JSON, or text with -o table), progress to stderr;
the exit status is non-zero when a record failed. Details: docs/migration.md.`,
		Example: `  usher migrate --from "$AZURE_DPS_CONNECTION_STRING" --to "$(usher info --json | jq -r .serviceConnectionString)" \
    --to-ca-file usher-data/tls/ca.pem
  usher migrate --from "HostName=old.example;…" --to "HostName=new.example;…" --to-address 10.0.0.5:443 --state move.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd.Context(), e, f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.from, "from", "", "service connection string of the source DPS (needs EnrollmentRead)")
	fs.StringVar(&f.to, "to", "", "service connection string of the target DPS (needs EnrollmentRead and EnrollmentWrite)")
	fs.StringVar(&f.fromAddress, "from-address", "", "host:port to dial for the source instead of its HostName:443")
	fs.StringVar(&f.toAddress, "to-address", "", "host:port to dial for the target instead of its HostName:443")
	fs.StringVar(&f.fromCA, "from-ca-file", "", "PEM file of a CA to trust for the source (besides the system roots)")
	fs.StringVar(&f.toCA, "to-ca-file", "", "PEM file of a CA to trust for the target (besides the system roots)")
	fs.StringVar(&f.state, "state", "", "checkpoint file (default usher-migrate-<from host>-to-<to host>.json in the current directory)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "compare and report; write nothing, keep no checkpoint")
	fs.IntVar(&f.parallel, "parallel", 8, "requests in flight on each side")
	fs.IntVar(&f.pageSize, "page-size", 100, "source records per query page")
	fs.VarP(&f.out, "output", "o", "summary format: json or table")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func runMigrate(ctx context.Context, e *env, f *migrateFlags) error {
	dial := func(which, cs, address, ca string) (*client.Client, string, error) {
		parsed, err := sas.ParseConnectionString(cs)
		if err != nil {
			return nil, "", fmt.Errorf("--%s: %w", which, err)
		}
		cl, err := client.New(parsed, client.Options{Address: address, CAFile: ca})
		if err != nil {
			return nil, "", fmt.Errorf("--%s: %w", which, err)
		}
		return cl, parsed.HostName, nil
	}
	var clients []*client.Client
	defer func() {
		for _, cl := range clients {
			cl.CloseIdleConnections()
		}
	}()
	from, fromHost, err := dial("from", f.from, f.fromAddress, f.fromCA)
	if err != nil {
		return err
	}
	to, toHost, err := dial("to", f.to, f.toAddress, f.toCA)
	if err != nil {
		return err
	}
	clients = append(clients, from, to)
	state := f.state
	if state == "" {
		state = defaultStatePath(fromHost, toHost)
	}
	opts := transfer.MigrateOptions{
		FromHost: fromHost, ToHost: toHost, StatePath: state, DryRun: f.dryRun,
		Parallel: f.parallel, PageSize: f.pageSize,
		Retry:    newRetry(e),
		Progress: newTransferProgress(e, "records"),
		Log:      func(msg string) { fmt.Fprintln(e.stderr, "usher migrate:", msg) },
	}
	s, err := transfer.Migrate(ctx, from, to, opts)
	if perr := printSummary(e, f.out, s); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return fmt.Errorf("migration interrupted (run the same command again to resume from %s): %w", state, err)
	}
	return summaryError(s)
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// defaultStatePath names a migration's checkpoint after its two hosts.
func defaultStatePath(from, to string) string {
	clean := func(h string) string { return strings.Trim(unsafeFileChars.ReplaceAllString(h, "_"), "_") }
	return "usher-migrate-" + clean(from) + "-to-" + clean(to) + ".json"
}

// newRetry returns the retry policy of a command, telling stderr about
// long waits.
func newRetry(e *env) *transfer.Retry {
	return &transfer.Retry{OnWait: func(err error, wait time.Duration) {
		if wait >= 5*time.Second {
			fmt.Fprintf(e.stderr, "usher: %v; retrying in %s\n", err, wait.Round(time.Second))
		}
	}}
}

// newTransferProgress reports on stderr: a redrawn line on a terminal, a plain line
// every progressEvery otherwise.
func newTransferProgress(e *env, verb string) *transfer.Progress {
	return &transfer.Progress{W: e.stderr, Terminal: isTerminal(e.stderr), Every: progressEvery, Verb: verb}
}

// countLines counts the lines of a regular file and rewinds it; 0 when it
// is not one (a pipe is read once).
func countLines(f *os.File) int {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	n := 0
	buf := make([]byte, 256<<10)
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err != nil {
			break
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0
	}
	return n
}

// printSummary writes a run's summary to stdout as JSON or text.
func printSummary(e *env, out outputFormat, s transfer.Summary) error {
	if s.Failures == nil {
		s.Failures = []transfer.Failure{}
	}
	if out == outputTable {
		return s.WriteText(e.stdout)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// summaryError is the command's error when records failed.
func summaryError(s transfer.Summary) error {
	switch {
	case s.RolledBack:
		return fmt.Errorf("%d records failed; this run's %d writes were rolled back", s.Failed, s.Undone)
	case s.Failed > 0 && s.Total() == s.Failed && !s.DryRun && s.Created+s.Updated == 0 && len(s.Notes) > 0:
		return fmt.Errorf("%d bad lines; nothing was written", s.Failed)
	case s.Failed > 0:
		return fmt.Errorf("%d of %d records failed", s.Failed, s.Total())
	}
	return nil
}
