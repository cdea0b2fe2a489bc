package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/usher-iot/usher/internal/fault"
)

// Group commit. Every write transaction is handed to one writer goroutine,
// which runs whatever has queued up meanwhile in a single SQLite
// transaction, each caller's work inside its own savepoint. A burst of
// registrations then pays for one commit (WAL append and index locking,
// the largest cost of a write) per batch instead of one per registration,
// while each caller still sees its own work succeed or fail alone: a failed
// function is rolled back to its savepoint and the rest of the batch
// commits. Callers wait for the commit before they return, so an
// acknowledged write is a committed one.

// maxBatch bounds how many transactions share one commit.
const maxBatch = 128

type writeReq struct {
	ctx  context.Context
	fn   func(*wtx) error
	done chan error
}

// writer runs batches until stop is closed.
func (db *DB) writer(stop <-chan struct{}, finished chan<- struct{}) {
	defer close(finished)
	batch := make([]writeReq, 0, maxBatch)
	for {
		select {
		case r := <-db.reqs:
			batch = append(batch[:0], r)
		case <-stop:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		db.runBatch(batch)
	}
}

// tx runs fn in a write transaction, possibly sharing its commit with
// other callers' transactions. A fault returned by fn passes through; other
// errors become fault.Internal.
func (db *DB) tx(ctx context.Context, fn func(*wtx) error) error {
	r := writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case db.reqs <- r:
	case <-ctx.Done():
		return fault.Wrap(fault.Internal, ctx.Err(), "begin transaction")
	case <-db.stopped:
		return fault.New(fault.Internal, "database is closed")
	}
	// Once queued the work may commit, so the caller waits for the outcome
	// rather than for its context.
	return <-r.done
}

// runBatch runs one batch in one transaction and answers every caller.
func (db *DB) runBatch(batch []writeReq) {
	errs := make([]error, len(batch))
	db.writes.preparePending(context.Background())
	// The transaction outlives any one caller's context.
	tx, err := db.write.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range batch {
			r.done <- fault.Wrap(fault.Internal, err, "begin transaction")
		}
		return
	}
	w := &wtx{tx: tx, c: db.writes}
	ok := 0
	if len(batch) == 1 {
		errs[0] = runOne(batch[0], w)
		if errs[0] != nil {
			_ = tx.Rollback()
			batch[0].done <- internal(errs[0])
			return
		}
		ok = 1
	} else {
		for i, r := range batch {
			if errs[i] = savepoint(tx, r, w); errs[i] == nil {
				ok++
			} else if errors.Is(errs[i], errAborted) {
				_ = tx.Rollback()
				for _, r := range batch {
					r.done <- fault.Wrap(fault.Internal, errs[i], "write transaction")
				}
				return
			}
		}
	}
	if ok == 0 {
		_ = tx.Rollback()
	} else if err := tx.Commit(); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fault.Wrap(fault.Internal, err, "commit")
			}
		}
	}
	for i, r := range batch {
		r.done <- internal(errs[i])
	}
}

// errAborted marks a batch whose transaction can no longer be used.
var errAborted = errors.New("savepoint could not be rolled back")

func runOne(r writeReq, w *wtx) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	return r.fn(w)
}

// savepoint runs one caller's function inside a savepoint, undoing its
// writes when it fails.
func savepoint(tx *sql.Tx, r writeReq, w *wtx) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	if _, err := tx.Exec(`SAVEPOINT w`); err != nil {
		return errors.Join(errAborted, err)
	}
	if err := r.fn(w); err != nil {
		if _, rerr := tx.Exec(`ROLLBACK TO w`); rerr != nil {
			return errors.Join(errAborted, rerr)
		}
		if _, rerr := tx.Exec(`RELEASE w`); rerr != nil {
			return errors.Join(errAborted, rerr)
		}
		return err
	}
	if _, err := tx.Exec(`RELEASE w`); err != nil {
		return errors.Join(errAborted, err)
	}
	return nil
}
