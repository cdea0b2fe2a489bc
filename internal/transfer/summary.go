package transfer

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// MaxFailures is how many failures a Summary lists; the rest are counted.
const MaxFailures = 1000

// Failure is one record that failed.
type Failure struct {
	Line   int    `json:"line,omitempty"`
	Kind   Kind   `json:"kind,omitempty"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
}

// Summary is the outcome of an import or a migration.
type Summary struct {
	Created      int       `json:"created"`
	Updated      int       `json:"updated"`
	Unchanged    int       `json:"unchanged"`
	Failed       int       `json:"failed"`
	Failures     []Failure `json:"failures"`
	MoreFailures int       `json:"moreFailures,omitempty"` // failed but not listed
	DryRun       bool      `json:"dryRun,omitempty"`
	// RolledBack is set when an atomic run wrote, a record was refused,
	// and the run put back what it had written.
	RolledBack   bool      `json:"rolledBack,omitempty"`
	Undone       int       `json:"undone,omitempty"` // records put back by the rollback
	UndoFailures []Failure `json:"undoFailures,omitempty"`
	// Migrations: Resumed is set when the run started from a checkpoint,
	// Skipped counts the records earlier runs had finished, Rescanned the
	// kinds read again from their start because a token was refused.
	Resumed   bool     `json:"resumed,omitempty"`
	Skipped   int      `json:"skipped,omitempty"`
	Rescanned []Kind   `json:"rescanned,omitempty"`
	Throttled int64    `json:"throttled"` // 429 answers waited out
	Notes     []string `json:"notes,omitempty"`
	Seconds   float64  `json:"seconds"`
}

// add counts results.
func (s *Summary) add(results []Result) {
	for _, r := range results {
		switch r.Outcome {
		case Created:
			s.Created++
		case Updated:
			s.Updated++
		case Unchanged:
			s.Unchanged++
		case Failed:
			s.Failed++
			if len(s.Failures) < MaxFailures {
				s.Failures = append(s.Failures, Failure{Line: r.Line, Kind: r.Kind, ID: r.ID, Reason: r.Reason})
			} else {
				s.MoreFailures++
			}
		}
	}
}

// Total is how many records the run handled.
func (s *Summary) Total() int { return s.Created + s.Updated + s.Unchanged + s.Failed }

// WriteText writes the summary for people.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	verb := ""
	if s.DryRun {
		verb = " (dry run: nothing written; would be)"
	}
	fmt.Fprintf(&b, "summary%s: created %d, updated %d, unchanged %d, failed %d (%.1f s", verb, s.Created, s.Updated, s.Unchanged, s.Failed, s.Seconds)
	if s.Throttled > 0 {
		fmt.Fprintf(&b, ", %d throttled requests retried", s.Throttled)
	}
	b.WriteString(")\n")
	if s.Resumed {
		fmt.Fprintf(&b, "resumed from the checkpoint: %d records finished by an earlier run were not read again\n", s.Skipped)
	}
	for _, k := range s.Rescanned {
		fmt.Fprintf(&b, "the source refused the saved continuation token of %s; they were read again from the start (unchanged ones skipped)\n", k)
	}
	for _, f := range s.Failures {
		b.WriteString("  " + f.String() + "\n")
	}
	if s.MoreFailures > 0 {
		fmt.Fprintf(&b, "  … and %d more failures\n", s.MoreFailures)
	}
	if s.RolledBack {
		fmt.Fprintf(&b, "rolled back: %d records written by this run were put back (deleted if created, restored if updated)\n", s.Undone)
		for _, f := range s.UndoFailures {
			b.WriteString("  " + f.String() + "\n")
		}
	}
	for _, n := range s.Notes {
		b.WriteString(n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (f Failure) String() string {
	var parts []string
	if f.Line > 0 {
		parts = append(parts, fmt.Sprintf("line %d", f.Line))
	}
	if f.ID != "" {
		parts = append(parts, fmt.Sprintf("%s %q", f.Kind, f.ID))
	}
	if len(parts) == 0 {
		return f.Reason
	}
	return strings.Join(parts, ", ") + ": " + f.Reason
}

// Progress reports a run's progress to w: a redrawn line when w is a
// terminal, otherwise a plain line every Every (none when Every is 0).
type Progress struct {
	W        io.Writer
	Terminal bool
	Every    time.Duration
	Total    int // records expected; 0 when unknown
	Verb     string

	mu    sync.Mutex
	start time.Time
	last  time.Time
	drawn bool
}

// update shows the running counts.
func (p *Progress) update(s *Summary, force bool) {
	p.show(s.Total(), s, force)
}

// count shows a count of records (an export's).
func (p *Progress) count(n int, force bool) { p.show(n, nil, force) }

// show draws n records done and, when s is set, their outcomes.
func (p *Progress) show(n int, s *Summary, force bool) {
	if p == nil || p.W == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.start.IsZero() {
		p.start, p.last = now, now
	}
	every := p.Every
	if p.Terminal {
		every = 200 * time.Millisecond
	}
	if every <= 0 || (!force && now.Sub(p.last) < every) {
		return
	}
	p.last = now
	rate := float64(n) / max(now.Sub(p.start).Seconds(), 0.001)
	counts := fmt.Sprintf("%d %s (%.0f/s)", n, p.verb(), rate)
	if s != nil {
		counts += fmt.Sprintf(": created %d, updated %d, unchanged %d, failed %d", s.Created, s.Updated, s.Unchanged, s.Failed)
	}
	if !p.Terminal {
		fmt.Fprintln(p.W, counts)
		return
	}
	bar := ""
	if p.Total > 0 {
		const width = 24
		done := min(width, n*width/p.Total)
		bar = fmt.Sprintf("[%s%s] %3d%% ", strings.Repeat("#", done), strings.Repeat("-", width-done), min(100, n*100/p.Total))
	}
	fmt.Fprintf(p.W, "\r\x1b[K%s%s", bar, counts)
	p.drawn = true
}

// done ends the progress line.
func (p *Progress) done() {
	if p == nil || p.W == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.W)
		p.drawn = false
	}
}

func (p *Progress) verb() string {
	if p.Verb == "" {
		return "records"
	}
	return p.Verb
}
