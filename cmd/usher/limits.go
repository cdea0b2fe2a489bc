package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/usher-iot/usher/internal/throttle"
)

// Built-in limits, used when a limit setting is left empty. They never
// throttle a well-behaved fleet or the test suites, and protect a node from
// what a real one meets (package throttle says how each counts): a device
// stuck in a reboot loop re-registering, and connections piling up past
// what memory holds. The node-wide registration rate and the per-source rate are off by
// default: what a node can serve depends on its hardware and store (measure
// it with usher bench), and devices behind one NAT share an address.
const (
	defaultLimitRegistrations          = "off"
	defaultLimitRegistrationsPerDevice = "10/min"
	defaultLimitPollsPerDevice         = "60/min"
	defaultLimitRequestsPerSource      = "off"
	defaultMaxConnections              = 10_000
)

// textOrNumber is a configuration value that a TOML file may give as a number
// or as a string (limit-registrations = 200, or "200/s").
type textOrNumber string

// UnmarshalTOML accepts a string, an integer or a float.
func (s *textOrNumber) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*s = textOrNumber(v)
	case int64:
		*s = textOrNumber(strconv.FormatInt(v, 10))
	case float64:
		*s = textOrNumber(strconv.FormatFloat(v, 'f', -1, 64))
	default:
		return fmt.Errorf("want a number or a string, not %T", v)
	}
	return nil
}

// orDefault is s, or def when s is empty.
func (s textOrNumber) orDefault(def string) string {
	if strings.TrimSpace(string(s)) == "" {
		return def
	}
	return string(s)
}

// Limits returns the rate limits and the per-listener connection limit the
// configuration asks for (errors are those Validate reports).
func (c Config) Limits() (throttle.Options, int, error) {
	var errs []error
	rate := func(key string, v textOrNumber, def string) throttle.Rate {
		r, err := throttle.ParseRate(v.orDefault(def))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return r
	}
	opts := throttle.Options{
		Registrations:          rate("limit-registrations", c.LimitRegistrations, defaultLimitRegistrations),
		RegistrationsPerDevice: rate("limit-registrations-per-device", c.LimitRegistrationsPerDevice, defaultLimitRegistrationsPerDevice),
		PollsPerDevice:         rate("limit-polls-per-device", c.LimitPollsPerDevice, defaultLimitPollsPerDevice),
		RequestsPerSource:      rate("limit-requests-per-source", c.LimitRequestsPerSource, defaultLimitRequestsPerSource),
	}
	maxConns := defaultMaxConnections
	if v := strings.TrimSpace(string(c.MaxConnections)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("max-connections %q is not a whole number (0 for no limit)", v))
		}
		maxConns = n
	}
	return opts, maxConns, errors.Join(errs...)
}

// rejectedConnections warns, at most every 10 seconds, that a listener
// closed connections over --max-connections.
type rejectedConnections struct {
	log      *slog.Logger
	listener string
	count    atomic.Int64
	lastWarn atomic.Int64 // unix nanoseconds
}

func (r *rejectedConnections) reject() {
	n := r.count.Add(1)
	now := time.Now().UnixNano()
	if last := r.lastWarn.Load(); now-last >= int64(10*time.Second) && r.lastWarn.CompareAndSwap(last, now) {
		r.log.Warn("connection limit reached; closing new connections (--max-connections)", "listener", r.listener, "closedTotal", n)
	}
}
