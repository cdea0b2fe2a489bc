package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/usher-iot/usher/internal/client"
)

// StateVersion is the version of the checkpoint file's format.
const StateVersion = 1

// State is a migration's checkpoint: where to resume, saved after every
// batch the target confirmed.
type State struct {
	Version int    `json:"version"`
	From    string `json:"from"` // source host name
	To      string `json:"to"`   // target host name
	// Position is the page in progress: its kind and the continuation
	// token that fetches it ("" for the kind's first page).
	Position Position `json:"position"`
	// Done is how many records of that page are settled; LastID is the ID
	// of the last of them, checked against the page read again on resume.
	Done   int    `json:"done"`
	LastID string `json:"lastId,omitempty"`
	// Settled counts the records settled in this pass, over all runs;
	// KindSettled those of the position's kind.
	Settled     int       `json:"settled"`
	KindSettled int       `json:"kindSettled"`
	Finished    bool      `json:"finished"`
	Updated     time.Time `json:"updated"`
}

// MigrateOptions tune Migrate.
type MigrateOptions struct {
	// FromHost and ToHost name the two services in the state file, which
	// refuses to resume a migration between other services.
	FromHost, ToHost string
	// StatePath is the checkpoint file; none is kept when "".
	StatePath string
	DryRun    bool
	Parallel  int // requests in flight on each side; 8 when 0
	PageSize  int // source page size; 100 when 0
	Retry     *Retry
	Progress  *Progress
	// Log, when set, is told about resumption, rescans and the like.
	Log func(msg string)
}

// Migrate copies every enrollment group and individual enrollment, keys
// included, from one service to another through the pipeline: source pages
// with keys, compared with the target and written in bulk batches. With a
// StatePath it checkpoints after each confirmed batch and resumes from the
// checkpoint; a finished checkpoint starts a new pass. Records the target
// refuses are failures in the summary; the run goes on.
func Migrate(ctx context.Context, from, to *client.Client, opts MigrateOptions) (Summary, error) {
	start := time.Now()
	if opts.Retry == nil {
		opts.Retry = &Retry{}
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 100
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log(fmt.Sprintf(format, args...))
		}
	}
	var s Summary
	s.DryRun = opts.DryRun
	if opts.DryRun {
		// A dry run reports on everything and keeps no checkpoint.
		opts.StatePath = ""
	}
	st, err := loadState(opts.StatePath, opts.FromHost, opts.ToHost)
	if err != nil {
		return s, err
	}
	if st.Finished {
		logf("the migration recorded in %s finished on %s; starting a new pass (unchanged records are skipped)", opts.StatePath, st.Updated.Format(time.RFC3339))
		st = State{Version: StateVersion, From: opts.FromHost, To: opts.ToHost}
	}
	resumeAt, skip, lastID := st.Position, st.Done, st.LastID
	if st.Position.Kind != "" || st.Settled > 0 {
		s.Resumed, s.Skipped = true, st.Settled
		logf("resuming from %s: %d records already done, at %s page %q after %d records", opts.StatePath, st.Settled, st.Position.Kind, st.Position.Token, st.Done)
	}

	var mu sync.Mutex
	save := func() error {
		if opts.DryRun || opts.StatePath == "" {
			return nil
		}
		st.Updated = time.Now().UTC()
		return saveState(opts.StatePath, st)
	}
	var saveErr error
	t := &Target{Client: to, Retry: opts.Retry, Parallel: opts.Parallel, DryRun: opts.DryRun}
	first := true
	// apply writes one source page to the target and moves the checkpoint.
	apply := func(page Page) error {
		if page.Rescanned != nil {
			s.Rescanned = append(s.Rescanned, page.Kind)
			// The kind is read again: its records are not skipped after all.
			mu.Lock()
			s.Skipped -= st.KindSettled
			st.Settled -= st.KindSettled
			st.KindSettled = 0
			mu.Unlock()
			logf("the source refused the saved continuation token of %s (%s); reading them again from the start, unchanged ones are skipped", page.Kind, reason(page.Rescanned))
		}
		recs := page.Records
		offset := 0
		if first && skip > 0 && page.Kind == resumeAt.Kind && page.Token == resumeAt.Token && page.Rescanned == nil {
			if skip <= len(recs) && recs[skip-1].ID() == lastID {
				offset = skip
			} else {
				logf("the page to resume changed on the source; replaying it whole")
				mu.Lock()
				st.Settled -= skip
				st.KindSettled -= skip
				s.Skipped -= skip
				mu.Unlock()
			}
		}
		first = false
		items := make([]Item, 0, len(recs)-offset)
		for _, r := range recs[offset:] {
			items = append(items, Item{Rec: r})
		}
		mu.Lock()
		base, kindBase := st.Settled, st.KindSettled
		mu.Unlock()
		results, err := t.Apply(ctx, items, func(n int) {
			mu.Lock()
			defer mu.Unlock()
			if n == 0 {
				return
			}
			st.Position, st.Done, st.LastID, st.Settled, st.KindSettled = page.Position(), offset+n, recs[offset+n-1].ID(), base+n, kindBase+n
			if err := save(); err != nil && saveErr == nil {
				saveErr = err
			}
		})
		s.add(results)
		if err != nil {
			return err
		}
		opts.Progress.update(&s, false)
		mu.Lock()
		defer mu.Unlock()
		if saveErr != nil {
			return fmt.Errorf("save the checkpoint: %w", saveErr)
		}
		// The page is done: the checkpoint moves to the next one.
		st.Position, st.Done, st.LastID = Position{Kind: page.Kind, Token: page.Next}, 0, ""
		st.Settled, st.KindSettled = base+len(items), kindBase+len(items)
		if page.Next == "" {
			st.Position, st.KindSettled = Position{Kind: nextKind(page.Kind)}, 0
			if st.Position.Kind == "" {
				st.Finished = true
			}
		}
		return save()
	}

	// The source is read one page ahead of the target's writes, so that
	// both services work at once; one goroutine applies pages in order.
	q := Query{Keys: true, PageSize: opts.PageSize, Parallel: opts.Parallel}
	scanCtx, stopScan := context.WithCancel(ctx)
	defer stopScan()
	pages := make(chan Page, 1)
	scanned := make(chan error, 1)
	go func() {
		defer close(pages)
		scanned <- Scan(scanCtx, from, opts.Retry, q, resumeAt, func(p Page) error {
			select {
			case pages <- p:
				return nil
			case <-scanCtx.Done():
				return context.Cause(scanCtx)
			}
		})
	}()
	for page := range pages {
		if err = apply(page); err != nil {
			break
		}
	}
	stopScan()
	for range pages {
	}
	if serr := <-scanned; err == nil && serr != nil {
		err = fmt.Errorf("read the source: %w", serr)
	}
	opts.Progress.done()
	s.Throttled = opts.Retry.Throttled()
	s.Seconds = time.Since(start).Seconds()
	if err != nil {
		return s, err
	}
	if !st.Finished {
		// Nothing was left to read after the checkpoint's kind.
		st.Finished = true
		if err := save(); err != nil {
			return s, fmt.Errorf("save the checkpoint: %w", err)
		}
	}
	return s, nil
}

// Position is where the page starts.
func (p Page) Position() Position { return Position{Kind: p.Kind, Token: p.Token} }

// nextKind is the kind read after k, "" after the last.
func nextKind(k Kind) Kind {
	for i, x := range Kinds {
		if x == k && i+1 < len(Kinds) {
			return Kinds[i+1]
		}
	}
	return ""
}

// loadState reads the checkpoint at path; a missing file is a fresh start.
func loadState(path, from, to string) (State, error) {
	fresh := State{Version: StateVersion, From: from, To: to}
	if path == "" {
		return fresh, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fresh, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("state file: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("state file %s is not a migration checkpoint: %w", path, err)
	}
	if st.Version != StateVersion {
		return State{}, fmt.Errorf("state file %s has version %d; this usher reads version %d", path, st.Version, StateVersion)
	}
	if st.From != from || st.To != to {
		return State{}, fmt.Errorf("state file %s records a migration from %s to %s, not from %s to %s; pass another --state", path, st.From, st.To, from, to)
	}
	if st.Position.Kind != "" && !contains(Kinds, st.Position.Kind) {
		return State{}, fmt.Errorf("state file %s names an unknown kind %q", path, st.Position.Kind)
	}
	return st, nil
}

// saveState replaces the checkpoint atomically (write, then rename).
func saveState(path string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
