package throttle

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Rate is at most N events per Per, with bursts of up to N: a token bucket
// holding N tokens that refills at N/Per. The zero Rate is unlimited.
type Rate struct {
	N   int
	Per time.Duration
}

// Unlimited reports whether r lets everything through.
func (r Rate) Unlimited() bool { return r.N <= 0 || r.Per <= 0 }

// limit is r as the token bucket's refill rate, in events per second.
func (r Rate) limit() rate.Limit { return rate.Limit(float64(r.N) / r.Per.Seconds()) }

// newLimiter returns a full bucket for r; r must not be unlimited.
func (r Rate) newLimiter() *rate.Limiter { return rate.NewLimiter(r.limit(), r.N) }

// String renders r the way ParseRate reads it: "off", "200/s", "10/min",
// "100/h" or "5/10s".
func (r Rate) String() string {
	if r.Unlimited() {
		return "off"
	}
	per := r.Per.String()
	switch r.Per {
	case time.Second:
		per = "s"
	case time.Minute:
		per = "min"
	case time.Hour:
		per = "h"
	}
	return strconv.Itoa(r.N) + "/" + per
}

// maxEvents bounds N, so a typo cannot ask for a bucket of absurd size.
const maxEvents = 1_000_000_000

// ParseRate reads a rate: "N/s", "N/min" (or "N/m"), "N/h", "N/<Go
// duration>" such as "5/10s", or a bare "N" meaning N per second. "0",
// "off" and "" mean unlimited.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "0", "off":
		return Rate{}, nil
	}
	count, per, found := strings.Cut(s, "/")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 0 || n > maxEvents {
		return Rate{}, fmt.Errorf("rate %q: want a whole number of events from 0 to %d, then /s, /min, /h or /<duration>", s, maxEvents)
	}
	if n == 0 {
		return Rate{}, nil
	}
	r := Rate{N: n, Per: time.Second}
	if !found {
		return r, nil
	}
	switch per = strings.ToLower(strings.TrimSpace(per)); per {
	case "s", "sec", "second":
		r.Per = time.Second
	case "m", "min", "minute":
		r.Per = time.Minute
	case "h", "hour":
		r.Per = time.Hour
	default:
		d, err := time.ParseDuration(per)
		if err != nil || d < time.Millisecond {
			return Rate{}, fmt.Errorf("rate %q: the period after / must be s, min, h or a duration of at least 1ms such as 10s", s)
		}
		r.Per = d
	}
	return r, nil
}
