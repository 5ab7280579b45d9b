package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ldreaper/ldreaper/ldclient"
)

// minSpeedup is how much faster than the naive sequential client the paced
// one must be.
const minSpeedup = 5

// check is one target of one row.
type check struct {
	name string
	ok   bool
	// timed marks targets on time or memory. -quick does not enforce them:
	// its sizes are too small, and a loaded CI machine too noisy, for them
	// to mean anything.
	timed bool
}

// row is a measurement with its verdicts.
type row struct {
	measurement
	checks []check
}

// missed lists the enforced checks that failed.
func (r row) missed(quick bool) []string {
	var out []string
	for _, c := range r.checks {
		if !c.ok && (!c.timed || !quick) {
			out = append(out, c.name)
		}
	}
	return out
}

// evaluate turns measurements into rows with their targets checked. The
// naive row's speedup target compares it with the paced P2 row when both ran.
func evaluate(ms []measurement) []row {
	var paced *measurement
	for i := range ms {
		if ms[i].kind == burst && !ms[i].naive {
			paced = &ms[i]
		}
	}
	rows := make([]row, 0, len(ms))
	for _, m := range ms {
		rows = append(rows, row{measurement: m, checks: checksFor(m, paced)})
	}
	return rows
}

func checksFor(m measurement, paced *measurement) []check {
	cs := []check{{name: "run without error", ok: m.runErr == ""}}
	switch m.kind {
	case noDrift:
		cs = append(cs,
			check{name: fmt.Sprintf("calls <= %d", m.minCalls), ok: m.stats.Requests <= m.minCalls},
			check{name: "no per-env GET", ok: m.stats.ByRoute[ldclient.RouteGetEnvironment] == 0},
			check{name: "no changes", ok: m.stats.Creates+m.stats.Deletes == 0 && m.summary.Failed == 0},
		)
	case burst:
		cs = append(cs,
			check{name: "0 failed", ok: m.summary.Failed == 0 && m.summary.Held == 0},
			check{name: "every action done once", ok: m.stats.Creates == m.items && m.stats.Deletes == m.fake.Owned && m.stats.Repeated == 0},
		)
		if !m.naive {
			// This client is alone on the account: every 429 was one the
			// headers announced.
			cs = append(cs, check{name: "0 avoidable 429s", ok: m.stats.RateLimited == 0})
		}
	}
	if m.maxRatio > 0 {
		cs = append(cs, check{name: fmt.Sprintf("ratio <= %.2f", m.maxRatio), ok: m.bound > 0 && m.ratio() <= m.maxRatio, timed: true})
	}
	if m.maxPlan > 0 {
		cs = append(cs, check{name: "plan <= " + formatDuration(m.maxPlan), ok: m.plan <= m.maxPlan, timed: true})
	}
	if m.maxRSS > 0 {
		cs = append(cs, check{name: "RSS <= " + formatBytes(m.maxRSS), ok: m.rss > 0 && m.rss <= m.maxRSS, timed: true})
	}
	if m.naive && paced != nil {
		speedup := m.wall.Seconds() / paced.wall.Seconds()
		cs = append(cs, check{name: fmt.Sprintf("paced >= %dx faster (%.1fx)", minSpeedup, speedup), ok: speedup >= minSpeedup, timed: true})
	}
	return cs
}

// writeTable prints the rows as one Markdown table.
func writeTable(w io.Writer, rows []row, quick bool) error {
	header := []string{"scenario", "LD calls", "wall", "lower bound", "ratio", "429s", "plan", "peak heap", "peak RSS", "targets", "result"}
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat(" --- |", len(header)) + "\n")
	for _, r := range rows {
		names := make([]string, 0, len(r.checks))
		for _, c := range r.checks[1:] { // "run without error" goes without saying
			name := c.name
			if c.timed && quick {
				name += " (not enforced)"
			}
			names = append(names, name)
		}
		result := "PASS"
		if missed := r.missed(quick); len(missed) > 0 {
			result = "MISS: " + strings.Join(missed, "; ")
		}
		cells := []string{
			r.name,
			fmt.Sprint(r.stats.Requests),
			formatDuration(r.wall),
			formatDuration(r.bound),
			fmt.Sprintf("%.2f", r.ratio()),
			fmt.Sprint(r.stats.RateLimited),
			formatDuration(r.plan),
			formatBytes(r.heap),
			formatBytes(r.rss),
			strings.Join(names, ", "),
			result,
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

func formatBytes(n uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
