package throttle

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usher-iot/usher/internal/fault"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

// step is one request in a limiter scenario, after advancing the clock.
type step struct {
	after  time.Duration
	req    Request
	charge bool // call Charge when admitted (the registrar accepted the proof)
	want   string
	// wantRetry is the expected RetryAfterSeconds of a refusal.
	wantRetry int
}

func reg(id, src string) Request {
	return Request{Transport: "https", Class: Registration, DeviceID: id, Source: src}
}
func poll(id, src string) Request {
	return Request{Transport: "mqtt", Class: Poll, DeviceID: id, Source: src}
}

func TestLimiter(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		steps []step
	}{
		{
			name: "ok/unlimited admits everything",
			steps: []step{
				{req: reg("a", "10.0.0.1:1"), want: "ok"}, {req: reg("a", "10.0.0.1:1"), want: "ok"}, {req: poll("a", "10.0.0.1:1"), want: "ok"},
			},
		},
		{
			name: "429/global burst then refill",
			opts: Options{Registrations: Rate{N: 2, Per: time.Second}},
			steps: []step{
				{req: reg("a", "10.0.0.1:1"), want: "ok"},
				{req: reg("b", "10.0.0.2:1"), want: "ok"},
				{req: reg("c", "10.0.0.3:1"), want: LimitRegistrations, wantRetry: 1},
				{req: poll("c", "10.0.0.3:1"), want: "ok"}, // polls do not spend the global budget
				{after: 500 * time.Millisecond, req: reg("c", "10.0.0.3:1"), want: "ok"},
				{req: reg("d", "10.0.0.3:1"), want: LimitRegistrations, wantRetry: 1},
			},
		},
		{
			name: "429/per device only after proven requests",
			opts: Options{RegistrationsPerDevice: Rate{N: 2, Per: time.Minute}},
			steps: []step{
				{req: reg("a", "10.0.0.1:1"), want: "ok"}, // not charged: a wrong key spends nothing
				{req: reg("a", "10.0.0.1:1"), want: "ok"},
				{req: reg("a", "10.0.0.1:1"), want: "ok", charge: true},
				{req: reg("a", "10.0.0.2:1"), want: "ok", charge: true},
				{req: reg("a", "10.0.0.1:1"), want: LimitRegistrationsPerDevice, wantRetry: 30},
				{req: reg("b", "10.0.0.1:1"), want: "ok", charge: true},
				{req: poll("a", "10.0.0.1:1"), want: "ok"}, // polls have their own budget
				{after: 30 * time.Second, req: reg("a", "10.0.0.1:1"), want: "ok", charge: true},
				{req: reg("a", "10.0.0.1:1"), want: LimitRegistrationsPerDevice, wantRetry: 30},
			},
		},
		{
			name: "429/polls per device",
			opts: Options{PollsPerDevice: Rate{N: 1, Per: 2 * time.Second}},
			steps: []step{
				{req: poll("a", "10.0.0.1:1"), want: "ok", charge: true},
				{req: poll("a", "10.0.0.1:1"), want: LimitPollsPerDevice, wantRetry: 2},
				{req: reg("a", "10.0.0.1:1"), want: "ok"},
				{after: 1500 * time.Millisecond, req: poll("a", "10.0.0.1:1"), want: LimitPollsPerDevice, wantRetry: 1},
				{after: 500 * time.Millisecond, req: poll("a", "10.0.0.1:1"), want: "ok"},
			},
		},
		{
			name: "429/per source counts every request, before any proof",
			opts: Options{RequestsPerSource: Rate{N: 2, Per: 10 * time.Second}},
			steps: []step{
				{req: reg("a", "10.0.0.1:1000"), want: "ok"},
				{req: poll("b", "10.0.0.1:2000"), want: "ok"}, // another port, same host
				{req: reg("c", "10.0.0.1:3000"), want: LimitRequestsPerSource, wantRetry: 5},
				{req: reg("c", "10.0.0.2:3000"), want: "ok"},
				{req: reg("d", "[2001:db8::1]:1"), want: "ok"},
				{req: reg("d", "[2001:db8::2]:1"), want: "ok"}, // same /64
				{req: reg("d", "[2001:db8::3]:1"), want: LimitRequestsPerSource, wantRetry: 5},
				{req: reg("d", "[2001:db8:0:1::3]:1"), want: "ok"},
				{after: 5 * time.Second, req: reg("e", "10.0.0.1:1"), want: "ok"},
			},
		},
		{
			name: "429/the most specific limit is named, the longest wait is sent",
			opts: Options{Registrations: Rate{N: 1, Per: time.Second}, RegistrationsPerDevice: Rate{N: 1, Per: time.Minute}},
			steps: []step{
				{req: reg("a", "10.0.0.1:1"), want: "ok", charge: true},
				{req: reg("a", "10.0.0.1:1"), want: LimitRegistrationsPerDevice, wantRetry: 60},
				{req: reg("b", "10.0.0.1:1"), want: LimitRegistrations, wantRetry: 1},
			},
		},
		{
			name: "429/a refused request spends no budget",
			opts: Options{Registrations: Rate{N: 1, Per: time.Second}, RequestsPerSource: Rate{N: 1, Per: time.Second}},
			steps: []step{
				{req: reg("a", "10.0.0.1:1"), want: "ok"},
				{req: reg("b", "10.0.0.2:1"), want: LimitRegistrations, wantRetry: 1},
				{after: time.Second, req: reg("c", "10.0.0.2:1"), want: "ok"}, // 10.0.0.2 still has its token
			},
		},
		{
			name: "429/concurrent proven requests overdraw and wait longer",
			opts: Options{RegistrationsPerDevice: Rate{N: 1, Per: 10 * time.Second}},
			steps: []step{
				{req: reg("a", "10.0.0.1:1"), want: "ok", charge: true},
				{req: reg("a", "10.0.0.1:1"), want: LimitRegistrationsPerDevice, wantRetry: 10},
			},
		},
		{
			name: "429/retry-after capped at 300 s",
			opts: Options{RegistrationsPerDevice: Rate{N: 1, Per: time.Hour}},
			steps: []step{
				{req: reg("a", "10.0.0.1:1"), want: "ok", charge: true},
				{req: reg("a", "10.0.0.1:1"), want: LimitRegistrationsPerDevice, wantRetry: 300},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			var hooked []string
			tt.opts.Now = c.now
			tt.opts.OnThrottle = func(transport, limit string) { hooked = append(hooked, transport+" "+limit) }
			l := New(tt.opts)
			var wantHooked []string
			for i, s := range tt.steps {
				c.advance(s.after)
				d := l.Admit(s.req)
				got := "ok"
				if !d.OK {
					got = d.Limit
					wantHooked = append(wantHooked, s.req.Transport+" "+s.want)
				}
				if got != s.want {
					t.Fatalf("step %d %+v: got %s, want %s", i, s.req, got, s.want)
				}
				if !d.OK && d.RetryAfterSeconds() != s.wantRetry {
					t.Errorf("step %d: retry after %d s (%s), want %d s", i, d.RetryAfterSeconds(), d.RetryAfter, s.wantRetry)
				}
				if s.charge {
					d.Charge()
				}
			}
			if diff := cmp.Diff(wantHooked, hooked); diff != "" {
				t.Errorf("OnThrottle calls (-want +got):\n%s", diff)
			}
		})
	}
}

// Charging twice concurrently (two requests of one device admitted at once)
// overdraws the bucket: the device then waits for the debt too.
func TestChargeOverdraws(t *testing.T) {
	c := newClock()
	l := New(Options{RegistrationsPerDevice: Rate{N: 1, Per: 10 * time.Second}, Now: c.now})
	a, b := l.Admit(reg("a", "x")), l.Admit(reg("a", "x"))
	if !a.OK || !b.OK {
		t.Fatal("both requests should be admitted before either is charged")
	}
	a.Charge()
	b.Charge()
	d := l.Admit(reg("a", "x"))
	if d.OK || d.RetryAfterSeconds() != 20 {
		t.Errorf("after two charges: ok=%v retry %d s, want refused for 20 s", d.OK, d.RetryAfterSeconds())
	}
}

func TestDecisionErr(t *testing.T) {
	l := New(Options{Registrations: Rate{N: 1, Per: time.Second}})
	if err := l.Admit(reg("a", "x")).Err(); err != nil {
		t.Fatalf("admitted request: Err() = %v", err)
	}
	err := l.Admit(reg("b", "x")).Err()
	if !fault.Is(err, fault.Throttled) {
		t.Fatalf("refused request: Err() = %v, want a fault.Throttled", err)
	}
	if got, want := fault.MessageOf(err), "Too many requests: this node's registrations limit is reached; retry after 1 seconds."; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

func TestNilLimiterAdmits(t *testing.T) {
	var l *Limiter
	d := l.Admit(reg("a", "x"))
	if !d.OK {
		t.Fatal("a nil limiter refused a request")
	}
	d.Charge() // must not panic
}

// An attacker cycling registration IDs or addresses cannot grow a table
// past MaxKeys; keys whose buckets refilled are dropped first, so a calm
// table shrinks.
func TestKeySetBound(t *testing.T) {
	c := newClock()
	l := New(Options{
		RegistrationsPerDevice: Rate{N: 1, Per: time.Minute},
		RequestsPerSource:      Rate{N: 5, Per: time.Second},
		MaxKeys:                100,
		Now:                    c.now,
	})
	for i := range 10_000 {
		d := l.Admit(reg(fmt.Sprintf("dev-%d", i), fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255)))
		if !d.OK {
			t.Fatalf("request %d refused by %s", i, d.Limit)
		}
		d.Charge()
	}
	if n := l.perDevice[Registration].len(); n != 100 {
		t.Errorf("per-device table holds %d keys, want 100", n)
	}
	if n := l.perSource.len(); n != 100 {
		t.Errorf("per-source table holds %d keys, want 100", n)
	}
	// The newest key is still limited; the oldest was forgotten.
	if d := l.Admit(reg("dev-9999", "10.200.0.1:1")); d.OK {
		t.Error("the most recent device was admitted again at once")
	}
	if d := l.Admit(reg("dev-0", "10.200.0.2:1")); !d.OK {
		t.Errorf("a forgotten device was refused by %s", d.Limit)
	}
	// Once every bucket has refilled, each new key drops two old ones.
	c.advance(time.Hour)
	for i := range 30 {
		l.Admit(reg("calm", fmt.Sprintf("10.201.0.%d:1", i))).Charge()
	}
	if n := l.perSource.len(); n > 100-30 {
		t.Errorf("per-source table holds %d keys after a calm period, want at most %d", n, 100-30)
	}
}

func TestSourceKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.1:443", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:80", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:8883", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1", "fe80::/64"},
		{"pipe", "pipe"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := sourceKey(tt.in); got != tt.want {
			t.Errorf("sourceKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		str     string
		wantErr bool
	}{
		{in: "", want: Rate{}, str: "off"},
		{in: "0", want: Rate{}, str: "off"},
		{in: "off", want: Rate{}, str: "off"},
		{in: "0/min", want: Rate{}, str: "off"},
		{in: "200", want: Rate{200, time.Second}, str: "200/s"},
		{in: "200/s", want: Rate{200, time.Second}, str: "200/s"},
		{in: " 10 / min ", want: Rate{10, time.Minute}, str: "10/min"},
		{in: "10/m", want: Rate{10, time.Minute}, str: "10/min"},
		{in: "100/h", want: Rate{100, time.Hour}, str: "100/h"},
		{in: "5/10s", want: Rate{5, 10 * time.Second}, str: "5/10s"},
		{in: "-1/s", wantErr: true},
		{in: "1.5/s", wantErr: true},
		{in: "ten/s", wantErr: true},
		{in: "10/fortnight", wantErr: true},
		{in: "10/0s", wantErr: true},
		{in: "10/-1s", wantErr: true},
		{in: "99999999999/s", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseRate(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if tt.wantErr {
			continue
		}
		if got != tt.want || got.String() != tt.str {
			t.Errorf("ParseRate(%q) = %+v (%s), want %+v (%s)", tt.in, got, got, tt.want, tt.str)
		}
	}
}

// Times read by goroutines that then take the lock in another order must not
// let more through than the bucket allows: the limiter never hands its
// buckets a time earlier than the last.
func TestTimeNeverRunsBackwards(t *testing.T) {
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var i int
	l := New(Options{
		Registrations: Rate{N: 10, Per: time.Second},
		Now: func() time.Time {
			i++
			at := start.Add(time.Duration(i) * 10 * time.Millisecond)
			if i%2 == 1 {
				at = at.Add(-500 * time.Millisecond) // read long ago, locked late
			}
			return at
		},
	})
	admitted := 0
	for range 1000 {
		if l.Admit(reg("a", "x")).OK {
			admitted++
		}
	}
	// 10 s of time: a burst of 10 plus 10/s.
	if admitted > 110 {
		t.Errorf("admitted %d over 10 s at 10/s with a burst of 10, want at most 110", admitted)
	}
}
