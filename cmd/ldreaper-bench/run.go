package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"
)

const usage = `usage: ldreaper-bench [-quick] [-run P1,P2,P3]

Runs the reconciler against ldfake served on loopback with injected latency
and rate budgets, prints one table, and exits 1 when a target is missed.
-quick runs reduced sizes in seconds and enforces only the targets that do
not depend on time or memory.
`

// run is the whole command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ldreaper-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	quick := fs.Bool("quick", false, "reduced sizes; time and memory targets are reported, not enforced")
	only := fs.String("run", "", "comma-separated scenario ids to run (P1, P2, P3; P2 includes its naive row); empty runs all")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ldreaper-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	selected, err := selectScenarios(scenarios(*quick), *only)
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper-bench: %v\n", err)
		return 2
	}

	var ms []measurement
	for _, sc := range selected {
		m, err := measure(ctx, sc, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "ldreaper-bench: %v\n", err)
			return 1
		}
		ms = append(ms, m)
	}
	rows := evaluate(ms)
	writeSetup(stdout, selected, *quick)
	if err := writeTable(stdout, rows, *quick); err != nil {
		fmt.Fprintf(stderr, "ldreaper-bench: write table: %v\n", err)
		return 1
	}
	code := 0
	for _, r := range rows {
		if r.runErr != "" {
			fmt.Fprintf(stderr, "ldreaper-bench: %s: run error: %s\n", r.id, r.runErr)
		}
		if missed := r.missed(*quick); len(missed) > 0 {
			fmt.Fprintf(stderr, "ldreaper-bench: %s missed: %s\n", r.id, strings.Join(missed, "; "))
			code = 1
		}
	}
	return code
}

// selectScenarios keeps the scenarios whose id starts with one of the
// comma-separated ids in only; empty keeps all.
func selectScenarios(all []scenario, only string) ([]scenario, error) {
	if strings.TrimSpace(only) == "" {
		return all, nil
	}
	var out []scenario
	for _, id := range strings.Split(only, ",") {
		id = strings.TrimSpace(id)
		n := len(out)
		for _, sc := range all {
			if sc.id == id || strings.HasPrefix(sc.id, id+"-") {
				out = append(out, sc)
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("-run: unknown scenario %q", id)
		}
	}
	return out, nil
}

// writeSetup says what the table was measured with.
func writeSetup(w io.Writer, scs []scenario, quick bool) {
	mode := "full"
	if quick {
		mode = "quick (time and memory targets not enforced)"
	}
	fmt.Fprintf(w, "ldreaper-bench, %s run: %s %s/%s, GOMAXPROCS=%d\n\n", mode, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	for _, sc := range scs {
		pacing := fmt.Sprintf("headroom %d (%.0f req/s left to ldreaper)", sc.headroom, sc.budgetRate())
		if sc.headroom < 0 {
			pacing = "pacing off"
		}
		fmt.Fprintf(w, "- %s: latency %s per call, page %d, budget %d per %s window, %s, concurrency %d\n",
			sc.id, formatDuration(sc.fake.Latency), sc.fake.MaxPageSize, sc.fake.GlobalBudget, formatDuration(sc.fake.RateWindow), pacing, sc.concurrency)
	}
	fmt.Fprintln(w, "\nlower bound: no drift = (ceil(N/page) + 1 count call) x latency; burst = max(actions / budget rate, actions x latency / concurrency); ratio = wall / lower bound")
	fmt.Fprintln(w)
}
