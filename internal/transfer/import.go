package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/usher-iot/usher/internal/client"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// DryRun compares every line with the target and writes nothing.
	DryRun bool
	// Atomic validates every line before writing anything (nothing is
	// written when one is bad) and, when the target refuses a record,
	// puts back everything the run wrote.
	Atomic bool
	// Parallel is how many requests are in flight; 8 when 0.
	Parallel int
	// Chunk is how many lines are compared and written together; 200 when 0.
	Chunk int
	// TempDir holds the spooled input and the undo journal of an atomic
	// run; the system's temporary directory when "".
	TempDir  string
	Retry    *Retry
	Progress *Progress
}

// Import applies the JSON Lines of in to the service cl: each record is
// created when missing, updated when different and left alone when equal
// (see Target.Apply); bad lines and refused records are failures in the
// summary, with their line numbers, and the rest still imports. The error is
// for what stops the whole run (the context, the input, the disk).
func Import(ctx context.Context, cl *client.Client, in io.Reader, opts ImportOptions) (Summary, error) {
	start := time.Now()
	if opts.Retry == nil {
		opts.Retry = &Retry{}
	}
	var s Summary
	s.DryRun = opts.DryRun
	var err error
	if opts.Atomic && !opts.DryRun {
		err = importAtomic(ctx, cl, in, opts, &s)
	} else {
		t := &Target{Client: cl, Retry: opts.Retry, Parallel: opts.Parallel, DryRun: opts.DryRun}
		err = importLines(ctx, t, NewLineReader(in), opts, &s, nil)
	}
	opts.Progress.done()
	s.Throttled = opts.Retry.Throttled()
	s.Seconds = time.Since(start).Seconds()
	return s, err
}

// importLines applies the reader's chunks; stop, when set, ends the run
// after a chunk for which it returns true.
func importLines(ctx context.Context, t *Target, lr *LineReader, opts ImportOptions, s *Summary, stop func([]Result) bool) error {
	chunk := opts.Chunk
	if chunk <= 0 {
		chunk = 200
	}
	for {
		items, err := lr.Next(chunk)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read line %d: %w", lr.Lines+1, err)
		}
		results, err := t.Apply(ctx, items, nil)
		s.add(results)
		if err != nil {
			return err
		}
		opts.Progress.update(s, false)
		if stop != nil && stop(results) {
			return nil
		}
	}
}

// importAtomic validates every line first, then imports with an undo
// journal and rolls back at the first refused record.
func importAtomic(ctx context.Context, cl *client.Client, in io.Reader, opts ImportOptions, s *Summary) error {
	src, origin, cleanup, err := rewindable(in, opts.TempDir)
	if err != nil {
		return err
	}
	defer cleanup()

	// Pass 1: every line must read.
	lr := NewLineReader(src)
	records := 0
	for {
		items, err := lr.Next(1000)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read line %d: %w", lr.Lines+1, err)
		}
		for _, it := range items {
			if it.Err != nil {
				s.add([]Result{{Line: it.Line, Outcome: Failed, Reason: it.Err.Error()}})
			} else {
				records++
			}
		}
	}
	if s.Failed > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("--atomic: nothing was written because %d of %d lines are bad", s.Failed, records+s.Failed))
		return nil
	}
	if _, err := src.Seek(origin, io.SeekStart); err != nil {
		return fmt.Errorf("rewind the input: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress.Total = records
	}

	// Pass 2: import with an undo journal.
	j, err := NewJournal(opts.TempDir)
	if err != nil {
		return err
	}
	defer j.Close()
	t := &Target{Client: cl, Retry: opts.Retry, Parallel: opts.Parallel, Undo: j}
	refused := false
	err = importLines(ctx, t, NewLineReader(src), opts, s, func(results []Result) bool {
		for _, r := range results {
			if r.Outcome == Failed {
				refused = true
			}
		}
		return refused
	})
	if err == nil && !refused {
		return nil
	}
	// Roll back, even when the run was cancelled: use a fresh context so
	// that the undo itself can finish.
	undoCtx := context.WithoutCancel(ctx)
	undone, failures, uerr := j.Rollback(undoCtx, cl, opts.Retry)
	s.RolledBack, s.Undone = true, undone
	for _, f := range failures {
		s.UndoFailures = append(s.UndoFailures, Failure{Kind: f.Kind, ID: f.ID, Reason: f.Reason})
	}
	if uerr != nil {
		return errors.Join(err, fmt.Errorf("rollback: %w", uerr))
	}
	return err
}

// rewindable returns in as an io.ReadSeeker and the offset to rewind to:
// itself when it is a regular file, else a copy spooled to a temporary
// file (mode 0600; it may hold keys) that cleanup removes.
func rewindable(in io.Reader, dir string) (rs io.ReadSeeker, origin int64, cleanup func(), err error) {
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
				return f, pos, func() {}, nil
			}
		}
	}
	tmp, err := os.CreateTemp(dir, "usher-import-spool-*.jsonl")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("spool the input: %w", err)
	}
	cleanup = func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, in); err != nil {
		cleanup()
		return nil, 0, nil, fmt.Errorf("spool the input: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, 0, nil, fmt.Errorf("spool the input: %w", err)
	}
	return tmp, 0, cleanup, nil
}
