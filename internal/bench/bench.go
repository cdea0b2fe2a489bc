// Package bench is the load generator behind `usher bench`: it provisions
// many simulated devices through deviceclient at a given concurrency, each
// on a fresh TLS connection unless asked to keep one alive, and measures
// throughput, latency percentiles and errors by kind. Baseline measures
// bare TLS handshakes against an in-process TLS server with the same
// certificate and client configuration, so a report can state how close
// registrations come to the machine's own TLS ceiling.
//
// Nothing here reads flags or prints except through the writers it is
// given; cmd/usher wires it.
package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Load is a run of Total units of work at Concurrency.
type Load struct {
	Total       int
	Concurrency int
	// Do performs unit i (0 ≤ i < Total); its error is classified with
	// Classify and counted, never fatal to the run.
	Do func(ctx context.Context, i int) error
	// Progress, when set, is called from one goroutine with a snapshot
	// about every Every (default 250 ms) and once at the end.
	Progress func(Snapshot)
	Every    time.Duration
	// Rate, when positive, paces the run: unit i starts no earlier than
	// i/Rate seconds after the start (an open-loop arrival rate, capped by
	// Concurrency). A paced unit's latency counts from its scheduled start,
	// so time spent waiting for a free slot is not hidden.
	Rate float64
}

// Snapshot is the state of a run in progress.
type Snapshot struct {
	Done, Errors, Total int
	Elapsed             time.Duration
}

// Outcome is what a Load measured.
type Outcome struct {
	Total     int
	Succeeded int
	Duration  time.Duration
	// Latencies are the durations of the successful units, unsorted.
	Latencies []time.Duration
	// ErrorsByKind counts failures by Classify's kind.
	ErrorsByKind map[string]int
	// FirstError is the first failure's message, for the report.
	FirstError string
}

// Errors is the number of failed units.
func (o Outcome) Errors() int { return o.Total - o.Succeeded }

// PerSecond is the successful units per second of the run.
func (o Outcome) PerSecond() float64 {
	if o.Duration <= 0 {
		return 0
	}
	return float64(o.Succeeded) / o.Duration.Seconds()
}

// Run performs the load and returns when every unit has finished or ctx
// ends (units not started then are counted as errors of kind "canceled").
func Run(ctx context.Context, l Load) Outcome {
	conc := min(max(l.Concurrency, 1), max(l.Total, 1))
	var (
		next     atomic.Int64
		done     atomic.Int64
		failed   atomic.Int64
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, l.Total)
		byKind   = map[string]int{}
		firstErr string
	)
	start := time.Now()
	stopProgress := startProgress(l, start, &done, &failed)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= l.Total {
					return
				}
				var err error
				t0 := time.Now()
				if l.Rate > 0 {
					t0 = start.Add(time.Duration(float64(i) / l.Rate * float64(time.Second)))
					if wait := time.Until(t0); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
						}
					}
				}
				if err = ctx.Err(); err == nil {
					err = l.Do(ctx, i)
				}
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					byKind[Classify(err)]++
					if firstErr == "" {
						firstErr = err.Error()
					}
					failed.Add(1)
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	wg.Wait()
	o := Outcome{Total: l.Total, Succeeded: len(lat), Duration: time.Since(start), Latencies: lat, FirstError: firstErr}
	if len(byKind) > 0 {
		o.ErrorsByKind = byKind
	}
	stopProgress()
	return o
}

// startProgress calls l.Progress periodically until the returned function
// is called, which also delivers the final snapshot.
func startProgress(l Load, start time.Time, done, failed *atomic.Int64) func() {
	if l.Progress == nil {
		return func() {}
	}
	every := l.Every
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	snap := func() Snapshot {
		return Snapshot{Done: int(done.Load()), Errors: int(failed.Load()), Total: l.Total, Elapsed: time.Since(start)}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.Progress(snap())
			case <-stop:
				l.Progress(snap())
				return
			}
		}
	}()
	return func() {
		close(stop)
		<-finished
	}
}
