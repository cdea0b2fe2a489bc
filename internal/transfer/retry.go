package transfer

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/usher-iot/usher/internal/client"
)

// Retry says how calls to a service are retried: answers 429 and 503 (and
// 500, 502, 504) after the delay their Retry-After asks for, or after an
// exponential backoff (0.5 s doubling up to MaxBackoff, with jitter) when
// they carry none; a connection reset or cut up to three times. The zero
// value retries 10 times.
type Retry struct {
	Attempts   int           // tries per call, the first included; 10 when 0
	MaxBackoff time.Duration // longest backoff without Retry-After; 30 s when 0
	// MaxWait caps a Retry-After; 5 minutes when 0 (the longest Usher and
	// the Azure SDKs use).
	MaxWait time.Duration
	// OnWait, when set, is told about each wait before it starts.
	OnWait func(err error, wait time.Duration)

	throttled atomic.Int64
}

// Throttled is how many 429 answers were waited out so far.
func (r *Retry) Throttled() int64 { return r.throttled.Load() }

// call runs fn until it succeeds, fails for good, or ctx ends.
func call[T any](ctx context.Context, r *Retry, fn func(context.Context) (T, error)) (T, error) {
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = 10
	}
	maxBackoff := r.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	maxWait := r.MaxWait
	if maxWait <= 0 {
		maxWait = 5 * time.Minute
	}
	backoff := 500 * time.Millisecond
	netFailures := 0
	for attempt := 1; ; attempt++ {
		v, err := fn(ctx)
		if err == nil || ctx.Err() != nil || attempt >= attempts {
			return v, err
		}
		var wait time.Duration
		var apiErr *client.APIError
		switch {
		case errors.As(err, &apiErr) && transient(apiErr.Status):
			if apiErr.Status == http.StatusTooManyRequests {
				r.throttled.Add(1)
			}
			wait = min(apiErr.RetryAfter, maxWait)
		case connectionCut(err) && netFailures < 3:
			netFailures++
		default:
			return v, err
		}
		if wait <= 0 {
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, maxBackoff)
		}
		if r.OnWait != nil {
			r.OnWait(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}

// transient statuses are worth another try.
func transient(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// connectionCut reports an error of a connection that broke mid-request.
func connectionCut(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
