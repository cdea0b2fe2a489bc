package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/pflag"

	"github.com/usher-iot/usher/internal/throttle"
)

func TestLimitSettings(t *testing.T) {
	dir := t.TempDir()
	numbers := filepath.Join(dir, "numbers.toml")
	os.WriteFile(numbers, []byte("limit-registrations = 200\nmax-connections = 500\nlimit-requests-per-source = \"50/s\"\n"), 0o600)
	defaults := throttle.Options{
		RegistrationsPerDevice: throttle.Rate{N: 10, Per: time.Minute},
		PollsPerDevice:         throttle.Rate{N: 60, Per: time.Minute},
	}
	tests := []struct {
		name      string
		flags     []string
		env       map[string]string
		want      throttle.Options
		wantConns int
	}{
		{"ok/built-in defaults", nil, nil, defaults, 10_000},
		{"ok/numbers and strings in a file", []string{"--config", numbers}, nil, throttle.Options{
			Registrations:          throttle.Rate{N: 200, Per: time.Second},
			RegistrationsPerDevice: defaults.RegistrationsPerDevice, PollsPerDevice: defaults.PollsPerDevice,
			RequestsPerSource: throttle.Rate{N: 50, Per: time.Second},
		}, 500},
		{"ok/env and flags, off and 0 lift limits", []string{"--limit-polls-per-device", "off", "--max-connections", "0"},
			map[string]string{"USHER_LIMIT_REGISTRATIONS_PER_DEVICE": "3/10s", "USHER_LIMIT_REGISTRATIONS": "1000/min"}, throttle.Options{
				Registrations:          throttle.Rate{N: 1000, Per: time.Minute},
				RegistrationsPerDevice: throttle.Rate{N: 3, Per: 10 * time.Second},
			}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			addConfigFlags(fs)
			if err := fs.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(fs, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			got, conns, err := cfg.Limits()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(throttle.Options{}, "OnThrottle", "Now")); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
			if conns != tc.wantConns {
				t.Errorf("max connections %d, want %d", conns, tc.wantConns)
			}
		})
	}
}

func TestLimitSettingErrors(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addConfigFlags(fs)
	if err := fs.Parse([]string{"--limit-registrations", "fast", "--limit-registrations-per-device", "10/fortnight", "--max-connections", "-1"}); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(fs, noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"limit-registrations:", "limit-registrations-per-device:", "max-connections"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
