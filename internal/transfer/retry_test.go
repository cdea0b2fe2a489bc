package transfer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/sas"
)

// fakeDPS answers each request with the next of answers (the last one
// repeats) and counts the requests.
func fakeDPS(t *testing.T, answers ...func(http.ResponseWriter)) (*client.Client, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		answers[min(i, len(answers)-1)](w)
	}))
	t.Cleanup(srv.Close)
	cs := sas.ConnectionString{HostName: strings.TrimPrefix(srv.URL, "https://"), SharedAccessKeyName: "owner", SharedAccessKey: "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY="}
	cl, err := client.New(cs, client.Options{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return cl, &n
}

func status(code int, retryAfter string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"errorCode":` + map[int]string{200: "0", 400: "400004", 429: "429001", 503: "503001", 401: "401002"}[code] + `,"message":"m"}`))
	}
}

func ok(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"registrationId":"d","attestation":{"type":"symmetricKey"}}`))
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name      string
		answers   []func(http.ResponseWriter)
		wantCalls int64
		wantErr   string
		throttled int64
		minWait   time.Duration
	}{
		{name: "ok/429 with Retry-After then 200", answers: []func(http.ResponseWriter){status(429, "1"), ok}, wantCalls: 2, throttled: 1, minWait: time.Second},
		{name: "ok/503 without Retry-After backs off", answers: []func(http.ResponseWriter){status(503, ""), status(503, ""), ok}, wantCalls: 3},
		{name: "failed/400 is not retried", answers: []func(http.ResponseWriter){status(400, "")}, wantCalls: 1, wantErr: "HTTP 400"},
		{name: "failed/401 is not retried", answers: []func(http.ResponseWriter){status(401, "")}, wantCalls: 1, wantErr: "HTTP 401"},
		{name: "failed/429 until the attempts run out", answers: []func(http.ResponseWriter){status(429, "0")}, wantCalls: 3, wantErr: "HTTP 429", throttled: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, calls := fakeDPS(t, tt.answers...)
			r := &Retry{Attempts: 3, MaxBackoff: 50 * time.Millisecond}
			var waited time.Duration
			r.OnWait = func(_ error, d time.Duration) { waited += d }
			start := time.Now()
			_, err := call(context.Background(), r, func(ctx context.Context) (any, error) { return cl.Enrollment(ctx, "d") })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if calls.Load() != tt.wantCalls || r.Throttled() != tt.throttled {
				t.Errorf("%d calls, %d throttled; want %d and %d", calls.Load(), r.Throttled(), tt.wantCalls, tt.throttled)
			}
			if took := time.Since(start); took < tt.minWait || waited < tt.minWait {
				t.Errorf("took %s (waits %s), want at least %s", took, waited, tt.minWait)
			}
		})
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	cl, calls := fakeDPS(t, status(429, "60"))
	ctx, cancel := context.WithCancel(context.Background())
	r := &Retry{OnWait: func(error, time.Duration) { cancel() }}
	_, err := call(ctx, r, func(ctx context.Context) (any, error) { return cl.Enrollment(ctx, "d") })
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.RetryAfter != time.Minute || calls.Load() != 1 {
		t.Errorf("err = %v after %d calls, want the 429 (Retry-After 60 s) after 1", err, calls.Load())
	}
}

func TestFatal(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&client.APIError{Status: 400}, false},
		{&client.APIError{Status: 404}, false},
		{&client.APIError{Status: 409}, false},
		{&client.APIError{Status: 401}, true},
		{&client.APIError{Status: 429}, true},
		{&client.APIError{Status: 503}, true},
		{errors.New("dial tcp: connection refused"), true},
	} {
		if got := fatal(tt.err); got != tt.want {
			t.Errorf("fatal(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := &Progress{W: &b, Terminal: true, Total: 200, Verb: "lines"}
	s := &Summary{Created: 50, Unchanged: 50}
	p.update(s, true)
	p.done()
	got := b.String()
	if !strings.HasPrefix(got, "\r\x1b[K[############------------]  50% 100 lines") || !strings.HasSuffix(got, "failed 0\n") {
		t.Errorf("terminal progress = %q", got)
	}
	b.Reset()
	p = &Progress{W: &b, Every: time.Hour}
	p.update(s, false) // too soon
	p.update(s, true)
	p.done()
	if got := b.String(); strings.Count(got, "\n") != 1 || strings.Contains(got, "\r") {
		t.Errorf("plain progress = %q, want one line", got)
	}
}
