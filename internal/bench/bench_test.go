package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/deviceclient"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"zero/no samples", nil, 50, 0},
		{"one sample/every percentile", ms(7), 99, 7 * time.Millisecond},
		{"p50/of 1..100 is 50", ms(hundred...), 50, 50 * time.Millisecond},
		{"p95/of 1..100 is 95", ms(hundred...), 95, 95 * time.Millisecond},
		{"p99/of 1..100 is 99", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100/is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p50/of four rounds up the rank", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99/of ten is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	ds := []time.Duration{4 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}
	got := Summarize(ds)
	want := Latency{P50: 2, P95: 4, P99: 4, Max: 4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Summarize (-want +got):\n%s", diff)
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	opErr := func(errno error) error {
		return fmt.Errorf("DPS at x: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)})
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"auth/401", &deviceclient.ServiceError{Status: 401}, KindAuth},
		{"auth/403", &deviceclient.ServiceError{Status: 403}, KindAuth},
		{"auth/mqtt not authorized", &deviceclient.ConnectionRefusedError{ReturnCode: packets.ErrRefusedNotAuthorised}, KindAuth},
		{"refused/mqtt server unavailable", &deviceclient.ConnectionRefusedError{ReturnCode: packets.ErrRefusedServerUnavailable}, KindRefused},
		{"http 404/other status", fmt.Errorf("wrapped: %w", &deviceclient.ServiceError{Status: 404}), "http 404"},
		{"failed/registration failed", &deviceclient.RegistrationError{Status: deviceclient.StatusFailed}, KindFailed},
		{"refused/connection refused", opErr(syscall.ECONNREFUSED), KindRefused},
		{"reset/connection reset", opErr(syscall.ECONNRESET), KindReset},
		{"ports/address not available", opErr(syscall.EADDRNOTAVAIL), KindPorts},
		{"timeout/deadline", fmt.Errorf("registration did not finish: %w", context.DeadlineExceeded), KindTimeout},
		{"timeout/net timeout", fmt.Errorf("read: %w", timeoutErr{}), KindTimeout},
		{"canceled/interrupted", context.Canceled, KindCanceled},
		{"other/anything else", errors.New("DPS answered 200 with a body that is not a registration status"), KindOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestFormatProgress(t *testing.T) {
	tests := []struct {
		name string
		s    Snapshot
		want string
	}{
		{"start/nothing done", Snapshot{Total: 100}, "[------------------------------]   0/100   0%       0/s  errors 0  eta -"},
		{"half/with rate and eta", Snapshot{Done: 50, Errors: 2, Total: 100, Elapsed: 2 * time.Second}, "[###############---------------]  50/100  50%      25/s  errors 2  eta 2s"},
		{"done/full bar", Snapshot{Done: 100, Total: 100, Elapsed: 4 * time.Second}, "[##############################] 100/100 100%      25/s  errors 0  eta 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatProgress(tt.s); got != tt.want {
				t.Errorf("FormatProgress(%+v) =\n%q, want\n%q", tt.s, got, tt.want)
			}
		})
	}
}

func TestProgressWriterNonTerminalThrottles(t *testing.T) {
	var b strings.Builder
	p := &ProgressWriter{W: &b, Every: 5 * time.Second}
	for i := range 40 { // every 250 ms for 10 s
		p.Update(Snapshot{Done: i, Total: 100, Elapsed: time.Duration(i) * 250 * time.Millisecond})
	}
	p.Update(Snapshot{Done: 100, Total: 100, Elapsed: 10 * time.Second})
	if got, want := strings.Count(b.String(), "\n"), 3; got != want {
		t.Errorf("wrote %d lines, want %d (the first, at 5 s, the final):\n%s", got, want, b.String())
	}
	if strings.Contains(b.String(), "\r") {
		t.Errorf("non-terminal output redraws with \\r:\n%q", b.String())
	}
}

func TestParseProc(t *testing.T) {
	stat := []byte("4242 (usher (serve) x) S 1 4242 4242 0 -1 4194560 9000 0 0 0 250 130 0 0 20 0 12 0 100 0 0\n")
	got, err := parseStat(stat)
	if err != nil || got != 3800*time.Millisecond {
		t.Errorf("parseStat = %v, %v; want 3.8s (utime 250 + stime 130 ticks)", got, err)
	}
	status := []byte("Name:\tusher\nVmPeak:\t  900000 kB\nVmHWM:\t   34560 kB\nVmRSS:\t   30000 kB\n")
	rss, err := parseVmHWM(status)
	if err != nil || rss != 34560*1024 {
		t.Errorf("parseVmHWM = %d, %v; want %d", rss, err, 34560*1024)
	}
	if _, err := parseVmHWM([]byte("Name:\tx\n")); err == nil {
		t.Errorf("parseVmHWM without VmHWM: no error")
	}
}

func TestSelfUsage(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Errorf("CPUTime(self): %v", err)
	}
	if rss, err := PeakRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("PeakRSS(self) = %d, %v", rss, err)
	}
}

func TestDialers(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8443", true},
		{"127.0.0.5:8443", true},
		{"[::1]:8443", false},
		{"localhost:8443", false},
		{"dps.example.com:443", false},
		{"10.0.0.1:443", false},
	}
	for _, tt := range tests {
		if got := NewDialers(tt.addr, true).Spread(); got != tt.want {
			t.Errorf("NewDialers(%q).Spread() = %v, want %v", tt.addr, got, tt.want)
		}
	}
	seen := map[string]bool{}
	for i := range 254 * 256 {
		ip := SourceAddr(i)
		if !ip.IsLoopback() || ip[15] == 0 || ip[15] == 255 {
			t.Fatalf("SourceAddr(%d) = %v, want a loopback host address", i, ip)
		}
		seen[ip.String()] = true
	}
	if len(seen) != 254*256 {
		t.Errorf("SourceAddr gave %d distinct addresses, want %d", len(seen), 254*256)
	}
	if got, want := SourceAddr(254*256).String(), SourceAddr(0).String(); got != want {
		t.Errorf("SourceAddr wraps to %s, want %s", got, want)
	}
}

func TestRunCountsAndClassifies(t *testing.T) {
	var snaps []Snapshot
	out := Run(context.Background(), Load{
		Total: 100, Concurrency: 7,
		Do: func(_ context.Context, i int) error {
			if i%10 == 0 {
				return &deviceclient.ServiceError{Status: 401}
			}
			return nil
		},
		Progress: func(s Snapshot) { snaps = append(snaps, s) },
	})
	if out.Succeeded != 90 || out.Errors() != 10 || len(out.Latencies) != 90 {
		t.Errorf("Run: %d succeeded, %d errors, %d latencies; want 90, 10, 90", out.Succeeded, out.Errors(), len(out.Latencies))
	}
	if diff := cmp.Diff(map[string]int{KindAuth: 10}, out.ErrorsByKind); diff != "" {
		t.Errorf("ErrorsByKind (-want +got):\n%s", diff)
	}
	if len(snaps) == 0 || snaps[len(snaps)-1].Done != 100 {
		t.Errorf("last progress %+v, want Done 100", snaps)
	}
}

func TestRunPacedByRate(t *testing.T) {
	var mu sync.Mutex
	var starts []time.Duration
	begin := time.Now()
	out := Run(context.Background(), Load{
		Total: 20, Concurrency: 8, Rate: 100, // one start per 10 ms: 190 ms for 20
		Do: func(context.Context, int) error {
			mu.Lock()
			starts = append(starts, time.Since(begin))
			mu.Unlock()
			return nil
		},
	})
	if out.Succeeded != 20 {
		t.Fatalf("%d succeeded, want 20", out.Succeeded)
	}
	slices.Sort(starts)
	if last := starts[len(starts)-1]; last < 180*time.Millisecond {
		t.Errorf("the 20th unit started after %v; at 100/s it cannot start before 190 ms", last)
	}
}

func TestBaselineGeneratedCert(t *testing.T) {
	b, err := MeasureBaseline(context.Background(), BaselineOptions{
		Client: &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, Count: 20, Concurrency: 4,
	})
	if err != nil {
		t.Fatalf("MeasureBaseline: %v", err)
	}
	if b.Handshakes != 20 || b.Errors != 0 || b.HandshakesPerSecond <= 0 || b.TLSVersion == "" || b.Curve == "" || b.SessionResumption {
		t.Errorf("baseline %+v, want 20 handshakes, no errors, a rate, version and curve, resumption off", b)
	}
}
