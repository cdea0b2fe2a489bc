package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// barWidth is the width of the progress bar in cells.
const barWidth = 30

// FormatProgress renders one progress line:
//
//	[##########--------------------]  1234/5000  25%   812/s  errors 0  eta 4s
func FormatProgress(s Snapshot) string {
	frac := 0.0
	if s.Total > 0 {
		frac = float64(s.Done) / float64(s.Total)
	}
	filled := min(int(frac*barWidth), barWidth)
	rate := 0.0
	if sec := s.Elapsed.Seconds(); sec > 0 {
		rate = float64(s.Done) / sec
	}
	eta := "-"
	if rate > 0 && s.Done < s.Total {
		eta = (time.Duration(float64(s.Total-s.Done) / rate * float64(time.Second))).Round(time.Second).String()
	} else if s.Done >= s.Total {
		eta = "0s"
	}
	w := len(fmt.Sprint(s.Total))
	return fmt.Sprintf("[%s%s] %*d/%d %3.0f%% %7.0f/s  errors %d  eta %s",
		strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled),
		w, s.Done, s.Total, frac*100, rate, s.Errors, eta)
}

// ProgressWriter prints snapshots to w: on a terminal it redraws one line
// at every snapshot; otherwise it writes a line at most every Every (and
// the last one).
type ProgressWriter struct {
	W        io.Writer
	Label    string
	Terminal bool
	Every    time.Duration // lines on a non-terminal; default 5 s

	mu   sync.Mutex
	last time.Duration
	seen bool
}

// Update prints s; it is a Load's Progress.
func (p *ProgressWriter) Update(s Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := p.Label + FormatProgress(s)
	final := s.Done >= s.Total
	if p.Terminal {
		fmt.Fprintf(p.W, "\r\033[K%s", line)
		if final {
			fmt.Fprintln(p.W)
		}
		return
	}
	every := p.Every
	if every <= 0 {
		every = 5 * time.Second
	}
	if final || !p.seen || s.Elapsed-p.last >= every {
		if final && p.seen && p.last == s.Elapsed {
			return
		}
		fmt.Fprintln(p.W, line)
		p.last, p.seen = s.Elapsed, true
	}
}
