package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Report is what `usher bench` prints, as text or JSON.
type Report struct {
	Transport              string         `json:"transport"`
	KeepAlive              bool           `json:"keepAlive"`
	SourceAddressSpread    bool           `json:"sourceAddressSpread"`
	RetryAfter             string         `json:"retryAfter"`
	Devices                int            `json:"devices"`
	Concurrency            int            `json:"concurrency"`
	OfferedRate            float64        `json:"offeredRate,omitempty"` // --rate: registrations started per second
	Registrations          int            `json:"registrations"`
	Errors                 int            `json:"errors"`
	ErrorsByKind           map[string]int `json:"errorsByKind,omitempty"`
	FirstError             string         `json:"firstError,omitempty"`
	DurationSeconds        float64        `json:"durationSeconds"`
	RegistrationsPerSecond float64        `json:"registrationsPerSecond"`
	LatencyMs              Latency        `json:"latencyMs"`
	Server                 *Usage         `json:"server,omitempty"`
	Baseline               *Baseline      `json:"baseline,omitempty"`
	// Ratio is registrations/s ÷ bare handshakes/s of the same run.
	Ratio float64 `json:"ratio,omitempty"`
}

// NewReport fills a report's measured fields from a run's outcome.
func NewReport(o Outcome) Report {
	return Report{
		Devices: o.Total, Registrations: o.Succeeded, Errors: o.Errors(), ErrorsByKind: o.ErrorsByKind,
		FirstError: o.FirstError, DurationSeconds: o.Duration.Seconds(), RegistrationsPerSecond: o.PerSecond(),
		LatencyMs: Summarize(o.Latencies),
	}
}

// SetBaseline attaches a baseline and computes the ratio.
func (r *Report) SetBaseline(b Baseline) {
	r.Baseline = &b
	if b.HandshakesPerSecond > 0 && r.Registrations > 0 {
		r.Ratio = r.RegistrationsPerSecond / b.HandshakesPerSecond
	}
}

// WriteText prints the report for people.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	conn := "fresh TLS connection per device"
	if r.KeepAlive {
		conn = "keep-alive connections"
	}
	spread := ""
	if r.SourceAddressSpread {
		spread = ", source addresses spread over 127.1.0.0/16"
	}
	if r.Registrations > 0 || r.Devices > 0 {
		offered := ""
		if r.OfferedRate > 0 {
			offered = fmt.Sprintf(", offered %.0f/s", r.OfferedRate)
		}
		fmt.Fprintf(&b, "registrations  %d devices over %s, concurrency %d%s, %s%s, retry-after %s\n",
			r.Devices, r.Transport, r.Concurrency, offered, conn, spread, r.RetryAfter)
		fmt.Fprintf(&b, "  succeeded    %d in %.2fs\n", r.Registrations, r.DurationSeconds)
		fmt.Fprintf(&b, "  throughput   %.1f registrations/s\n", r.RegistrationsPerSecond)
		l := r.LatencyMs
		fmt.Fprintf(&b, "  latency      p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms\n", l.P50, l.P95, l.P99, l.Max)
		fmt.Fprintf(&b, "  errors       %d", r.Errors)
		if len(r.ErrorsByKind) > 0 {
			var kinds []string
			for _, k := range slices.Sorted(maps.Keys(r.ErrorsByKind)) {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, r.ErrorsByKind[k]))
			}
			fmt.Fprintf(&b, " (%s); first: %s", strings.Join(kinds, ", "), r.FirstError)
		}
		b.WriteString("\n")
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(&b, "server         pid %d: CPU %.2fs", s.PID, s.CPUSeconds)
		if s.CPUPerRegistrationMs > 0 {
			fmt.Fprintf(&b, " (%.3f ms per registration)", s.CPUPerRegistrationMs)
		}
		fmt.Fprintf(&b, ", peak RSS %.1f MiB\n", float64(s.PeakRSSBytes)/(1<<20))
		if s.Note != "" {
			fmt.Fprintf(&b, "  note         %s\n", s.Note)
		}
	}
	if bl := r.Baseline; bl != nil {
		res := "off"
		if bl.SessionResumption {
			res = "on"
		}
		fmt.Fprintf(&b, "baseline       bare TLS handshakes, same client config (%s, %s, session resumption %s), %s certificate\n",
			bl.TLSVersion, bl.Curve, res, bl.Certificate)
		fmt.Fprintf(&b, "  handshakes   %d in %.2fs, %d errors\n", bl.Handshakes, bl.DurationSeconds, bl.Errors)
		fmt.Fprintf(&b, "  rate         %.1f handshakes/s\n", bl.HandshakesPerSecond)
		if r.Ratio > 0 {
			fmt.Fprintf(&b, "ratio          %.2f (registrations/s ÷ bare handshakes/s)\n", r.Ratio)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
