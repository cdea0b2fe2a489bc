package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/dps"
	"github.com/usher-iot/usher/internal/wire"
)

// Outcome is what happened to one record.
type Outcome int

// Outcomes.
const (
	Unchanged Outcome = iota // the target already held it
	Created                  // it was missing and was written
	Updated                  // it differed and was written
	Failed                   // the line was bad or the target refused it
)

func (o Outcome) String() string {
	return [...]string{"unchanged", "created", "updated", "failed"}[o]
}

// Item is one record to apply, with where it came from.
type Item struct {
	Line int    // line number in the input; 0 when read from a service
	Rec  Record // the record, when Err is nil
	Err  error  // why the line could not be read
}

// Result is an item's outcome; Reason says why it failed (the server's
// message when the server refused it).
type Result struct {
	Line    int
	Kind    Kind
	ID      string
	Outcome Outcome
	Reason  string
}

// Target writes records to one service.
type Target struct {
	Client *client.Client
	Retry  *Retry
	// Parallel is how many requests are in flight; 8 when 0.
	Parallel int
	// DryRun compares without writing: outcomes say what would happen.
	DryRun bool
	// Undo, when set, is given what each write replaces before the write
	// is sent (the ID of a record about to be created, the pre-image with
	// keys of one about to be updated), so the run can be rolled back.
	Undo *Journal
}

// BatchSize is the most records one bulk request carries (the API's limit).
const BatchSize = dps.MaxBulkItems

// plan is what Apply decided for one item.
type plan struct {
	outcome Outcome
	write   Record // the record to write when created or updated
	reason  string
	pre     *Record // the target's record, with keys, for Undo
}

// Apply compares each item with the target and writes what is missing or
// different in bulk batches (mode "update", which creates or replaces),
// one kind per batch. settled, when non-nil, is called (from one goroutine
// at a time, with growing n) each time the first n items are all settled:
// compared, and written when they needed it. The results are in item order.
// The error is the context's, the Undo journal's, or one that is no
// record's fault (see fatal); refusals of records are results, not errors.
// With an error, the results are those of the settled items only.
func (t *Target) Apply(ctx context.Context, items []Item, settled func(n int)) ([]Result, error) {
	plans := make([]plan, len(items))
	err := forEach(ctx, len(items), t.Parallel, func(ctx context.Context, i int) error {
		it := items[i]
		if it.Err != nil {
			plans[i] = plan{outcome: Failed, reason: it.Err.Error()}
			return nil
		}
		p, err := t.compare(ctx, it.Rec)
		if err != nil {
			if ctx.Err() != nil || fatal(err) {
				return fmt.Errorf("%s %q: %w", it.Rec.Kind, it.Rec.ID(), err)
			}
			p = plan{outcome: Failed, reason: reason(err)}
		}
		plans[i] = p
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Batches of one kind, in item order.
	var batches [][]int
	open := map[Kind]int{} // kind → index of its open batch + 1
	for i, p := range plans {
		if p.outcome != Created && p.outcome != Updated || t.DryRun {
			continue
		}
		k := items[i].Rec.Kind
		if b := open[k]; b > 0 && len(batches[b-1]) < BatchSize {
			batches[b-1] = append(batches[b-1], i)
			continue
		}
		batches = append(batches, []int{i})
		open[k] = len(batches)
	}

	// Settling: item i is settled once its batch (if any) is done.
	pending := make([]int, len(items)) // batch index + 1 of each written item
	for b, idx := range batches {
		for _, i := range idx {
			pending[i] = b + 1
		}
	}
	var mu sync.Mutex
	done := make([]bool, len(batches))
	prefix := 0
	advance := func() {
		for prefix < len(items) && (pending[prefix] == 0 || done[pending[prefix]-1]) {
			prefix++
		}
		if settled != nil {
			settled(prefix)
		}
	}
	mu.Lock()
	advance()
	mu.Unlock()

	err = forEach(ctx, len(batches), t.Parallel, func(ctx context.Context, b int) error {
		idx := batches[b]
		if err := t.journal(idx, plans); err != nil {
			return err
		}
		failures, err := t.write(ctx, items[idx[0]].Rec.Kind, idx, plans)
		if err != nil && (ctx.Err() != nil || fatal(err)) {
			return fmt.Errorf("bulk write of %d records: %w", len(idx), err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, i := range idx {
			if err != nil {
				plans[i].outcome, plans[i].reason = Failed, reason(err)
			} else if f, ok := failures[items[i].Rec.key()]; ok {
				plans[i].outcome, plans[i].reason = Failed, f.reason()
			}
		}
		done[b] = true
		advance()
		return nil
	})
	n := len(items)
	if err != nil {
		// Report what is settled: the caller's checkpoint covers it.
		mu.Lock()
		n = prefix
		mu.Unlock()
	}
	out := make([]Result, n)
	for i, it := range items[:n] {
		out[i] = Result{Line: it.Line, Outcome: plans[i].outcome, Reason: plans[i].reason}
		if it.Err == nil {
			out[i].Kind, out[i].ID = it.Rec.Kind, it.Rec.ID()
		}
	}
	return out, err
}

// compare reads what the target holds of rec and decides.
func (t *Target) compare(ctx context.Context, rec Record) (plan, error) {
	have, err := t.read(ctx, rec.Kind, rec.ID())
	if isNotFound(err) {
		return plan{outcome: Created, write: rec}, nil
	}
	if err != nil {
		return plan{}, err
	}
	if rec.HasKeys() || t.Undo != nil {
		if have.isSymmetric() {
			a, err := attestation(ctx, t.Client, t.Retry, rec.Kind, rec.ID())
			if isNotFound(err) {
				return plan{outcome: Created, write: rec}, nil
			}
			if err != nil {
				return plan{}, err
			}
			have.settings().Attestation = &a
		}
	}
	want := merged(rec, have)
	if same(want, have) {
		return plan{outcome: Unchanged}, nil
	}
	p := plan{outcome: Updated, write: want}
	if t.Undo != nil {
		pre := clone(have)
		pre.normalize(true)
		p.pre = &pre
	}
	return p, nil
}

func (t *Target) read(ctx context.Context, kind Kind, id string) (Record, error) {
	if kind == KindGroup {
		g, err := call(ctx, t.Retry, func(ctx context.Context) (wire.EnrollmentGroup, error) { return t.Client.Group(ctx, id) })
		return GroupRecord(g), err
	}
	e, err := call(ctx, t.Retry, func(ctx context.Context) (wire.IndividualEnrollment, error) { return t.Client.Enrollment(ctx, id) })
	return EnrollmentRecord(e), err
}

// journal records, before a batch is written, how to undo it.
func (t *Target) journal(idx []int, plans []plan) error {
	if t.Undo == nil {
		return nil
	}
	for _, i := range idx {
		p := plans[i]
		var err error
		if p.outcome == Created {
			err = t.Undo.created(p.write)
		} else {
			err = t.Undo.updated(*p.pre)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// write sends one bulk batch and returns the per-item refusals by record
// key, or the error of the whole request.
func (t *Target) write(ctx context.Context, kind Kind, idx []int, plans []plan) (map[string]itemError, error) {
	recs := make([]Record, len(idx))
	for j, i := range idx {
		recs[j] = plans[i].write
	}
	return bulk(ctx, t.Client, t.Retry, kind, string(dps.BulkUpdate), recs)
}

// itemError is the refusal of one item of a bulk request.
type itemError wire.BulkItemError

func (e itemError) reason() string {
	msg := e.ErrorStatus
	if msg == "" {
		msg = "refused"
	}
	return fmt.Sprintf("%s (errorCode %d)", msg, e.ErrorCode)
}

// notFound reports a refusal because the record does not exist (the
// six-digit errorCode starts with the HTTP status).
func (e itemError) notFound() bool { return e.ErrorCode/1000 == http.StatusNotFound }

// bulk sends one bulk request of records of one kind in mode and returns
// the refused items by record key.
func bulk(ctx context.Context, cl *client.Client, r *Retry, kind Kind, mode string, recs []Record) (map[string]itemError, error) {
	var res wire.BulkResult
	var err error
	if kind == KindGroup {
		op := wire.BulkEnrollmentGroupOperation{Mode: mode}
		for _, rec := range recs {
			op.EnrollmentGroups = append(op.EnrollmentGroups, *rec.Group)
		}
		res, err = call(ctx, r, func(ctx context.Context) (wire.BulkResult, error) { return cl.BulkGroups(ctx, op) })
	} else {
		op := wire.BulkEnrollmentOperation{Mode: mode}
		for _, rec := range recs {
			op.Enrollments = append(op.Enrollments, *rec.Enrollment)
		}
		res, err = call(ctx, r, func(ctx context.Context) (wire.BulkResult, error) { return cl.BulkEnrollments(ctx, op) })
	}
	if err != nil {
		return nil, err
	}
	failures := map[string]itemError{}
	for _, e := range res.Errors {
		id := e.RegistrationID
		if kind == KindGroup {
			id = e.EnrollmentGroupID
		}
		failures[string(kind)+"/"+dps.IDKey(id)] = itemError(e)
	}
	if !res.IsSuccessful && len(failures) == 0 {
		return nil, errors.New("the service answered isSuccessful=false without naming a record")
	}
	return failures, nil
}

// fatal reports an error that is no record's fault and stops the run: the
// service cannot be reached, refuses the credentials, stays throttled or
// fails (5xx) after the retries. Other API errors (4xx) refuse a record and
// are its failure.
func fatal(err error) bool {
	var e *client.APIError
	if !errors.As(err, &e) {
		return true
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		return true
	}
	return e.Status >= 500
}

// reason is an error as a failure reason: the server's message and status
// for an API error.
func reason(err error) string {
	var e *client.APIError
	if errors.As(err, &e) {
		if e.Code != 0 {
			return fmt.Sprintf("%s (HTTP %d, errorCode %d)", e.Message, e.Status, e.Code)
		}
		return e.Error()
	}
	return err.Error()
}
