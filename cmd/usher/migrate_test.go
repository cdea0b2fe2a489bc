package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/deviceclient"
	"github.com/usher-iot/usher/internal/pki"
	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/transfer"
)

// cuttingProxy forwards TCP connections to a target and, once clients have
// sent more than limit bytes through it, closes every connection and stops
// accepting: a network cut in the middle of a run.
type cuttingProxy struct {
	ln     net.Listener
	target string
	limit  int64
	sent   atomic.Int64
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func startCuttingProxy(t *testing.T, target string, limit int64) *cuttingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{ln: ln, target: target, limit: limit}
	var wg sync.WaitGroup
	t.Cleanup(func() { p.shut(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			wg.Add(2)
			go func() { defer wg.Done(); p.pipe(up, c, true) }()
			go func() { defer wg.Done(); p.pipe(c, up, false) }()
		}
	}()
	return p
}

func (p *cuttingProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, conns...)
	return true
}

// pipe copies src to dst, counting what goes upstream.
func (p *cuttingProxy) pipe(dst, src net.Conn, upstream bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if upstream && p.sent.Add(int64(n)) > p.limit {
				p.shut()
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *cuttingProxy) shut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return
	}
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

func (s *testServer) addr(t testing.TB) string {
	t.Helper()
	a, err := localAddr(s.Info.HTTPSAddr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// migrateArgs are the flags of a migration from src to dst, dst dialled at
// toAddr and trusted through toCA.
func migrateArgs(t testing.TB, src, dst *testServer, toAddr, toCA, state string) []string {
	return []string{"migrate",
		"--from", src.Info.ServiceConnectionString, "--from-address", src.addr(t), "--from-ca-file", src.Info.CAFile,
		"--to", dst.Info.ServiceConnectionString, "--to-address", toAddr, "--to-ca-file", toCA,
		"--state", state}
}

func decodeSummary(t testing.TB, out, errOut string) transfer.Summary {
	t.Helper()
	var s transfer.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("no JSON summary (%v): %q\nstderr: %s", err, out, errOut)
	}
	return s
}

func readState(t testing.TB, path string) transfer.State {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st transfer.State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMigrateResumesAfterInterruption(t *testing.T) {
	src := startServer(t, "--https-addr", "127.0.0.11:0", "--mqtt-addr", "127.0.0.11:0")
	dst := startServer(t, "--https-addr", "127.0.0.12:0", "--mqtt-addr", "127.0.0.12:0")
	const enrollments, groups = 2000, 30
	const total = enrollments + groups
	seedFleet(t, src, enrollments, groups)
	state := filepath.Join(t.TempDir(), "state.json")

	// Run 1 goes through a proxy that cuts the network about a third of
	// the way.
	proxy := startCuttingProxy(t, dst.addr(t), 300_000)
	out, errOut, err := src.usher(t, migrateArgs(t, src, dst, proxy.ln.Addr().String(), dst.Info.CAFile, state)...)
	if err == nil || !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Fatalf("interrupted migration: err = %v, want an interruption\nstderr: %s", err, errOut)
	}
	first := decodeSummary(t, out, errOut)
	st := readState(t, state)
	t.Logf("run 1: %+v; checkpoint %+v", countsOf(first), st)
	if st.Finished || st.Settled <= 0 || st.Settled >= total {
		t.Fatalf("checkpoint after the cut: %+v, want a run stopped mid-way", st)
	}
	if first.Created != st.Settled || first.Failed != 0 {
		t.Errorf("run 1 created %d (failed %d), checkpoint says %d settled", first.Created, first.Failed, st.Settled)
	}

	// Run 2 resumes from the checkpoint, straight to the target.
	out, errOut, err = src.usher(t, migrateArgs(t, src, dst, dst.addr(t), dst.Info.CAFile, state)...)
	if err != nil {
		t.Fatalf("resumed migration: %v\nstderr: %s", err, errOut)
	}
	second := decodeSummary(t, out, errOut)
	t.Logf("run 2: %+v, skipped %d, %.1f s", countsOf(second), second.Skipped, second.Seconds)
	if !second.Resumed || second.Skipped != st.Settled {
		t.Errorf("run 2 resumed=%v skipped=%d, want resumed with %d skipped", second.Resumed, second.Skipped, st.Settled)
	}
	if second.Created+second.Unchanged+second.Updated != total-st.Settled {
		t.Errorf("run 2 handled %d records, want the %d not done", second.Total(), total-st.Settled)
	}
	// Unchanged are the batches the target wrote but could not confirm
	// before the cut: at most one page.
	if second.Unchanged > 100 || second.Updated != 0 || second.Failed != 0 {
		t.Errorf("run 2 %+v: replayed more than the unconfirmed batches", countsOf(second))
	}
	if got := first.Created + second.Created + second.Unchanged; got != total {
		t.Errorf("created over both runs %d, want %d", got, total)
	}
	if st := readState(t, state); !st.Finished || st.Settled != total {
		t.Errorf("final checkpoint %+v, want finished with %d", st, total)
	}
	a, b := src.export(t, "--include-keys"), dst.export(t, "--include-keys")
	if a != b {
		t.Fatalf("exports differ at %s", firstDiff(a, b))
	}
	if n := lineCount(b); n != total {
		t.Errorf("target holds %d records, want %d", n, total)
	}

	// A third run finds a finished checkpoint and starts a new pass, with
	// nothing to write.
	out, errOut, err = src.usher(t, migrateArgs(t, src, dst, dst.addr(t), dst.Info.CAFile, state)...)
	if err != nil {
		t.Fatalf("third run: %v\n%s", err, errOut)
	}
	if third := decodeSummary(t, out, errOut); countsOf(third) != (counts{unchanged: total}) || !strings.Contains(errOut, "starting a new pass") {
		t.Errorf("third run %+v, stderr %q; want all unchanged in a new pass", countsOf(third), errOut)
	}

	// Devices provision on the target with the keys they had: a given key,
	// a generated one, and a group member's derived key.
	cl := src.serviceClient(t)
	for _, tc := range []struct{ regID, key string }{
		{"dev-00002", testKey("p2")},
		{"dev-00001", attestedPrimaryKey(t, cl, "dev-00001")},
		{"sensor-7", mustDerive(t, testKey("gp1"), "sensor-7")},
	} {
		res, err := dst.register(t, deviceclient.HTTPS, tc.regID, tc.key)
		if err != nil || res.Status != "assigned" {
			t.Errorf("%s on the target: %+v, %v", tc.regID, res, err)
		}
	}
}

func mustDerive(t testing.TB, groupKey, regID string) string {
	t.Helper()
	k, err := sas.DeriveDeviceKey(groupKey, regID)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// throttlingProxy terminates TLS for localhost with its own CA, answers
// every every-th request 429 with Retry-After: 1 (at most max times), and
// forwards the others to the target. It records how long each throttled
// request took to come back.
type throttlingProxy struct {
	srv       *httptest.Server
	caFile    string
	requests  atomic.Int64
	throttled atomic.Int64
	mu        sync.Mutex
	refusedAt map[[32]byte]time.Time
	waits     []time.Duration
}

func startThrottlingProxy(t *testing.T, dst *testServer, every, max int64) *throttlingProxy {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA(pki.ECDSA, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.IssueServer(ca, []string{"localhost"}, now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(leaf.Cert, leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	p := &throttlingProxy{caFile: filepath.Join(t.TempDir(), "proxy-ca.pem"), refusedAt: map[[32]byte]time.Time{}}
	if err := os.WriteFile(p.caFile, ca.Cert, 0o600); err != nil {
		t.Fatal(err)
	}
	dstCA, err := os.ReadFile(dst.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(dstCA)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "https", Host: dst.addr(t)})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	t.Cleanup(tr.CloseIdleConnections)
	rp.Transport = tr
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := sha256.Sum256([]byte(r.Method + " " + r.URL.String() + "\n" + string(body)))
		p.mu.Lock()
		if at, ok := p.refusedAt[key]; ok {
			p.waits = append(p.waits, time.Since(at))
			delete(p.refusedAt, key)
		}
		p.mu.Unlock()
		if n := p.requests.Add(1); n%every == 0 && p.throttled.Load() < max {
			p.throttled.Add(1)
			p.mu.Lock()
			p.refusedAt[key] = time.Now()
			p.mu.Unlock()
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"errorCode":429001,"trackingId":"proxy","message":"Too many requests"}`)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		r.Host = "localhost"
		rp.ServeHTTP(w, r)
	}))
	p.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	return p
}

func TestMigrateHonoursThrottling(t *testing.T) {
	src, dst := startServer(t), startServer(t)
	seedFleet(t, src, 300, 12)
	proxy := startThrottlingProxy(t, dst, 7, 6)
	state := filepath.Join(t.TempDir(), "state.json")
	addr := strings.TrimPrefix(proxy.srv.URL, "https://")
	out, errOut, err := src.usher(t, migrateArgs(t, src, dst, addr, proxy.caFile, state)...)
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, errOut)
	}
	sum := decodeSummary(t, out, errOut)
	if got := countsOf(sum); got != (counts{created: 312}) {
		t.Errorf("counts %+v, want 312 created", got)
	}
	if sum.Throttled != 6 || proxy.throttled.Load() != 6 {
		t.Errorf("summary counts %d throttled requests, the proxy refused %d; want 6", sum.Throttled, proxy.throttled.Load())
	}
	proxy.mu.Lock()
	waits := proxy.waits
	proxy.mu.Unlock()
	if len(waits) != 6 {
		t.Errorf("%d throttled requests came back, want 6", len(waits))
	}
	for _, w := range waits {
		if w < 950*time.Millisecond {
			t.Errorf("a throttled request came back after %s, before its Retry-After of 1 s", w)
		}
	}
	if a, b := src.export(t, "--include-keys"), dst.export(t, "--include-keys"); a != b {
		t.Fatalf("exports differ at %s", firstDiff(a, b))
	}
}

func TestMigrateRefuses(t *testing.T) {
	src := startServer(t)
	state := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(state, []byte(`{"version":1,"from":"elsewhere","to":"localhost","position":{"kind":"enrollment","token":""}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad/no --to", []string{"migrate", "--from", src.Info.ServiceConnectionString}, `required flag(s) "to" not set`},
		{"bad/garbled connection string", []string{"migrate", "--from", "HostName=x", "--to", src.Info.ServiceConnectionString}, "--from:"},
		{"bad/state of another migration", migrateArgs(t, src, src, src.addr(t), src.Info.CAFile, state), "records a migration from elsewhere to localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, err := src.usher(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q\nstderr: %s", err, tt.want, errOut)
			}
		})
	}
}

func TestMigrateResumePositions(t *testing.T) {
	src := startServer(t)
	seedFleet(t, src, 250, 0)
	tests := []struct {
		name      string
		state     string
		want      counts
		skipped   int
		rescanned bool
		stderr    string
	}{
		{
			name:    "resume/inside a page after the checkpoint's last ID",
			state:   `{"version":1,"from":"localhost","to":"localhost","position":{"kind":"enrollment","token":""},"done":5,"lastId":"dev-00004","settled":5,"kindSettled":5}`,
			want:    counts{created: 245},
			skipped: 5,
		},
		{
			name:    "resume/a page that changed is replayed whole",
			state:   `{"version":1,"from":"localhost","to":"localhost","position":{"kind":"enrollment","token":""},"done":5,"lastId":"dev-99999","settled":5,"kindSettled":5}`,
			want:    counts{created: 250},
			skipped: 0,
			stderr:  "replaying it whole",
		},
		{
			name:      "rescan/a refused continuation token reads the kind again",
			state:     `{"version":1,"from":"localhost","to":"localhost","position":{"kind":"enrollment","token":"!!"},"done":0,"settled":130,"kindSettled":100}`,
			want:      counts{created: 250},
			skipped:   30, // the groups before
			rescanned: true,
			stderr:    "refused the saved continuation token",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := startServer(t)
			state := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(state, []byte(tt.state), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, err := src.usher(t, migrateArgs(t, src, dst, dst.addr(t), dst.Info.CAFile, state)...)
			if err != nil {
				t.Fatalf("migrate: %v\n%s", err, errOut)
			}
			sum := decodeSummary(t, out, errOut)
			if countsOf(sum) != tt.want || sum.Skipped != tt.skipped || (len(sum.Rescanned) > 0) != tt.rescanned {
				t.Errorf("summary %+v skipped %d rescanned %v; want %+v skipped %d rescanned %v", countsOf(sum), sum.Skipped, sum.Rescanned, tt.want, tt.skipped, tt.rescanned)
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr %q does not say %q", errOut, tt.stderr)
			}
			if st := readState(t, state); !st.Finished {
				t.Errorf("checkpoint %+v, want finished", st)
			}
		})
	}
}

func TestMigrateDryRun(t *testing.T) {
	src, dst := startServer(t), startServer(t)
	seedFleet(t, src, 40, 3)
	state := filepath.Join(t.TempDir(), "state.json")
	out, errOut, err := src.usher(t, append(migrateArgs(t, src, dst, dst.addr(t), dst.Info.CAFile, state), "--dry-run", "-o", "table")...)
	if err != nil {
		t.Fatalf("migrate --dry-run: %v\n%s", err, errOut)
	}
	if !strings.HasPrefix(out, "summary (dry run: nothing written; would be): created 43, updated 0, unchanged 0, failed 0") {
		t.Errorf("summary %q", out)
	}
	if got := dst.export(t); got != "" {
		t.Errorf("the target holds records after a dry run:\n%s", got)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dry run wrote a checkpoint (%v)", err)
	}
}
