package main

// `usher bench` is the load generator: it provisions many simulated devices
// of one enrollment group through the DPS and reports throughput, latency,
// errors and the server's cost, optionally against the machine's bare TLS
// handshake rate (package bench does the measuring).

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/usher-iot/usher/internal/bench"
	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/deviceclient"
	"github.com/usher-iot/usher/internal/wire"
)

// benchFlags are the flags of `usher bench`.
type benchFlags struct {
	devices       int
	concurrency   int
	rate          float64
	transport     enumFlag
	keepAlive     bool
	groupID       string
	prefix        string
	retryAfterCap time.Duration
	timeout       time.Duration
	pid           int
	asJSON        bool
	baseline      bool
	local         bool
	idScope       string
	endpoint      string
	conn          connFlags
}

func benchCommand(e *env) *cobra.Command {
	f := &benchFlags{transport: enumFlag{allowed: []string{deviceclient.HTTPS, deviceclient.MQTT}, value: deviceclient.HTTPS}}
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Provision many simulated devices and report throughput, latency and errors",
		Long: `Load-test a DPS: create (or reuse) a symmetric-key enrollment group, then
register --devices simulated devices of it, --concurrency at a time, each with
its key derived from the group's, the way the Azure IoT device SDKs register.

Each device uses a fresh TLS connection with session resumption off, as a
fleet switched on at once does; --keep-alive shares HTTPS connections
instead (MQTT always connects once per device). Against a loopback address
the connections come from source addresses spread over 127.1.0.0/16 and
close with a reset, so that thousands of connections exhaust neither
ephemeral ports nor TIME_WAIT slots. The server's retry-after between the
registration and its poll is honoured as devices do (Usher asks for 1 s);
--retry-after-cap lowers it, and --retry-after-cap 0 polls at once, which
measures the server rather than the wait.

--rate offers registrations at a fixed rate instead of as fast as the
concurrency allows (open loop): run once unpaced to find the peak, then at,
say, 80% of it to read latency below saturation.

The report gives registrations/s, latency per registration (from the first
byte sent to "assigned") at p50/p95/p99/max, and errors by kind (auth,
refused, timeout, reset, tls, ports, failed, http NNN, …). With --pid it adds
the server's CPU seconds (/proc/PID/stat) and peak RSS (VmHWM); with --local
it adds those of this process, which then holds both server and load
generator.

--baseline also measures bare TLS handshakes/s on this machine: a minimal
in-process TLS server with the target's certificate and key (from the data
directory's tls/; else a generated ECDSA P-256 one) and the same client TLS
configuration, the same concurrency and as many handshakes as --devices. The
report then states the ratio registrations/s ÷ bare handshakes/s, with the
TLS version and curve negotiated.

The DPS is found as ` + "`usher device register`" + ` finds it: --data-dir (else
USHER_DATA_DIR, else ./usher-data) gives the ID scope, endpoint, CA and owner
connection string of a local server; for another DPS give --login with a
service connection string, --id-scope, --endpoint and --ca-file. --local
instead starts a throw-away server in a temporary data directory in this
process for the run.

A progress bar is drawn on stderr when it is a terminal (a line every few
seconds otherwise, none with --json). The command fails when any
registration failed, after printing the report.`,
		Example: `  # from a fresh clone: a throw-away in-process server, fresh TLS per device
  go run ./cmd/usher bench --local --devices 5000 --concurrency 64 --retry-after-cap 0 --baseline

  # against a running server (its data directory), over MQTT, with its CPU and RSS
  usher bench --data-dir ./usher-data --transport mqtt --devices 20000 --concurrency 128 \
    --retry-after-cap 0 --pid "$(pidof usher)" --baseline

  # another DPS, machine-readable
  usher bench --login "$DPS_CONNECTION_STRING" --id-scope 0ne00000A0A --endpoint dps.example.com \
    --ca-file ca.pem --devices 500 --concurrency 16 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("retry-after-cap") && f.retryAfterCap == 0 {
				f.retryAfterCap = -1 // poll at once
			}
			return f.run(cmd.Context(), e)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&f.devices, "devices", 1000, "number of simulated devices to register")
	fs.IntVar(&f.concurrency, "concurrency", 64, "registrations in flight at once")
	fs.Float64Var(&f.rate, "rate", 0, "start registrations at this many per second (open loop, at most --concurrency in flight; latency then counts from each scheduled start); 0 starts them as fast as --concurrency allows")
	fs.Var(&f.transport, "transport", "https or mqtt")
	fs.BoolVar(&f.keepAlive, "keep-alive", false, "share keep-alive HTTPS connections between devices instead of a fresh TLS connection per device")
	fs.StringVar(&f.groupID, "group-id", "usher-bench", "enrollment group to register the devices in; created (symmetric key) if missing")
	fs.StringVar(&f.prefix, "prefix", "", "registration ID prefix; IDs are PREFIX00000000, … (default bench-<start time>-, new devices every run)")
	fs.DurationVar(&f.retryAfterCap, "retry-after-cap", 0, "cap on the server's retry-after before polling (default: honour it; 0 polls at once)")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up on one registration after this long")
	fs.IntVar(&f.pid, "pid", 0, "PID of the server process, to report its CPU time and peak RSS (Linux /proc)")
	fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON, without a progress bar")
	fs.BoolVar(&f.baseline, "baseline", false, "also measure bare TLS handshakes/s with the same certificate and client TLS configuration, and report the ratio")
	fs.BoolVar(&f.local, "local", false, "start a throw-away server in a temporary data directory in this process for the run")
	fs.StringVar(&f.idScope, "id-scope", "", "ID scope of the DPS (default: the data directory's)")
	fs.StringVar(&f.endpoint, "endpoint", "", "DPS host[:port] the devices connect to (default: the local server's address for --transport)")
	f.conn.register(fs)
	return cmd
}

// benchTarget is what run resolves from the flags.
type benchTarget struct {
	service *client.Client
	target  bench.Target
	dataDir string // "" when the DPS is not described by a data directory
}

func (f *benchFlags) run(ctx context.Context, e *env) error {
	if f.rate < 0 {
		return fmt.Errorf("--rate must not be negative (got %g)", f.rate)
	}
	if f.devices <= 0 || f.concurrency <= 0 {
		return fmt.Errorf("--devices and --concurrency must be positive (got %d and %d)", f.devices, f.concurrency)
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, not %s", f.timeout)
	}
	if f.local && (f.conn.login != "" || f.conn.connectionString != "" || f.conn.dataDir != "" || f.endpoint != "" || f.idScope != "") {
		return errors.New("--local runs its own server: give no --login, --data-dir, --endpoint or --id-scope")
	}
	var server *bench.Usage
	if f.local {
		dir, stop, err := startLocalServer(ctx)
		if err != nil {
			return err
		}
		defer stop()
		f.conn.dataDir = dir
		server = &bench.Usage{PID: os.Getpid(), Note: "in-process server (--local): CPU and RSS include the load generator"}
	} else if f.pid > 0 {
		server = &bench.Usage{PID: f.pid}
	}
	bt, err := f.resolve(ctx, e)
	if err != nil {
		return err
	}
	groupKey, err := benchGroup(ctx, bt.service, f.groupID)
	if err != nil {
		return err
	}
	bt.target.GroupKey = groupKey

	var cpu0 time.Duration
	if server != nil {
		if cpu0, err = bench.CPUTime(server.PID); err != nil {
			return fmt.Errorf("--pid %d: %w", server.PID, err)
		}
	}
	do, release := bt.target.Registrations()
	out := bench.Run(ctx, bench.Load{Total: f.devices, Concurrency: f.concurrency, Rate: f.rate, Do: do, Progress: f.progress(e, "")})
	release()
	rep := bench.NewReport(out)
	rep.Transport, rep.KeepAlive, rep.Concurrency, rep.OfferedRate = bt.target.Transport, bt.target.KeepAlive, f.concurrency, f.rate
	rep.SourceAddressSpread = bench.NewDialers(bt.target.Endpoint, true).Spread()
	rep.RetryAfter = retryAfterText(bt.target.RetryAfterCap)
	if server != nil {
		if cpu1, err := bench.CPUTime(server.PID); err == nil {
			server.CPUSeconds = (cpu1 - cpu0).Seconds()
			if out.Succeeded > 0 {
				server.CPUPerRegistrationMs = server.CPUSeconds * 1000 / float64(out.Succeeded)
			}
		}
		server.PeakRSSBytes, _ = bench.PeakRSS(server.PID)
		rep.Server = server
	}
	if f.baseline && ctx.Err() == nil {
		b, err := bench.MeasureBaseline(ctx, bench.BaselineOptions{
			Cert: serverCert(bt.dataDir), Client: bt.target.TLS,
			Count: f.devices, Concurrency: f.concurrency, Progress: f.progress(e, "baseline "),
		})
		if err != nil {
			return err
		}
		rep.SetBaseline(b)
	}
	if f.asJSON {
		err = printJSON(e, rep)
	} else {
		err = rep.WriteText(e.stdout)
	}
	if err != nil {
		return err
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d of %d registrations failed", rep.Errors, rep.Devices)
	}
	return nil
}

// resolve finds the DPS: its service API (for the group) and where and
// how devices connect.
func (f *benchFlags) resolve(ctx context.Context, e *env) (benchTarget, error) {
	bt := benchTarget{target: bench.Target{
		Endpoint: f.endpoint, IDScope: f.idScope, Prefix: f.prefix, Transport: f.transport.value,
		KeepAlive: f.keepAlive, RetryAfterCap: f.retryAfterCap, Timeout: f.timeout,
	}}
	if bt.target.Prefix == "" {
		bt.target.Prefix = "bench-" + time.Now().UTC().Format("20060102T150405") + "-"
	}
	if f.keepAlive && bt.target.Transport == deviceclient.MQTT {
		return bt, errors.New("--keep-alive applies to https only: an MQTT device connects once with its own client ID")
	}
	svc, err := f.conn.dial(ctx, e)
	if err != nil {
		return bt, err
	}
	bt.service = svc

	opts := deviceclient.Options{Endpoint: f.endpoint, IDScope: f.idScope, Transport: bt.target.Transport}
	caFile := f.conn.caFile
	usesLogin := f.conn.login != "" || f.conn.connectionString != "" || (f.conn.dataDir == "" && e.getenv(dpsTarget.env) != "")
	if opts.IDScope == "" || opts.Endpoint == "" || caFile == "" || !usesLogin {
		loc := f.conn.where.locate(f.conn.dataDir, e)
		dir := loc.DataDir
		info, err := readStoreInfo(ctx, loc)
		switch {
		case err == nil:
			if err := (&deviceRegisterFlags{}).fromInfo(&opts, &caFile, info, dir); err != nil {
				return bt, err
			}
			bt.dataDir = dir
		case opts.IDScope == "" || opts.Endpoint == "":
			return bt, fmt.Errorf("give --id-scope and --endpoint, or point --data-dir at a server's data directory: %w", err)
		}
	}
	serverName := opts.ServerName
	if serverName == "" {
		host, _, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(opts.Endpoint, "https://"), "mqtts://"))
		if err != nil {
			host = opts.Endpoint
		}
		serverName = host
	}
	conf := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		if conf.RootCAs, err = caPool(caFile); err != nil {
			return bt, err
		}
	}
	bt.target.Endpoint, bt.target.IDScope, bt.target.TLS = withPort(opts.Endpoint, bt.target.Transport), opts.IDScope, conf
	return bt, nil
}

// withPort adds the transport's default port to an endpoint without one,
// so that the dialers see the address that is dialled.
func withPort(endpoint, transport string) string {
	e := endpoint
	if _, rest, ok := strings.Cut(e, "://"); ok {
		e = rest
	}
	e, _, _ = strings.Cut(e, "/")
	if _, _, err := net.SplitHostPort(e); err == nil {
		return e
	}
	port := "443"
	if transport == deviceclient.MQTT {
		port = "8883"
	}
	return net.JoinHostPort(strings.Trim(e, "[]"), port)
}

// benchGroup returns the primary key of the enrollment group, creating a
// symmetric-key group if there is none.
func benchGroup(ctx context.Context, cl *client.Client, id string) (string, error) {
	if _, err := cl.Group(ctx, id); err != nil {
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 404 {
			return "", fmt.Errorf("enrollment group %s: %w", id, err)
		}
		g := wire.EnrollmentGroup{EnrollmentGroupID: id, EnrollmentSettings: wire.EnrollmentSettings{
			Attestation: &wire.AttestationMechanism{Type: "symmetricKey"},
		}}
		if _, err := cl.PutGroup(ctx, g, ""); err != nil {
			return "", fmt.Errorf("creating enrollment group %s: %w", id, err)
		}
	}
	att, err := cl.GroupAttestation(ctx, id)
	if err != nil {
		return "", fmt.Errorf("enrollment group %s: %w", id, err)
	}
	if att.SymmetricKey == nil || att.SymmetricKey.PrimaryKey == nil || *att.SymmetricKey.PrimaryKey == "" {
		return "", fmt.Errorf("enrollment group %s has no symmetric key (attestation %q); pick another --group-id", id, att.Type)
	}
	return *att.SymmetricKey.PrimaryKey, nil
}

// serverCert loads the server certificate and key of a data directory, or
// returns nil (the baseline then generates an equivalent one).
func serverCert(dataDir string) *tls.Certificate {
	if dataDir == "" {
		return nil
	}
	c, err := tls.LoadX509KeyPair(filepath.Join(dataDir, "tls", "server.pem"), filepath.Join(dataDir, "tls", "server-key.pem"))
	if err != nil {
		return nil
	}
	return &c
}

// progress returns the Load progress callback: none with --json, a
// redrawn bar on a terminal, occasional lines otherwise.
func (f *benchFlags) progress(e *env, label string) func(bench.Snapshot) {
	if f.asJSON {
		return nil
	}
	p := &bench.ProgressWriter{W: e.stderr, Label: label, Terminal: isTerminal(e.stderr)}
	return p.Update
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func retryAfterText(c time.Duration) string {
	switch {
	case c < 0:
		return "not honoured (polls at once)"
	case c == 0:
		return "honoured"
	}
	return "capped at " + c.String()
}

// startLocalServer runs `usher serve` in this process on loopback with a
// temporary data directory and returns the directory once the server
// listens; stop ends it and removes the directory.
func startLocalServer(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "usher-bench-")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	logW := &syncBuilder{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"serve", "--data-dir", dir, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"},
			func(string) string { return "" }, strings.NewReader(""), pw, logW)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	stop := func() {
		cancel()
		<-done
		_ = os.RemoveAll(dir)
	}
	if err := awaitListening(pr); err != nil {
		stop()
		return "", nil, fmt.Errorf("--local: the server did not start: %v\n%s", err, logW.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	return dir, stop, nil
}

// awaitListening reads the server's stdout up to its connection string,
// which it prints once it listens.
func awaitListening(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "SharedAccessKeyName=") {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// syncBuilder collects the in-process server's log for an error message.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 64<<10 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
