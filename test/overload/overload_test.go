//go:build linux

// Package overload checks that a node sheds load politely (issue 7): with
// a node-wide limit of 200 registrations/s and ten times that offered over
// kept-alive HTTPS connections, the node serves the limit (±10 %), answers
// every other request 429 with Retry-After and Azure's error body, stays
// under 512 MiB, and serves normally afterwards.
package overload

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

// The load: limit, offered rate, and the windows. The first second is
// warm-up (the bucket's burst of one second's worth is spent there); served
// requests are counted over the measured window after it.
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
	bin := build(t)
	dataDir := t.TempDir()
	srv := start(t, bin, dataDir, "--limit-registrations", strconv.Itoa(limit)+"/s")
	var in info
	if err := json.Unmarshal(usher(t, bin, "info", "--json", "--data-dir", dataDir), &in); err != nil {
		t.Fatal(err)
	}
	var group struct {
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	if err := json.Unmarshal(usher(t, bin, "enrollment-group", "create", "--group-id", "flood", "--show-keys", "--data-dir", dataDir), &group); err != nil {
		t.Fatal(err)
	}
	groupKey := group.Attestation.SymmetricKey.PrimaryKey
	client := tlsClient(t, in.CAFile)
	warmConnections(t, client, in)

	// Open loop: request k is due at start + k/offered; a worker takes the
	// next due request, waits for its time and sends it. When every worker
	// is busy, requests go out late and the offered rate is what the
	// client could do (measured below).
	var (
		next    atomic.Int64
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	interval := time.Second / offered
	start := time.Now().Add(100 * time.Millisecond)
	end := start.Add(warmUp + measured)
	for w := range workers {
		wg.Go(func() {
			var mine []result
			for {
				k := next.Add(1) - 1
				due := start.Add(time.Duration(k) * interval)
				if !due.Before(end) {
					break
				}
				time.Sleep(time.Until(due))
				id := fmt.Sprintf("flood-%d-%d", w, k)
				mine = append(mine, send(client, in, groupKey, id))
			}
			mu.Lock()
			results = append(results, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	peakKiB := peakRSS(t, srv.Process.Pid)

	// Client-side tally.
	windowStart, windowEnd := start.Add(warmUp), end
	var sentInWindow, servedInWindow, throttled, served int
	var anomalies []string
	for _, r := range results {
		if !r.sent.Before(windowStart) && r.sent.Before(windowEnd) {
			sentInWindow++
		}
		switch {
		case r.err != "":
			anomalies = append(anomalies, r.err)
		case r.status == http.StatusAccepted:
			served++
			if !r.done.Before(windowStart) && r.done.Before(windowEnd) {
				servedInWindow++
			}
		case r.status == http.StatusTooManyRequests:
			throttled++
		default:
			anomalies = append(anomalies, fmt.Sprintf("status %d", r.status))
		}
	}
	secs := measured.Seconds()
	offeredRate := float64(sentInWindow) / secs
	t.Logf("offered %d requests (%.0f/s over the %v window, %d workers on kept-alive connections): %d served (202), %d throttled (429), %d other",
		len(results), offeredRate, measured, workers, served, throttled, len(anomalies))

	// Server-side count: registrations created within the window.
	createdInWindow := 0
	var regs []registration
	if err := json.Unmarshal(usher(t, bin, "enrollment-group", "registration", "list", "--group-id", "flood", "--data-dir", dataDir), &regs); err != nil {
		t.Fatal(err)
	}
	for _, r := range regs {
		c, err := time.Parse(time.RFC3339Nano, r.Created)
		if err != nil {
			t.Fatalf("registration %s: createdDateTimeUtc %q: %v", r.RegistrationID, r.Created, err)
		}
		if !c.Before(windowStart) && c.Before(windowEnd) {
			createdInWindow++
		}
	}
	serverRate := float64(createdInWindow) / secs
	t.Logf("registrations created per second from the start (server's records): %v", perSecond(regs, start, end))
	t.Logf("served over the window: %.1f/s by the server's records (%d registrations in all), %.1f/s by the client's answers; limit %d/s; server peak RSS %.1f MiB",
		serverRate, len(regs), float64(servedInWindow)/secs, limit, float64(peakKiB)/1024)

	if len(anomalies) > 0 {
		t.Errorf("%d requests were neither served nor throttled, e.g. %q", len(anomalies), anomalies[:min(5, len(anomalies))])
	}
	if offeredRate < minOffered {
		t.Errorf("the client offered only %.0f requests/s, less than 5× the limit (%d/s): the test proves nothing", offeredRate, minOffered)
	}
	if lo, hi := limit*(1-tolerance), limit*(1+tolerance); serverRate < lo || serverRate > hi {
		t.Errorf("served %.1f registrations/s over the window, want %d/s ± %.0f %%", serverRate, limit, tolerance*100)
	}
	if len(regs) != served {
		t.Errorf("the server holds %d registrations, the client saw %d served", len(regs), served)
	}
	if peakKiB > maxPeakRSSKiB {
		t.Errorf("server peak RSS %d KiB, want under %d KiB", peakKiB, maxPeakRSSKiB)
	}

	// Afterwards the node serves as usual: once the bucket has refilled,
	// a new device registers and its poll says assigned.
	time.Sleep(time.Second)
	if r := send(client, in, groupKey, "after-the-flood"); r.status != http.StatusAccepted {
		t.Fatalf("registration after the flood: %+v", r)
	} else if status := poll(t, client, in, groupKey, "after-the-flood", r.opID); status != "assigned" {
		t.Errorf("registration after the flood: poll says %q, want assigned", status)
	}
	stop(t, srv)
}

// result is one request's outcome.
type result struct {
	sent, done time.Time
	status     int
	opID       string
	err        string // a transport error or a malformed answer
}

// send PUTs one registration and checks a 429's form: Retry-After, the
// x-ms-error-code header and Azure's DPS error body with errorCode 429001.
func send(c *http.Client, in info, groupKey, id string) (r result) {
	r.sent = time.Now()
	defer func() { r.done = time.Now() }()
	key, _ := sas.DeriveDeviceKey(groupKey, id)
	tok, _ := sas.SignKey(in.IDScope+"/registrations/"+id, "registration", key, time.Now().Add(time.Hour))
	req, err := http.NewRequest(http.MethodPut, "https://"+in.HTTPSAddr+"/"+in.IDScope+"/registrations/"+id+"/register?api-version=2021-06-01",
		strings.NewReader(`{"registrationId":"`+id+`"}`))
	if err != nil {
		r.err = err.Error()
		return r
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := c.Do(req)
	if err != nil {
		r.err = err.Error()
		return r
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		r.err = err.Error()
		return r
	}
	r.status = resp.StatusCode
	switch resp.StatusCode {
	case http.StatusAccepted:
		var op wire.RegistrationOperationStatus
		if err := json.Unmarshal(body, &op); err != nil || op.OperationID == "" {
			r.err = fmt.Sprintf("202 without an operation: %s", body)
		}
		r.opID = op.OperationID
	case http.StatusTooManyRequests:
		var e wire.ErrorDetails
		n, aerr := strconv.Atoi(resp.Header.Get("Retry-After"))
		switch {
		case aerr != nil || n < 1:
			r.err = fmt.Sprintf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
		case resp.Header.Get("x-ms-error-code") != "429001":
			r.err = fmt.Sprintf("429 with x-ms-error-code %q", resp.Header.Get("x-ms-error-code"))
		case json.Unmarshal(body, &e) != nil || e.ErrorCode != 429001 || e.TrackingID == "" || e.Message == "" || e.TimestampUTC == "":
			r.err = fmt.Sprintf("429 without Azure's error body: %s", body)
		}
	}
	return r
}

// warmConnections opens every worker's kept-alive connection before the
// flood (a GET /healthz each, all at once), so the TLS handshakes do not
// eat into the first second.
func warmConnections(t *testing.T, c *http.Client, in info) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			resp, err := c.Get("https://" + in.HTTPSAddr + "/healthz")
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("opening connections: %v", err)
	}
}

// perSecond counts registrations by the second of the run they were created
// in.
func perSecond[R interface{ created() string }](regs []R, start, end time.Time) []int {
	counts := make([]int, int(end.Sub(start)/time.Second)+1)
	for _, r := range regs {
		c, err := time.Parse(time.RFC3339Nano, r.created())
		if err != nil || c.Before(start) || !c.Before(end.Add(time.Second)) {
			continue
		}
		counts[int(c.Sub(start)/time.Second)]++
	}
	return counts
}

// poll asks for the operation's status once.
func poll(t *testing.T, c *http.Client, in info, groupKey, id, opID string) string {
	t.Helper()
	key, _ := sas.DeriveDeviceKey(groupKey, id)
	tok, _ := sas.SignKey(in.IDScope+"/registrations/"+id, "registration", key, time.Now().Add(time.Hour))
	req, _ := http.NewRequest(http.MethodGet, "https://"+in.HTTPSAddr+"/"+in.IDScope+"/registrations/"+id+"/operations/"+opID+"?api-version=2021-06-01", nil)
	req.Header.Set("Authorization", tok)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var op wire.RegistrationOperationStatus
	if err := json.NewDecoder(resp.Body).Decode(&op); err != nil {
		t.Fatalf("poll: %d: %v", resp.StatusCode, err)
	}
	return op.Status
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

// registration is a registration record as usher lists it.
type registration struct {
	RegistrationID string `json:"registrationId"`
	Created        string `json:"createdDateTimeUtc"`
}

func (r registration) created() string { return r.Created }

type info struct {
	IDScope   string `json:"idScope"`
	HTTPSAddr string `json:"httpsAddr"`
	CAFile    string `json:"caFile"`
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "usher")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/usher")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// server is a running usher serve and its standard error.
type server struct {
	*exec.Cmd
	stderr *bytes.Buffer // read only after Wait
}

// start runs usher serve on dataDir with extra flags and waits for its
// banner.
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
	stopped := false
	t.Cleanup(func() {
		if !stopped {
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
	stopped = true
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

func usher(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("usher %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// tlsClient keeps one HTTP/1.1 connection alive per worker.
func tlsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "localhost"},
		MaxIdleConns:        workers,
		MaxIdleConnsPerHost: workers,
		MaxConnsPerHost:     workers,
		IdleConnTimeout:     time.Minute,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}
