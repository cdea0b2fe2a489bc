//go:build linux

// Package perf measures the server side of registration: it runs a real
// `usher serve` process, registers devices against it the way a booting
// device does (fresh TLS connection, PUT register, one poll), and reads the
// server process's CPU time from /proc. Run:
//
//	go test -run=NONE -bench=. -benchtime=500x ./test/perf/
package perf

import (
	"bufio"
	"context"
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
	"syscall"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/sas"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat
// (100 on every Linux platform Go supports).
const clockTicks = 100

func cpuTime(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / clockTicks
}

type server struct {
	cmd      *exec.Cmd
	idScope  string
	addr     string
	groupKey string
	pool     *x509.CertPool
}

func startServer(b *testing.B) *server {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "usher")
	build := exec.Command("go", "build", "-o", bin, "./cmd/usher")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve", "--data-dir", data, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--hub-hostname", "hub.usher.test", "--log-level", "warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.Contains(sc.Text(), "SharedAccessKeyName=") {
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	var info struct{ IDScope, HTTPSAddr, CAFile string }
	raw, err := exec.Command(bin, "info", "--json", "--data-dir", data).Output()
	if err != nil || json.Unmarshal(raw, &info) != nil {
		b.Fatalf("info: %v", err)
	}
	var group struct {
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	raw, err = exec.Command(bin, "enrollment-group", "create", "--group-id", "perf", "--show-keys", "--data-dir", data).Output()
	if err != nil || json.Unmarshal(raw, &group) != nil {
		b.Fatalf("group: %v", err)
	}
	pem, _ := os.ReadFile(info.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &server{cmd: cmd, idScope: info.IDScope, addr: info.HTTPSAddr, groupKey: group.Attestation.SymmetricKey.PrimaryKey, pool: pool}
}

// register provisions one device over a new TLS connection and returns
// whether it was assigned.
func (s *server) register(b *testing.B, c *http.Client, id string) {
	key, _ := sas.DeriveDeviceKey(s.groupKey, id)
	tok, _ := sas.SignKey(s.idScope+"/registrations/"+id, "registration", key, time.Now().Add(time.Hour))
	base := "https://" + s.addr + "/" + s.idScope + "/registrations/" + id
	var op struct{ OperationID, Status string }
	do := func(method, url, body string) {
		req, _ := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&op); err != nil || resp.StatusCode >= 300 {
			b.Fatalf("%s %s: %d %v", method, url, resp.StatusCode, err)
		}
	}
	do("PUT", base+"/register?api-version=2019-03-31", `{"registrationId":"`+id+`"}`)
	do("GET", base+"/operations/"+op.OperationID+"?api-version=2019-03-31", "")
	if op.Status != "assigned" {
		b.Fatalf("%s: %s", id, op.Status)
	}
}

func (s *server) client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.pool, ServerName: "localhost"}}}
}

// BenchmarkServerCPUPerRegistration reports the server process's CPU time
// per registration (server-cpu-µs/op) next to the client-observed latency
// (ns/op, which includes the client's own work on the same 2 cores).
// "fresh-tls": every device opens a new TLS connection (full handshake);
// "keep-alive": one connection for all, so the difference is the handshake.
func BenchmarkServerCPUPerRegistration(b *testing.B) {
	s := startServer(b)
	for _, mode := range []string{"fresh-tls", "keep-alive"} {
		b.Run(mode, func(b *testing.B) {
			shared := s.client()
			s.register(b, shared, mode+"-warm-up")
			before := cpuTime(b, s.cmd.Process.Pid)
			n := 0
			for b.Loop() {
				c := shared
				if mode == "fresh-tls" {
					c = s.client()
				}
				s.register(b, c, fmt.Sprintf("%s-%d", mode, n))
				if mode == "fresh-tls" {
					c.CloseIdleConnections()
				}
				n++
			}
			used := cpuTime(b, s.cmd.Process.Pid) - before
			b.ReportMetric(float64(used.Microseconds())/float64(n), "server-cpu-µs/op")
		})
	}
}
