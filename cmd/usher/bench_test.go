package main

import (
	"encoding/json"
	"testing"

	"github.com/usher-iot/usher/internal/bench"
)

func TestBench(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name string
		args []string
	}{
		{"ok/https fresh TLS with baseline", []string{"--transport", "https"}},
		{"ok/mqtt fresh TLS with baseline", []string{"--transport", "mqtt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"bench", "--devices", "50", "--concurrency", "8", "--baseline", "--json",
				"--retry-after-cap", "0", "--prefix", tt.args[1] + "-"}, tt.args...)
			out := s.mustUsher(t, args...)
			var rep bench.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("report is not JSON: %v\n%s", err, out)
			}
			if rep.Registrations != 50 || rep.Errors != 0 || rep.Devices != 50 {
				t.Errorf("registrations %d, errors %d (%v, %s) of %d devices; want 50, 0 of 50", rep.Registrations, rep.Errors, rep.ErrorsByKind, rep.FirstError, rep.Devices)
			}
			if rep.Transport != tt.args[1] || rep.KeepAlive || !rep.SourceAddressSpread {
				t.Errorf("transport %q keepAlive %v spread %v; want %s, fresh, spread", rep.Transport, rep.KeepAlive, rep.SourceAddressSpread, tt.args[1])
			}
			if rep.RegistrationsPerSecond <= 0 || rep.LatencyMs.P50 <= 0 || rep.LatencyMs.Max < rep.LatencyMs.P99 {
				t.Errorf("throughput %v, latency %+v; want positive, ordered", rep.RegistrationsPerSecond, rep.LatencyMs)
			}
			b := rep.Baseline
			if b == nil || b.Handshakes != 50 || b.HandshakesPerSecond <= 0 || b.SessionResumption || b.TLSVersion == "" || b.Certificate != "target's" {
				t.Fatalf("baseline %+v; want 50 handshakes with the target's certificate, resumption off", b)
			}
			if rep.Ratio <= 0 {
				t.Errorf("ratio %v, want present", rep.Ratio)
			}
		})
	}
}

func TestBenchReusesGroupAndHonoursRetryAfter(t *testing.T) {
	s := startServer(t)
	s.mustUsher(t, "bench", "--devices", "3", "--concurrency", "3", "--group-id", "g1", "--json", "--retry-after-cap", "0")
	out := s.mustUsher(t, "bench", "--devices", "4", "--concurrency", "4", "--group-id", "g1", "--json", "--keep-alive")
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	if rep.Registrations != 4 || !rep.KeepAlive || rep.RetryAfter != "honoured" {
		t.Errorf("report %+v; want 4 registrations over keep-alive, retry-after honoured", rep)
	}
	if rep.LatencyMs.P50 < 1000 {
		t.Errorf("p50 %v ms; honouring the server's 1 s retry-after takes at least 1000 ms", rep.LatencyMs.P50)
	}
}

func TestBenchErrors(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name string
		args []string
	}{
		{"error/no devices", []string{"bench", "--devices", "0"}},
		{"error/keep-alive over mqtt", []string{"bench", "--transport", "mqtt", "--keep-alive", "--devices", "1"}},
		{"error/local with a data dir", []string{"bench", "--local", "--data-dir", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := s.usher(t, tt.args...); err == nil {
				t.Errorf("usher %v succeeded, want an error", tt.args)
			}
		})
	}
}

func TestBenchLocal(t *testing.T) {
	var s testServer // no server: --local brings its own
	out := s.mustUsher(t, "bench", "--local", "--devices", "10", "--concurrency", "4", "--retry-after-cap", "0", "--json")
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	if rep.Registrations != 10 || rep.Server == nil || rep.Server.CPUSeconds <= 0 || rep.Server.PeakRSSBytes <= 0 {
		t.Errorf("report %+v (server %+v); want 10 registrations and this process's usage", rep, rep.Server)
	}
}
