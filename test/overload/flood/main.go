// Command flood is the overload test's load generator (test/overload): it
// offers device registrations over HTTPS at a fixed rate, open loop, from
// many workers on kept-alive connections, each for a new member of one
// symmetric-key enrollment group, and prints every request's outcome as
// JSON. It runs as its own process, built without the race detector that
// CI runs the tests under, so the client can offer thousands of requests a
// second on a small machine.
//
// A 429 answer is checked for Azure's form (Retry-After, x-ms-error-code
// 429001 and the DPS error body); anything else unexpected is reported as
// the request's error. No request is retried.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usher-iot/usher/internal/sas"
	"github.com/usher-iot/usher/internal/wire"
)

// Result is one request's outcome.
type Result struct {
	Sent       int64  `json:"sent"` // Unix nanoseconds
	Done       int64  `json:"done"`
	Status     int    `json:"status"`               // 0 when no answer came
	RetryAfter int    `json:"retryAfter,omitempty"` // of a 429
	Err        string `json:"err,omitempty"`        // transport error or malformed answer
}

// Report is what flood prints.
type Report struct {
	Start   int64    `json:"start"` // when request 0 was due, Unix nanoseconds
	Results []Result `json:"results"`
}

func main() {
	addr := flag.String("addr", "", "HTTPS address host:port")
	scope := flag.String("id-scope", "", "ID scope")
	caFile := flag.String("ca", "", "CA file to trust")
	groupKey := flag.String("group-key", "", "the enrollment group's primary key")
	prefix := flag.String("prefix", "flood", "registration ID prefix")
	rate := flag.Int("rate", 2000, "requests per second offered")
	duration := flag.Duration("duration", 7*time.Second, "how long requests are offered")
	workers := flag.Int("workers", 128, "concurrent requests, each on its own kept-alive connection")
	flag.Parse()
	if *addr == "" || *scope == "" || *caFile == "" || *groupKey == "" || *rate < 1 || *workers < 1 {
		log.Fatal("flood: -addr, -id-scope, -ca and -group-key are required")
	}
	client, err := newClient(*caFile, *workers)
	if err != nil {
		log.Fatal(err)
	}
	warm(client, *addr, *workers)

	// Request k is due at start + k/rate; a worker takes the next due
	// request, waits for its time and sends it. When every worker is busy
	// requests go out late, and the offered rate is what this client did.
	var next atomic.Int64
	var mu sync.Mutex
	var results []Result
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(*rate)
	start := time.Now().Add(100 * time.Millisecond)
	end := start.Add(*duration)
	for range *workers {
		wg.Go(func() {
			var mine []Result
			for {
				k := next.Add(1) - 1
				due := start.Add(time.Duration(k) * interval)
				if !due.Before(end) {
					break
				}
				time.Sleep(time.Until(due))
				mine = append(mine, register(client, *addr, *scope, *groupKey, fmt.Sprintf("%s-%d", *prefix, k)))
			}
			mu.Lock()
			results = append(results, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(Report{Start: start.UnixNano(), Results: results}); err != nil {
		log.Fatal(err)
	}
}

func newClient(caFile string, workers int) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("flood: no certificate in %s", caFile)
	}
	// HTTP/1.1 (no ForceAttemptHTTP2): one kept-alive connection per worker.
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "localhost"},
		MaxIdleConns:        workers,
		MaxIdleConnsPerHost: workers,
		MaxConnsPerHost:     workers,
		IdleConnTimeout:     time.Minute,
	}}, nil
}

// warm opens every worker's connection before the flood (a GET /healthz
// each, all at once), so TLS handshakes do not eat into its first second.
func warm(c *http.Client, addr string, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			resp, err := c.Get("https://" + addr + "/healthz")
			if err != nil {
				log.Fatalf("flood: opening connections: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
}

// register PUTs one registration and checks the answer's form.
func register(c *http.Client, addr, scope, groupKey, id string) (r Result) {
	r.Sent = time.Now().UnixNano()
	defer func() { r.Done = time.Now().UnixNano() }()
	key, err := sas.DeriveDeviceKey(groupKey, id)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	tok, err := sas.SignKey(scope+"/registrations/"+id, "registration", key, time.Now().Add(time.Hour))
	if err != nil {
		r.Err = err.Error()
		return r
	}
	req, err := http.NewRequest(http.MethodPut, "https://"+addr+"/"+scope+"/registrations/"+id+"/register?api-version=2021-06-01",
		strings.NewReader(`{"registrationId":"`+id+`"}`))
	if err != nil {
		r.Err = err.Error()
		return r
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := c.Do(req)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	r.Status = resp.StatusCode
	switch resp.StatusCode {
	case http.StatusAccepted:
		var op wire.RegistrationOperationStatus
		if err := json.Unmarshal(body, &op); err != nil || op.OperationID == "" || op.Status != "assigning" {
			r.Err = fmt.Sprintf("202 without an assigning operation: %s", body)
		}
	case http.StatusTooManyRequests:
		var e wire.ErrorDetails
		r.RetryAfter, err = strconv.Atoi(resp.Header.Get("Retry-After"))
		switch {
		case err != nil || r.RetryAfter < 1:
			r.Err = fmt.Sprintf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
		case resp.Header.Get("x-ms-error-code") != "429001":
			r.Err = fmt.Sprintf("429 with x-ms-error-code %q", resp.Header.Get("x-ms-error-code"))
		case json.Unmarshal(body, &e) != nil || e.ErrorCode != 429001 || e.TrackingID == "" || e.Message == "" || e.TimestampUTC == "":
			r.Err = fmt.Sprintf("429 without Azure's error body: %s", body)
		}
	}
	return r
}
