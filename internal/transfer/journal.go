package transfer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/usher-iot/usher/internal/client"
	"github.com/usher-iot/usher/internal/dps"
)

// Journal is an undo log on disk: for each record a run is about to write,
// how to put the target back (delete what it creates, write back the
// pre-image, keys included, of what it updates). It lives in a temporary
// file (mode 0600: pre-images hold keys) that Close removes.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	n    int
	path string
}

// undo is one journal line.
type undo struct {
	Op     string `json:"op"` // "delete" or "restore"
	Record Record `json:"record"`
}

// NewJournal creates an empty journal in dir (the system's temporary
// directory when "").
func NewJournal(dir string) (*Journal, error) {
	f, err := os.CreateTemp(dir, "usher-import-undo-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("undo journal: %w", err)
	}
	return &Journal{f: f, w: bufio.NewWriter(f), path: f.Name()}, nil
}

// Len is how many writes the journal can undo.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.n
}

func (j *Journal) created(rec Record) error {
	c := clone(rec)
	c.normalize(false)
	return j.add(undo{Op: "delete", Record: c})
}

func (j *Journal) updated(pre Record) error { return j.add(undo{Op: "restore", Record: pre}) }

func (j *Journal) add(u undo) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("undo journal: %w", err)
	}
	j.n++
	return nil
}

// Close removes the journal's file.
func (j *Journal) Close() error {
	j.f.Close()
	return os.Remove(j.path)
}

// Rollback undoes every journaled write on cl, in bulk batches: records the
// run created are deleted, records it updated get their pre-image back
// (their etags and timestamps are new). A record journaled more than once is
// put back as it was first found. It returns how many records were put
// back and the failures.
func (j *Journal) Rollback(ctx context.Context, cl *client.Client, r *Retry) (int, []Result, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.w.Flush(); err != nil {
		return 0, nil, fmt.Errorf("undo journal: %w", err)
	}
	if _, err := j.f.Seek(0, io.SeekStart); err != nil {
		return 0, nil, fmt.Errorf("undo journal: %w", err)
	}
	seen := map[string]bool{}
	type batchKey struct {
		op   string
		kind Kind
	}
	var (
		undone   int
		failures []Result
		batches  = map[batchKey][]Record{}
	)
	flush := func(k batchKey) error {
		recs := batches[k]
		if len(recs) == 0 {
			return nil
		}
		delete(batches, k)
		mode := string(dps.BulkUpdate)
		if k.op == "delete" {
			mode = string(dps.BulkDelete)
		}
		refused, err := bulk(ctx, cl, r, k.kind, mode, recs)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		for _, rec := range recs {
			f, bad := refused[rec.key()]
			why := f.reason()
			if err != nil {
				why, bad = reason(err), true
			} else if bad && k.op == "delete" && f.notFound() {
				// Journaled, then never created (its write was
				// refused or not sent): nothing to undo.
				continue
			}
			if bad {
				failures = append(failures, Result{Kind: rec.Kind, ID: rec.ID(), Outcome: Failed, Reason: "undo " + k.op + ": " + why})
			} else {
				undone++
			}
		}
		return nil
	}
	sc := bufio.NewScanner(j.f)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var u undo
		if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
			return undone, failures, fmt.Errorf("undo journal: %w", err)
		}
		if seen[u.Record.key()] {
			continue
		}
		seen[u.Record.key()] = true
		k := batchKey{u.Op, u.Record.Kind}
		batches[k] = append(batches[k], u.Record)
		if len(batches[k]) == BatchSize {
			if err := flush(k); err != nil {
				return undone, failures, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return undone, failures, fmt.Errorf("undo journal: %w", err)
	}
	for k := range batches {
		if err := flush(k); err != nil {
			return undone, failures, err
		}
	}
	return undone, failures, nil
}
