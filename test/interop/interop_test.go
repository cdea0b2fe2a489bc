//go:build linux

// Package interop drives the unmodified Azure IoT Node.js SDKs against a real
// `usher serve` over real TLS on port 443.
//
// TestMain builds ./cmd/usher, starts it on 127.0.0.2 (this package's own
// loopback address) with a fresh data directory, and stops it with SIGTERM
// at the end. Each test runs a node:test file from this directory with the
// server's CA in NODE_EXTRA_CA_CERTS. The SDK behaviour these tests rely on is
// described in shared/spec/wire: dps-service-enrollments.md for the service
// SDK, dps-https-register.md and dps-mqtt-register.md for the device SDK,
// hub-service-registry.md for the hub Registry that checks what provisioning
// created, and hub-device-mqtt.md for the hub device SDK that TestHubSDK
// drives over MQTT on 8883.
//
// Binding 443 needs root (or a lowered net.ipv4.ip_unprivileged_port_start), and the SDKs must be
// installed with `npm ci --prefix test/interop`; without either the tests
// fail. A developer can opt out with USHER_SKIP_INTEROP=1, which is ignored
// when CI is set.
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// host is the loopback address this package owns; the SDKs dial it on 443.
	host = "127.0.0.2"

	optOutEnv = "USHER_SKIP_INTEROP"
	npmHint   = "run `npm ci --prefix test/interop`"

	// bannerMarker is in the last line usher serve prints once it listens.
	bannerMarker = "SharedAccessKeyName="

	startTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
	// nodeTimeout bounds one node:test file. Device registrations take about
	// a second each (the server answers retry-after 1), so leave room.
	nodeTimeout = 180 * time.Second
)

// serverInfo is the output of `usher info --json`.
type serverInfo struct {
	IDScope                 string `json:"idScope"`
	HostName                string `json:"hostName"`
	HTTPSAddr               string `json:"httpsAddr"`
	MQTTAddr                string `json:"mqttAddr"`
	ServiceConnectionString string `json:"serviceConnectionString"`
	HubHostName             string `json:"hubHostName"`
	HubConnectionString     string `json:"hubConnectionString"`
	CAFile                  string `json:"caFile"`
}

// shared is what TestMain set up for the tests: the module root and the
// running server, or why they are missing.
var shared struct {
	root   string
	server *server
	err    error
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if optedOut() {
		return m.Run() // every test skips itself
	}
	tmp, err := os.MkdirTemp("", "usher-interop-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "interop: %v\n", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	shared.root, shared.err = moduleRoot()
	if shared.err == nil {
		shared.server, shared.err = startServer(shared.root, tmp)
	}
	code := m.Run()
	if shared.server != nil {
		if err := shared.server.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: interop: %v\nserver log:\n%s\n", err, shared.server.stderr)
			code = 1
		}
	}
	return code
}

// optedOut reports whether a developer asked to skip these tests. CI cannot.
func optedOut() bool {
	return os.Getenv(optOutEnv) == "1" && os.Getenv("CI") == ""
}

// skipIfOptedOut skips the test when a developer opted out; CI cannot.
func skipIfOptedOut(tb testing.TB) {
	tb.Helper()
	if optedOut() {
		tb.Skipf("%s=1: interop tests skipped on request", optOutEnv)
	}
	if os.Getenv(optOutEnv) == "1" {
		tb.Logf("%s=1 is ignored because CI is set", optOutEnv)
	}
}

// mustServer returns the server TestMain started, failing the test when it
// could not be started.
func mustServer(tb testing.TB) *server {
	tb.Helper()
	if shared.err != nil {
		tb.Fatalf("interop server: %v", shared.err)
	}
	return shared.server
}

// mustNode returns the path of node after checking that the SDK packages are
// installed next to this file.
func mustNode(tb testing.TB, packages ...string) string {
	tb.Helper()
	if shared.root == "" {
		tb.Fatalf("module root: %v", shared.err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		tb.Fatalf("node (v20) is not on PATH: %v; install it, then %s", err, npmHint)
	}
	for _, p := range packages {
		dir := filepath.Join(shared.root, "test", "interop", "node_modules", p)
		if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
			tb.Fatalf("SDK package %s is not installed (%v): %s", p, err, npmHint)
		}
	}
	return node
}

func TestDPSServiceSDK(t *testing.T) {
	runNodeSuite(t, "dps_service.test.mjs", "azure-iot-provisioning-service")
}

func TestDPSDeviceSDK(t *testing.T) {
	runNodeSuite(t, "dps_device.test.mjs",
		"azure-iot-provisioning-service",
		"azure-iot-provisioning-device",
		"azure-iot-provisioning-device-http",
		"azure-iot-provisioning-device-mqtt",
		"azure-iot-security-symmetric-key",
		"azure-iothub",
	)
}

func TestHubSDK(t *testing.T) {
	runNodeSuite(t, "hub_device.test.mjs",
		"azure-iot-provisioning-service",
		"azure-iot-provisioning-device",
		"azure-iot-provisioning-device-mqtt",
		"azure-iot-security-symmetric-key",
		"azure-iothub",
		"azure-iot-device",
		"azure-iot-device-mqtt",
	)
}

// runNodeSuite runs one node:test file against the server TestMain started,
// after checking that the SDK packages it imports are installed, and fails
// the test unless node ran at least one test and none failed. Every file gets
// the same environment (see nodeEnv) and uses what it needs.
func runNodeSuite(t *testing.T, file string, packages ...string) {
	t.Helper()
	skipIfOptedOut(t)
	node := mustNode(t, packages...)
	srv := mustServer(t)

	res := runNodeTest(t, node, file, nodeEnv(srv.info)...)
	if res.err != nil || res.fail != 0 || res.pass == 0 {
		t.Logf("server log:\n%s", srv.stderr)
		t.Fatalf("node --test %s: %s%s", file, res.summary(), res.transcript())
	}
	t.Logf("node --test %s: %s", file, res.summary())
}

// nodeEnv is what the node test files read from their environment.
func nodeEnv(info serverInfo) []string {
	return []string{
		"NODE_EXTRA_CA_CERTS=" + info.CAFile,
		"USHER_CONNECTION_STRING=" + info.ServiceConnectionString,
		"USHER_HUB_CONNECTION_STRING=" + info.HubConnectionString,
		"USHER_ID_SCOPE=" + info.IDScope,
	}
}

// nodeResult is the outcome of one `node --test` run.
type nodeResult struct {
	err        error // from running node: non-zero exit, timeout
	pass, fail int   // from the reporter's closing lines; -1 when missing
	output     string
}

func (r nodeResult) summary() string {
	s := fmt.Sprintf("pass %d, fail %d", r.pass, r.fail)
	if r.err != nil {
		s += fmt.Sprintf(" (%v)", r.err)
	}
	if r.pass == 0 {
		s += "; no node test passed"
	}
	return s
}

// transcript is node's output for a failure message, unless -v already
// streamed it to the log.
func (r nodeResult) transcript() string {
	if testing.Verbose() {
		return " (node output above)"
	}
	return "\n" + r.output
}

// closingLine matches the totals node's tap (`# pass 3`) and spec
// (`ℹ pass 3`) reporters end with.
var closingLine = regexp.MustCompile(`(?m)^(?:#|ℹ) (pass|fail) (\d+)\s*$`)

// runNodeTest runs `node --test file` from this directory with the inherited
// environment plus env, streaming its output to the test log when -v is set.
func runNodeTest(t *testing.T, node, file string, env ...string) nodeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), nodeTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", file)
	cmd.Dir = filepath.Join(shared.root, "test", "interop")
	cmd.Env = append(os.Environ(), env...)
	// node --test runs each file in a child process: end the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out := &lineWriter{}
	if testing.Verbose() {
		out.line = func(s string) { t.Log(s) }
	}
	cmd.Stdout, cmd.Stderr = out, out

	err := cmd.Run()
	out.flush()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %v: %w", nodeTimeout, err)
	}
	res := nodeResult{err: err, pass: -1, fail: -1, output: out.String()}
	for _, m := range closingLine.FindAllStringSubmatch(res.output, -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "pass" {
			res.pass = n
		} else {
			res.fail = n
		}
	}
	return res
}

// lineWriter records everything written to it and hands each complete line
// to line, if set.
type lineWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	line    func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.line == nil {
		return len(p), nil
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// flush hands a last line that did not end in a newline to line.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.line != nil && len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = nil
	}
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// server is a running `usher serve`.
type server struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and waitErr is set
	// waitErr is cmd.Wait's result; read it only after exited is closed.
	waitErr error
	stdout  *bannerWriter
	stderr  *lineWriter
	info    serverInfo
}

// startServer builds the usher binary into dir and starts it with a data
// directory under dir, returning once it prints its banner.
func startServer(root, dir string) (*server, error) {
	bin := filepath.Join(dir, "usher")
	build := exec.Command("go", "build", "-o", bin, "./cmd/usher")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/usher: %v\n%s", err, out)
	}

	data := filepath.Join(dir, "data")
	s := &server{
		cmd: exec.Command(bin, "serve",
			"--data-dir", data,
			"--hostname", host,
			// The hub's name is what devices get as assignedHub and what the
			// hub connection string names; an IP has the dots the C SDK needs.
			"--hub-hostname", host,
			"--https-addr", host+":443",
			"--mqtt-addr", host+":8883",
		),
		exited: make(chan struct{}),
		stdout: &bannerWriter{ready: make(chan struct{})},
		stderr: &lineWriter{},
	}
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	// If the test binary dies without stopping the server, the kernel does.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start usher serve: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-s.stdout.ready:
	case <-s.exited:
		return nil, fmt.Errorf("usher serve exited before it was listening (%v). It binds %s:443 and %s:8883: "+
			"port 443 needs root or CAP_NET_BIND_SERVICE, and both ports must be free.\nstdout:\n%s\nstderr:\n%s",
			s.waitErr, host, host, s.stdout, s.stderr)
	case <-timer.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("usher serve printed no line containing %q within %v\nstdout:\n%s\nstderr:\n%s",
			bannerMarker, startTimeout, s.stdout, s.stderr)
	}

	info, err := readInfo(bin, data)
	if err != nil {
		_ = s.stop()
		return nil, err
	}
	s.info = info
	return s, nil
}

func readInfo(bin, data string) (serverInfo, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "info", "--data-dir", data, "--json")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return serverInfo{}, fmt.Errorf("usher info --json: %v\n%s", err, stderr.Bytes())
	}
	var info serverInfo
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&info); err != nil {
		return serverInfo{}, fmt.Errorf("usher info --json: %v\n%s", err, out)
	}
	var missing []string
	for name, v := range map[string]string{
		"idScope":                 info.IDScope,
		"serviceConnectionString": info.ServiceConnectionString,
		"hubConnectionString":     info.HubConnectionString,
		"caFile":                  info.CAFile,
		"hostName":                info.HostName,
	} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return serverInfo{}, fmt.Errorf("usher info --json lacks %s:\n%s", strings.Join(missing, ", "), out)
	}
	if info.HostName != host {
		return serverInfo{}, fmt.Errorf("usher info --json: hostName %q, want %q (the SDK dials it on 443)", info.HostName, host)
	}
	if info.HubHostName != host {
		return serverInfo{}, fmt.Errorf("usher info --json: hubHostName %q, want %q (devices get it as assignedHub)", info.HubHostName, host)
	}
	return info, nil
}

// stop sends SIGTERM and expects a clean exit within stopTimeout.
func (s *server) stop() error {
	select {
	case <-s.exited:
		return fmt.Errorf("usher serve had already exited: %v", s.waitErr)
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM usher serve: %w", err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
	case <-timer.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("usher serve did not exit within %v of SIGTERM", stopTimeout)
	}
	if s.waitErr != nil {
		return fmt.Errorf("usher serve after SIGTERM: %v, want exit status 0", s.waitErr)
	}
	return nil
}

// bannerWriter records the server's stdout and closes ready once a complete
// line containing bannerMarker has been written.
type bannerWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	scanned int // bytes of buf already searched for complete lines
	ready   chan struct{}
	seen    bool
}

func (w *bannerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for !w.seen {
		rest := w.buf.Bytes()[w.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if bytes.Contains(rest[:i], []byte(bannerMarker)) {
			w.seen = true
			close(w.ready)
		}
		w.scanned += i + 1
	}
	return len(p), nil
}

func (w *bannerWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// moduleRoot walks up from the working directory to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
