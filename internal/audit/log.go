package audit

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/hub"
)

// Retention defaults: entries are kept 90 days, and at most a million of
// them (a few hundred MB at most), pruned hourly.
const (
	DefaultMaxAge     = 90 * 24 * time.Hour
	DefaultMaxEntries = 1_000_000
	DefaultPruneEvery = time.Hour
)

// Bounds on what one entry holds of a caller's input: a refused device
// chooses its registration ID, ID scope and token audience.
const (
	maxSubjectBytes = 256
	maxReasonBytes  = 512
)

// queueSize bounds the refusals waiting to be written; more are dropped
// (and counted) rather than slowing down the requests that caused them.
const queueSize = 4096

// maxBatch bounds how many refusals one append writes.
const maxBatch = 256

// Options configure a Log. Zero values choose the defaults.
type Options struct {
	Logger     *slog.Logger
	Now        func() time.Time
	MaxAge     time.Duration // entries older than this are pruned
	MaxEntries int           // only the newest this many are kept
	PruneEvery time.Duration // how often Run prunes
}

// Log records entries in a Store. It implements dps.Auditor: changes are
// written before the call returns, refusals are queued and written by Run
// in batches, so a flood of bad tokens costs a bounded queue and a write
// per batch, and a full queue drops refusals (counted by Dropped, and
// warned about) rather than slowing anything down.
type Log struct {
	store      Store
	log        *slog.Logger
	now        func() time.Time
	maxAge     time.Duration
	maxEntries int
	pruneEvery time.Duration

	queue   chan Entry
	dropped atomic.Int64
	mu      sync.Mutex // serialises flushes
}

var _ dps.Auditor = (*Log)(nil)

// New returns a Log over store.
func New(store Store, opts Options) *Log {
	l := &Log{store: store, log: opts.Logger, now: opts.Now, maxAge: opts.MaxAge, maxEntries: opts.MaxEntries,
		pruneEvery: opts.PruneEvery, queue: make(chan Entry, queueSize)}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.maxAge <= 0 {
		l.maxAge = DefaultMaxAge
	}
	if l.maxEntries <= 0 {
		l.maxEntries = DefaultMaxEntries
	}
	if l.pruneEvery <= 0 {
		l.pruneEvery = DefaultPruneEvery
	}
	return l
}

// Record appends e now, filling Time when it is zero and the origin's
// fields from ctx when e leaves them empty.
func (l *Log) Record(ctx context.Context, e Entry) error {
	e = l.complete(ctx, e)
	return l.store.AppendAudit(ctx, []Entry{e})
}

// Changed implements dps.Auditor: it records an enrollment or group change.
// A failure to record is logged; the change stands.
func (l *Log) Changed(ctx context.Context, c dps.Change) {
	k := Enrollment
	if c.Kind == dps.KindGroup {
		k = Group
	}
	e := Entry{Kind: k, Action: c.Action, Subject: c.ID, ETagBefore: c.ETagBefore, ETagAfter: c.ETagAfter}
	if err := l.Record(context.WithoutCancel(ctx), e); err != nil {
		l.log.ErrorContext(ctx, "audit: recording a change failed", "kind", k, "action", c.Action, "subject", c.ID, "err", err)
	}
}

// Hub returns the log as the hub's auditor (hub.Auditor).
func (l *Log) Hub() hub.Auditor { return hubAuditor{l} }

type hubAuditor struct{ l *Log }

// Changed implements hub.Auditor: it records the change before returning.
func (a hubAuditor) Changed(ctx context.Context, c hub.Change) {
	k, ok := ParseKind(c.Kind)
	if !ok {
		k = Kind(c.Kind)
	}
	// Stored bare, as the DPS changes' etags are; the API quotes them all.
	e := Entry{Kind: k, Action: c.Action, Subject: c.ID, ETagBefore: strings.Trim(c.ETagBefore, `"`), ETagAfter: strings.Trim(c.ETagAfter, `"`), Detail: c.Detail}
	if err := a.l.Record(context.WithoutCancel(ctx), e); err != nil {
		a.l.log.ErrorContext(ctx, "audit: recording a hub change failed", "kind", k, "action", c.Action, "subject", c.ID, "err", err)
	}
}

// Refused implements dps.Auditor: it queues a refused device's entry for
// Run to write.
func (l *Log) Refused(ctx context.Context, r dps.Refusal) {
	e := l.complete(ctx, Entry{Time: r.Time, Kind: Attestation, Action: Refused, Subject: r.RegistrationID, Scope: r.IDScope, Reason: r.Reason})
	select {
	case l.queue <- e:
	default:
		if n := l.dropped.Add(1); n&(n-1) == 0 { // 1, 2, 4, 8, …: warn, but not per drop
			l.log.Warn("audit: the queue of refused devices is full; entries are being dropped", "dropped", n)
		}
	}
}

// Entries returns the entries q selects, newest first, at most MaxPage.
func (l *Log) Entries(ctx context.Context, q Query) ([]Entry, error) {
	if q.Limit <= 0 || q.Limit > MaxPage {
		q.Limit = MaxPage
	}
	return l.store.AuditEntries(ctx, q)
}

// Dropped reports how many refusals were not recorded because the queue
// was full.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// complete fills what the caller left out: the time, the origin, and
// bounds on caller-chosen text.
func (l *Log) complete(ctx context.Context, e Entry) Entry {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	o := dps.OriginFrom(ctx)
	if e.Actor == "" {
		e.Actor = o.Actor
	}
	if e.Transport == "" {
		e.Transport = o.Transport
	}
	if e.Address == "" {
		e.Address = o.Address
	}
	if e.TrackingID == "" {
		e.TrackingID = o.TrackingID
	}
	e.Subject = truncate(e.Subject, maxSubjectBytes)
	e.Scope = truncate(e.Scope, maxSubjectBytes)
	e.Reason = truncate(e.Reason, maxReasonBytes)
	e.Detail = truncate(e.Detail, maxReasonBytes)
	return e
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// Run writes queued refusals and prunes old entries (at once, then every
// PruneEvery) until ctx ends; then it writes what is still queued and
// returns.
func (l *Log) Run(ctx context.Context) {
	prune := time.NewTicker(l.pruneEvery)
	defer prune.Stop()
	l.pruneLogged(ctx)
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			l.Flush(flushCtx)
			cancel()
			return
		case e := <-l.queue:
			l.write(ctx, e)
		case <-prune.C:
			l.pruneLogged(ctx)
		}
	}
}

// Flush writes every queued refusal now.
func (l *Log) Flush(ctx context.Context) {
	for {
		select {
		case e := <-l.queue:
			l.write(ctx, e)
		default:
			return
		}
	}
}

// write appends first and whatever else is queued, up to maxBatch.
func (l *Log) write(ctx context.Context, first Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	batch := []Entry{first}
more:
	for len(batch) < maxBatch {
		select {
		case e := <-l.queue:
			batch = append(batch, e)
		default:
			break more
		}
	}
	if err := l.store.AppendAudit(context.WithoutCancel(ctx), batch); err != nil {
		l.log.Error("audit: recording refused devices failed", "count", len(batch), "err", err)
	}
}

// Prune deletes entries older than MaxAge and all but the newest
// MaxEntries, and says how many it deleted.
func (l *Log) Prune(ctx context.Context) (int, error) {
	return l.store.PruneAudit(ctx, l.now().Add(-l.maxAge), l.maxEntries)
}

func (l *Log) pruneLogged(ctx context.Context) {
	n, err := l.Prune(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		l.log.Warn("audit: pruning old entries failed", "err", err)
	case n > 0:
		l.log.Debug("audit: pruned old entries", "count", n)
	}
}
