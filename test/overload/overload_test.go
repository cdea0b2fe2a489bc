//go:build linux

// Package overload checks that a node sheds load politely (issue 7): with
// a node-wide limit of 200 registrations/s and ten times that offered over
// kept-alive HTTPS connections, the node serves the limit (±10 %), answers
// every other request 429 with Retry-After and Azure's error body, stays
// under 512 MiB, and serves normally afterwards.
//
// Both the server and the load generator (./flood) are separate processes
// built without the race detector, so the figures do not depend on how the
// test itself is run.
package overload

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The load. The first second is warm-up, where the bucket's burst (one
// second's worth) is spent; served registrations are counted over the
// measured window after it, from the server's own records.
const (
	limit         = 200  // registrations/s, --limit-registrations
	offered       = 2000 // registrations/s the client tries to send
	minOffered    = 5 * limit
	warmUp        = time.Second
	measured      = 6 * time.Second
	workers       = 128 // concurrent requests, each on its own kept-alive connection
	tolerance     = 0.10
	maxPeakRSSKiB = 512 << 10
)

func TestGlobalLimitHoldsUnderTenfoldLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a separate server process at 2,000 requests/s for several seconds")
	}
	dir := t.TempDir()
	bin, flood := build(t, dir, "./cmd/usher"), build(t, dir, "./test/overload/flood")
	dataDir := filepath.Join(dir, "data")
	srv := start(t, bin, dataDir, "--limit-registrations", strconv.Itoa(limit)+"/s")
	var in struct {
		IDScope   string `json:"idScope"`
		HTTPSAddr string `json:"httpsAddr"`
		CAFile    string `json:"caFile"`
	}
	if err := json.Unmarshal(run(t, bin, "info", "--json", "--data-dir", dataDir), &in); err != nil {
		t.Fatal(err)
	}
	var group struct {
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	if err := json.Unmarshal(run(t, bin, "enrollment-group", "create", "--group-id", "flood", "--show-keys", "--data-dir", dataDir), &group); err != nil {
		t.Fatal(err)
	}
	groupKey := group.Attestation.SymmetricKey.PrimaryKey

	var rep struct {
		Start   int64 `json:"start"`
		Results []struct {
			Sent, Done int64
			Status     int
			RetryAfter int
			Err        string
		} `json:"results"`
	}
	out := run(t, flood, "-addr", in.HTTPSAddr, "-id-scope", in.IDScope, "-ca", in.CAFile, "-group-key", groupKey,
		"-rate", strconv.Itoa(offered), "-duration", (warmUp + measured).String(), "-workers", strconv.Itoa(workers))
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	peakKiB := peakRSS(t, srv.Process.Pid)

	start := time.Unix(0, rep.Start)
	windowStart, windowEnd := start.Add(warmUp), start.Add(warmUp+measured)
	var sentInWindow, served, throttled int
	retryAfters := map[int]int{}
	var anomalies []string
	for _, r := range rep.Results {
		if sent := time.Unix(0, r.Sent); !sent.Before(windowStart) && sent.Before(windowEnd) {
			sentInWindow++
		}
		switch {
		case r.Err != "":
			anomalies = append(anomalies, r.Err)
		case r.Status == http.StatusAccepted:
			served++
		case r.Status == http.StatusTooManyRequests:
			throttled++
			retryAfters[r.RetryAfter]++
		default:
			anomalies = append(anomalies, fmt.Sprintf("status %d", r.Status))
		}
	}
	secs := measured.Seconds()
	offeredRate := float64(sentInWindow) / secs

	// The server's records say when each registration was made.
	var regs []struct {
		RegistrationID string `json:"registrationId"`
		Created        string `json:"createdDateTimeUtc"`
	}
	if err := json.Unmarshal(run(t, bin, "enrollment-group", "registration", "list", "--group-id", "flood", "--data-dir", dataDir), &regs); err != nil {
		t.Fatal(err)
	}
	perSecond := make([]int, int((warmUp+measured)/time.Second)+1) // the last: after the offer ended
	createdInWindow := 0
	for _, r := range regs {
		c, err := time.Parse(time.RFC3339Nano, r.Created)
		if err != nil {
			t.Fatalf("registration %s: createdDateTimeUtc %q: %v", r.RegistrationID, r.Created, err)
		}
		if !c.Before(windowStart) && c.Before(windowEnd) {
			createdInWindow++
		}
		if i := int(c.Sub(start) / time.Second); c.After(start) && i < len(perSecond) {
			perSecond[i]++
		}
	}
	servedRate := float64(createdInWindow) / secs
	t.Logf("offered %d registrations in %v, %.0f/s over the %v window (%d workers on kept-alive HTTPS connections): %d served (202), %d throttled (429, Retry-After seconds: %v), %d other",
		len(rep.Results), warmUp+measured, offeredRate, measured, workers, served, throttled, retryAfters, len(anomalies))
	t.Logf("served %.1f/s over the window by the server's records (limit %d/s); per second from the start: %v; server peak RSS (VmHWM) %.1f MiB",
		servedRate, limit, perSecond, float64(peakKiB)/1024)

	if len(anomalies) > 0 {
		t.Errorf("%d requests were neither served nor throttled, e.g. %q", len(anomalies), anomalies[:min(5, len(anomalies))])
	}
	if offeredRate < minOffered {
		t.Errorf("the client offered only %.0f requests/s, less than 5× the limit (%d/s)", offeredRate, minOffered)
	}
	if lo, hi := limit*(1-tolerance), limit*(1+tolerance); servedRate < lo || servedRate > hi {
		t.Errorf("served %.1f registrations/s over the window, want %d/s ± %.0f %%", servedRate, limit, tolerance*100)
	}
	if len(regs) != served {
		t.Errorf("the server holds %d registrations, the client saw %d served", len(regs), served)
	}
	if peakKiB > maxPeakRSSKiB {
		t.Errorf("server peak RSS %d KiB, want under %d KiB", peakKiB, maxPeakRSSKiB)
	}

	// Afterwards the node serves as usual: a device that honours
	// Retry-After registers and is assigned.
	var dev struct {
		Status      string `json:"status"`
		AssignedHub string `json:"assignedHub"`
	}
	if err := json.Unmarshal(run(t, bin, "device", "register", "--registration-id", "after-the-flood", "--group-key", groupKey, "--data-dir", dataDir), &dev); err != nil {
		t.Fatal(err)
	}
	if dev.Status != "assigned" || dev.AssignedHub == "" {
		t.Errorf("registration after the flood: %+v, want assigned", dev)
	}
	stop(t, srv)
}

// peakRSS reads the process's peak resident set size (VmHWM) in KiB.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// build compiles the package pkg of this module into dir.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// server is a running usher serve and its standard error.
type server struct {
	*exec.Cmd
	stderr *bytes.Buffer // read only after Wait
}

// start runs usher serve on dataDir with extra flags and waits for its
// banner. The process is killed when the test ends, if it still runs.
func start(t *testing.T, bin, dataDir string, flags ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0",
		"--hub-hostname", "hub.usher.test", "--log-level", "warn"}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{Cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "SharedAccessKeyName=") {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return s
		}
	}
	_ = cmd.Wait()
	t.Fatalf("usher serve did not start:\n%s", s.stderr)
	return nil
}

// stop ends the server with SIGTERM and checks that it exits cleanly.
func stop(t *testing.T, s *server) {
	t.Helper()
	if err := s.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		if err != nil || strings.Contains(s.stderr.String(), "panic") {
			t.Errorf("usher serve exited with %v after SIGTERM:\n%s", err, s.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("usher serve did not exit within 30 s of SIGTERM")
	}
}

// run runs a built binary and returns its standard output.
func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestConnectionLimit checks --max-connections on both listeners: past the
// limit a new connection is closed at once (no TLS handshake, no queue),
// and closing one frees its place.
func TestConnectionLimit(t *testing.T) {
	const maxConns = 3
	dir := t.TempDir()
	bin := build(t, dir, "./cmd/usher")
	dataDir := filepath.Join(dir, "data")
	srv := start(t, bin, dataDir, "--max-connections", strconv.Itoa(maxConns))
	var in struct {
		HTTPSAddr string `json:"httpsAddr"`
		MQTTAddr  string `json:"mqttAddr"`
		CAFile    string `json:"caFile"`
	}
	if err := json.Unmarshal(run(t, bin, "info", "--json", "--data-dir", dataDir), &in); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(in.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conf := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	dial := func(addr string) (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, conf)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	for _, l := range []struct{ name, addr string }{{"https", in.HTTPSAddr}, {"mqtt", in.MQTTAddr}} {
		t.Run(l.name, func(t *testing.T) {
			var held []*tls.Conn
			for i := range maxConns {
				c, err := dial(l.addr)
				if err != nil {
					t.Fatalf("connection %d of %d: %v", i+1, maxConns, err)
				}
				held = append(held, c)
			}
			began := time.Now()
			if _, err := dial(l.addr); err == nil {
				t.Fatalf("connection %d was admitted; the limit is %d", maxConns+1, maxConns)
			} else if took := time.Since(began); took > 5*time.Second {
				t.Errorf("the connection over the limit was refused only after %v", took)
			}
			held[0].Close()
			// The server notices the close asynchronously; a device would
			// retry, and so does this check, for a while.
			deadline := time.Now().Add(10 * time.Second)
			for {
				c, err := dial(l.addr)
				if err == nil {
					c.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no connection admitted after one was closed: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, c := range held[1:] {
				c.Close()
			}
		})
	}
	stop(t, srv)
}
