// Package throttle decides whether this node serves a device API request
// now or answers "too many requests, retry after N seconds", and bounds the
// connections a listener holds. It knows requests only by their class, the
// registration ID they name and the address they come from; transports
// (internal/httpapi, internal/mqttapi) ask it first and render a refusal as
// Azure does: HTTPS 429 with Retry-After, MQTT
// $dps/registrations/res/429/?$rid=…&retry-after=N, both with the DPS error
// body of fault.Throttled (dps-protocol.md §2.7).
//
// The limits are token buckets (golang.org/x/time/rate), each holding N
// tokens that refill at N per period:
//
//   - registrations: one bucket for the node, spent by every registration
//     request as it arrives (before its proof is checked: it protects the
//     node's work, whoever asks).
//   - requests per source: one bucket per remote address (IPv4 address or
//     IPv6 /64), spent by every registration, poll and status lookup as it
//     arrives.
//   - registrations per device, polls per device: one bucket per
//     registration ID and class, spent only by requests that proved to be
//     that device (Decision.Charge after the registrar accepted the proof),
//     so a caller without the device's key cannot use up its budget.
//     Concurrent requests of one device may overdraw its bucket; the debt
//     delays its next request.
//
// Per-key buckets live in tables bounded to Options.MaxKeys keys each:
// when a table is full, its least recently used key is forgotten (a
// forgotten key starts again with a full bucket), and every new key first
// drops up to two least recently used keys whose buckets have refilled
// anyway, so a table shrinks when traffic calms down. An attacker cycling
// registration IDs or addresses costs at most MaxKeys entries per table.
package throttle

import (
	"container/list"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/usher-iot/usher/internal/fault"
)

// Limit names, as OnThrottle reports them (and as the flags of usher serve
// spell them after "limit-").
const (
	LimitRegistrations          = "registrations"
	LimitRegistrationsPerDevice = "registrations-per-device"
	LimitPollsPerDevice         = "polls-per-device"
	LimitRequestsPerSource      = "requests-per-source"
	LimitConnections            = "connections"
)

// DefaultMaxKeys bounds each per-key table unless Options.MaxKeys says
// otherwise: about 300 bytes a key, so some 15 MB a table when full.
const DefaultMaxKeys = 50_000

// MaxRetryAfter is the longest retry-after sent: the Azure IoT C SDK clamps
// the value to 1–300 s (wire/c-sdk-findings.md §9).
const MaxRetryAfter = 300 * time.Second

// Options are a node's limits. A zero Rate is unlimited.
type Options struct {
	Registrations          Rate // registrations the node admits, whoever sends them
	RegistrationsPerDevice Rate // registrations of one registration ID
	PollsPerDevice         Rate // operation polls and status lookups of one registration ID
	RequestsPerSource      Rate // registrations, polls and lookups from one address
	// MaxKeys bounds each per-key table; DefaultMaxKeys when 0.
	MaxKeys int
	// OnThrottle, when set, is called after every refusal with the
	// request's transport and the limit that refused it (a Limit*
	// constant), outside any lock. For metrics.
	OnThrottle func(transport, limit string)
	Now        func() time.Time // time.Now when nil
}

// Class is what a request asks for.
type Class int

const (
	Registration Class = iota // PUT …/register, $dps/registrations/PUT/iotdps-register
	Poll                      // operation status polls and registration status lookups
)

// Request is what the limiter knows of a request.
type Request struct {
	Transport string // "https" or "mqtt"; only passed on to OnThrottle
	Class     Class
	DeviceID  string // the registration ID the request names
	Source    string // the remote address, "host:port" or "host"
}

// Limiter applies a node's limits. It is safe for concurrent use; a nil
// *Limiter admits everything.
type Limiter struct {
	opts Options
	now  func() time.Time

	mu        sync.Mutex
	last      time.Time     // the latest time the buckets were read at
	global    *rate.Limiter // nil when unlimited
	perSource *table
	perDevice [2]*table // by Class
}

// New returns a limiter for opts.
func New(opts Options) *Limiter {
	l := &Limiter{opts: opts, now: opts.Now}
	if l.now == nil {
		l.now = time.Now
	}
	keys := opts.MaxKeys
	if keys <= 0 {
		keys = DefaultMaxKeys
	}
	if !opts.Registrations.Unlimited() {
		l.global = opts.Registrations.newLimiter()
	}
	l.perSource = newTable(opts.RequestsPerSource, keys)
	l.perDevice[Registration] = newTable(opts.RegistrationsPerDevice, keys)
	l.perDevice[Poll] = newTable(opts.PollsPerDevice, keys)
	return l
}

// Decision is the limiter's answer to one request.
type Decision struct {
	OK bool
	// Limit is the limit that refused the request (a Limit* constant);
	// "" when OK.
	Limit string
	// RetryAfter is, when refused, how long until every limit that refused
	// it would let the request through.
	RetryAfter time.Duration

	l      *Limiter
	device *table
	id     string
}

// Admit decides whether r is served now. An admitted request has spent its
// share of the node's and its source's budget; the caller serves it and
// calls Charge once the request proved to be the device it names.
func (l *Limiter) Admit(r Request) Decision {
	if l == nil {
		return Decision{OK: true}
	}
	if r.Class != Registration && r.Class != Poll {
		r.Class = Poll
	}
	device := l.perDevice[r.Class]
	source := sourceKey(r.Source)

	l.mu.Lock()
	now := l.clock()
	d := Decision{OK: true, l: l, device: device, id: r.DeviceID}
	// The most specific refusal names the limit; the longest wait is the
	// retry-after.
	deny := func(limit string, wait time.Duration) {
		if d.OK {
			d.OK, d.Limit = false, limit
		}
		d.RetryAfter = max(d.RetryAfter, wait)
	}
	if wait := device.wait(r.DeviceID, now); wait > 0 {
		deny(device.name(r.Class), wait)
	}
	srcLim := l.perSource.get(source, now, true)
	if wait := waitFor(srcLim, now); wait > 0 {
		deny(LimitRequestsPerSource, wait)
	}
	if r.Class == Registration {
		if wait := waitFor(l.global, now); wait > 0 {
			deny(LimitRegistrations, wait)
		}
	}
	if d.OK {
		// Under l.mu nothing else spends these buckets between the check
		// and here, so both have the token.
		if srcLim != nil {
			srcLim.AllowN(now, 1)
		}
		if r.Class == Registration && l.global != nil {
			l.global.AllowN(now, 1)
		}
	}
	l.mu.Unlock()

	if !d.OK && l.opts.OnThrottle != nil {
		l.opts.OnThrottle(r.Transport, d.Limit)
	}
	return d
}

// Charge spends the device's budget for an admitted request. Call it once
// the request proved to come from the device it names (the registrar
// accepted its proof); a refused or unauthenticated request is never
// charged. It may overdraw the bucket: the debt delays the device's next
// request.
func (d Decision) Charge() {
	if !d.OK || d.l == nil || d.device == nil || d.device.rate.Unlimited() {
		return
	}
	d.l.mu.Lock()
	defer d.l.mu.Unlock()
	now := d.l.clock()
	if lim := d.device.get(d.id, now, true); lim != nil {
		lim.ReserveN(now, 1) // n ≤ burst: always granted, into debt if need be
	}
}

// clock reads the time under l.mu, never earlier than the last reading: a
// rate.Limiter handed a time before its last one moves its clock back and
// then credits the same interval twice, so times read before taking the
// lock (in whatever order goroutines then get it) would let bursts through.
func (l *Limiter) clock() time.Time {
	now := l.now()
	if now.Before(l.last) {
		now = l.last
	}
	l.last = now
	return now
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, from 1 to
// MaxRetryAfter: what Retry-After and retry-after= carry.
func (d Decision) RetryAfterSeconds() int {
	s := int(math.Ceil(min(d.RetryAfter, MaxRetryAfter).Seconds()))
	return max(s, 1)
}

// Err is the refusal as a fault.Throttled error, whose message names the
// limit and the wait; nil when the request was admitted.
func (d Decision) Err() error {
	if d.OK {
		return nil
	}
	return fault.New(fault.Throttled, "Too many requests: this node's %s limit is reached; retry after %d seconds.", d.Limit, d.RetryAfterSeconds())
}

// waitFor is how long until lim holds a whole token; 0 when it does now or
// when lim is nil (unlimited).
func waitFor(lim *rate.Limiter, now time.Time) time.Duration {
	if lim == nil {
		return 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(lim.Limit()) * float64(time.Second))
}

// sourceKey is the bucket key of a remote address: the IP address without
// its port, an IPv4-mapped IPv6 address as IPv4, and an IPv6 address by its
// /64 (one host commonly holds a whole /64). Anything unparseable is used
// as it is.
func sourceKey(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// table is a bounded set of per-key buckets, least recently used first
// out. Its methods run under the Limiter's mutex.
type table struct {
	rate Rate
	max  int
	keys map[string]*list.Element // of *entry
	lru  list.List                // front: most recently used
}

type entry struct {
	key string
	lim *rate.Limiter
}

func newTable(r Rate, maxKeys int) *table {
	return &table{rate: r, max: maxKeys, keys: map[string]*list.Element{}}
}

// name is the limit a per-device table enforces for class c.
func (t *table) name(c Class) string {
	if c == Registration {
		return LimitRegistrationsPerDevice
	}
	return LimitPollsPerDevice
}

// len is the number of keys held.
func (t *table) len() int { return len(t.keys) }

// wait is how long key must wait for a token; 0 for a key not held (its
// bucket would be full).
func (t *table) wait(key string, now time.Time) time.Duration {
	return waitFor(t.get(key, now, false), now)
}

// get returns key's bucket, marking it used; when key is not held it
// creates a full bucket if create is set, else returns nil. It returns nil
// when the table's rate is unlimited.
func (t *table) get(key string, now time.Time, create bool) *rate.Limiter {
	if t.rate.Unlimited() {
		return nil
	}
	if el, ok := t.keys[key]; ok {
		t.lru.MoveToFront(el)
		return el.Value.(*entry).lim
	}
	if !create {
		return nil
	}
	t.prune(now)
	e := &entry{key: key, lim: t.rate.newLimiter()}
	t.keys[key] = t.lru.PushFront(e)
	return e.lim
}

// prune makes room for one key: it drops up to two least recently used
// keys whose buckets are full again (forgetting them changes nothing), then,
// if the table is still full, the least recently used key whatever its
// bucket.
func (t *table) prune(now time.Time) {
	for range 2 {
		el := t.lru.Back()
		if el == nil || el.Value.(*entry).lim.TokensAt(now) < float64(t.rate.N) {
			break
		}
		t.drop(el)
	}
	for len(t.keys) >= t.max {
		t.drop(t.lru.Back())
	}
}

func (t *table) drop(el *list.Element) {
	delete(t.keys, el.Value.(*entry).key)
	t.lru.Remove(el)
}
