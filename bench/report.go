package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// ms formats d in milliseconds with a precision that suits its size.
func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	f := float64(d) / float64(time.Millisecond)
	if f < 10 {
		return fmt.Sprintf("%.2f ms", f)
	}
	return fmt.Sprintf("%.1f ms", f)
}

// writeLatencyTable writes a one-row latency table (nothing if there is no
// latency to show).
func writeLatencyTable(w io.Writer, name string, l Latency) {
	if l.Count == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency:\tn\tmean\tp50\tp90\tp99\tmax\t")
	writeLatencyRow(tw, name, l)
	tw.Flush()
}

func writeLatencyRow(tw io.Writer, name string, l Latency) {
	fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name, l.Count, ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max))
}

func writeErrors(w io.Writer, rows []ErrorCount) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "errors:        none")
		return
	}
	fmt.Fprintln(w, "errors:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range rows {
		ex := e.Example
		if len(ex) > 160 {
			ex = ex[:157] + "..."
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", e.Count, e.Step, e.Class, strings.ReplaceAll(ex, "\n", " "))
	}
	tw.Flush()
}

func writeCPU(w io.Writer, label string, c CPUUsage, unit string) {
	fmt.Fprintf(w, "%s %s (user %s, system %s), %s per %s\n", label, ms(c.Total), ms(c.User), ms(c.System), ms(c.PerOp), unit)
}

// WriteText writes the result for a person.
func (r *ACMEResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "directory:     %s\n", r.Directory)
	fmt.Fprintf(w, "accounts:      %s, %d workers\n", r.Accounts, r.Concurrency)
	fmt.Fprintf(w, "issuances:     %d requested, %d succeeded, %d failed", r.Requested, r.Succeeded, r.Failed)
	if r.Aborted > 0 || r.NotStarted > 0 {
		fmt.Fprintf(w, ", %d aborted, %d not started", r.Aborted, r.NotStarted)
	}
	if r.TimedOut {
		fmt.Fprint(w, " (time limit reached)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "elapsed:       %.2f s\n", r.Elapsed.Seconds())
	fmt.Fprintf(w, "throughput:    %.1f issuances/s\n", r.Rate)
	fmt.Fprintf(w, "polls:         %.1f authorization fetches per issuance; %d badNonce retries\n", r.Polls, r.NonceRetries)
	if r.Latency.Count > 0 {
		fmt.Fprintln(w, "latency (successful issuances):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  step\tn\tmean\tp50\tp90\tp99\tmax\t")
		writeLatencyRow(tw, "total", r.Latency)
		for _, s := range steps {
			if l, ok := r.Steps[s]; ok {
				writeLatencyRow(tw, s, l)
			}
		}
		tw.Flush()
	}
	writeErrors(w, r.Errors)
	writeCPU(w, "generator CPU:", r.ClientCPU, "issuance")
	if r.ServerCPU != nil {
		writeCPU(w, "server CPU:   ", *r.ServerCPU, "issuance")
	}
}

// WriteText writes the result for a person.
func (r *SignResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "algorithm:     %s\n", r.Algorithm)
	fmt.Fprintf(w, "workers:       %d\n", r.Concurrency)
	fmt.Fprintf(w, "signatures:    %d succeeded, %d failed in %.2f s\n", r.Signatures, r.Failed, r.Elapsed.Seconds())
	fmt.Fprintf(w, "throughput:    %.1f signatures/s\n", r.Rate)
	writeLatencyTable(w, "sign", r.Latency)
	writeErrors(w, r.Errors)
	writeCPU(w, "process CPU:", r.ClientCPU, "signature")
}

// WriteText writes the result for a person.
func (r *PolicyResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "bundle:        revision %q, name rules in %s\n", r.Revision, strings.ToUpper(r.NameRules))
	fmt.Fprintf(w, "workers:       %d\n", r.Concurrency)
	fmt.Fprintf(w, "decisions:     %d (%d allowed, %d denied), %d failed in %.2f s\n", r.Decisions, r.Allowed, r.Denied, r.Failed, r.Elapsed.Seconds())
	fmt.Fprintf(w, "throughput:    %.1f decisions/s\n", r.Rate)
	writeLatencyTable(w, "decide", r.Latency)
	writeErrors(w, r.Errors)
	writeCPU(w, "process CPU:", r.CPU, "decision")
}
