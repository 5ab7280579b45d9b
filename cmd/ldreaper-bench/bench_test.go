package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestMain lets the test binary serve the child fake, as the real binary
// does, when the bench starts "itself" from inside a test.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == roleFake {
		os.Exit(serveFake(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestQuickRunPrintsTheTable runs the whole bench at -quick sizes. It checks
// the table's shape and that every ratio and bound was computed, and that
// the targets that do not depend on time (calls, failures, 429s, duplicates)
// were met; the timed targets are for the full run by hand.
func TestQuickRunPrintsTheTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes; skipped with -short")
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"-quick"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var lines []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(l, "|") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 6 {
		t.Fatalf("%d table lines, want a header, a rule and 4 rows:\n%s", len(lines), stdout.String())
	}
	header := "| scenario | LD calls | wall | lower bound | ratio | 429s | plan | peak heap | peak RSS | targets | result |"
	if diff := cmp.Diff(header, lines[0]); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	var ids []string
	for _, l := range lines[2:] {
		cells := strings.Split(strings.Trim(l, "| "), " | ")
		if len(cells) != 11 {
			t.Fatalf("row has %d cells, want 11: %s", len(cells), l)
		}
		ids = append(ids, strings.Fields(cells[0])[0])
		if calls, err := strconv.Atoi(cells[1]); err != nil || calls <= 0 {
			t.Errorf("%s: LD calls %q", cells[0], cells[1])
		}
		for i, name := range map[int]string{2: "wall", 3: "lower bound", 6: "plan"} {
			if cells[i] == "0µs" {
				t.Errorf("%s: %s not measured", cells[0], name)
			}
		}
		if ratio, err := strconv.ParseFloat(cells[4], 64); err != nil || ratio <= 0 {
			t.Errorf("%s: ratio %q not computed", cells[0], cells[4])
		}
		if !strings.HasSuffix(cells[8], "MiB") || strings.HasPrefix(cells[8], "0.0") {
			t.Errorf("%s: peak RSS %q not measured", cells[0], cells[8])
		}
		if cells[10] != "PASS" {
			t.Errorf("%s: result %q", cells[0], cells[10])
		}
	}
	if diff := cmp.Diff([]string{"P1", "P2", "P2", "P3"}, ids); diff != "" {
		t.Errorf("scenarios (-want +got):\n%s", diff)
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-run", "P9"}, `unknown scenario "P9"`},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-nosuchflag"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tt.want)
			}
		})
	}
}

func TestSelectScenarios(t *testing.T) {
	all := scenarios(true)
	tests := []struct {
		only string
		want []string
	}{
		{"", []string{"P1", "P2", "P2-naive", "P3"}},
		{"P2", []string{"P2", "P2-naive"}},
		{"P3, P1", []string{"P3", "P1"}},
		{"P2-naive", []string{"P2-naive"}},
	}
	for _, tt := range tests {
		t.Run(tt.only, func(t *testing.T) {
			got, err := selectScenarios(all, tt.only)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, sc := range got {
				ids = append(ids, sc.id)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("selected (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLowerBound(t *testing.T) {
	tests := []struct {
		name      string
		sc        scenario
		planned   int
		wantCalls int
		want      time.Duration
	}{
		{name: "no drift: pages plus the count call",
			sc:        scenario{kind: noDrift, fake: fakeSpec{Owned: 10_000, Latency: 20 * time.Millisecond}},
			wantCalls: 101, want: 2020 * time.Millisecond},
		{name: "no drift: a partial last page is a call",
			sc:        scenario{kind: noDrift, fake: fakeSpec{Owned: 1_001, Latency: 10 * time.Millisecond}},
			wantCalls: 12, want: 120 * time.Millisecond},
		{name: "burst bound by the budget",
			sc:      scenario{kind: burst, concurrency: 10, headroom: 40, fake: fakeSpec{Latency: 20 * time.Millisecond, GlobalBudget: 440, RateWindow: time.Second}},
			planned: 2_000, wantCalls: 2_000, want: 5 * time.Second},
		{name: "burst bound by latency over the workers",
			sc:      scenario{kind: burst, concurrency: 2, headroom: 40, fake: fakeSpec{Latency: 20 * time.Millisecond, GlobalBudget: 440, RateWindow: time.Second}},
			planned: 2_000, wantCalls: 2_000, want: 20 * time.Second},
		{name: "burst without a budget, pacing off",
			sc:      scenario{kind: burst, concurrency: 1, headroom: -1, fake: fakeSpec{Latency: 20 * time.Millisecond}},
			planned: 100, wantCalls: 100, want: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, bound := lowerBound(tt.sc, tt.planned)
			if calls != tt.wantCalls || bound != tt.want {
				t.Errorf("lowerBound = %d calls, %s; want %d, %s", calls, bound, tt.wantCalls, tt.want)
			}
		})
	}
}

// TestChecks feeds evaluate made-up measurements and reads which targets
// it says were missed, in a full run and in a quick one.
func TestChecks(t *testing.T) {
	quickSizes := scenarios(true)
	full := scenarios(false)
	p1, p2, naive, p3 := full[0], full[1], full[2], full[3]
	good := []measurement{
		{scenario: p1, wall: 2100 * time.Millisecond, bound: 2020 * time.Millisecond, minCalls: 101, rss: 40 << 20,
			stats: fakeStats{Requests: 101, ByRoute: map[string]int{"list_environments": 101}}},
		{scenario: p2, wall: 5200 * time.Millisecond, bound: 5 * time.Second, minCalls: 2000,
			stats: fakeStats{Requests: 2011, Creates: 1000, Deletes: 1000}},
		{scenario: naive, wall: 41 * time.Second, bound: 4545 * time.Millisecond, minCalls: 2000,
			stats: fakeStats{Requests: 2011, Creates: 1000, Deletes: 1000}},
		{scenario: p3, wall: 6 * time.Second, bound: 5005 * time.Millisecond, minCalls: 1001, rss: 200 << 20, plan: 30 * time.Millisecond,
			stats: fakeStats{Requests: 1001}},
	}
	tests := []struct {
		name  string
		edit  func(ms []measurement)
		quick bool
		want  map[string][]string // scenario id -> missed
	}{
		{name: "all targets met", edit: func([]measurement) {}, want: map[string][]string{}},
		{name: "P1 too slow, too many calls, a GET per env", edit: func(ms []measurement) {
			ms[0].wall = 2500 * time.Millisecond
			ms[0].stats.Requests = 102
			ms[0].stats.ByRoute["get_environment"] = 1
		}, want: map[string][]string{"P1": {"calls <= 101", "no per-env GET", "ratio <= 1.20"}}},
		{name: "P2 failed action, duplicate, avoidable 429", edit: func(ms []measurement) {
			ms[1].summary.Failed = 1
			ms[1].stats.Repeated = 1
			ms[1].stats.RateLimited = 3
		}, want: map[string][]string{"P2": {"0 failed", "every action done once", "0 avoidable 429s"}}},
		{name: "naive 429s are no target, but the speedup is", edit: func(ms []measurement) {
			ms[2].stats.RateLimited = 40
			ms[2].wall = 20 * time.Second
		}, want: map[string][]string{"P2-naive": {"paced >= 5x faster (3.8x)"}}},
		{name: "P3 plan and RSS over", edit: func(ms []measurement) {
			ms[3].plan = 51 * time.Millisecond
			ms[3].rss = 301 << 20
		}, want: map[string][]string{"P3": {"plan <= 50.0ms", "RSS <= 300.0 MiB"}}},
		{name: "a run error is always a miss", edit: func(ms []measurement) { ms[3].runErr = "boom" },
			quick: true, want: map[string][]string{"P3": {"run without error"}}},
		{name: "quick enforces counts, not time or memory", quick: true, edit: func(ms []measurement) {
			ms[0].wall = time.Hour
			ms[0].stats.Requests = 500
			ms[3].rss = 1 << 40
		}, want: map[string][]string{"P1": {"calls <= 101"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := make([]measurement, len(good))
			for i, m := range good {
				m.stats.ByRoute = map[string]int{}
				ms[i] = m
			}
			tt.edit(ms)
			got := map[string][]string{}
			for _, r := range evaluate(ms) {
				if missed := r.missed(tt.quick); len(missed) > 0 {
					got[r.id] = missed
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("missed (-want +got):\n%s", diff)
			}
		})
	}
	if quickSizes[0].maxRSS != 0 || full[0].maxRSS != 64<<20 || full[3].maxRSS != 300<<20 {
		t.Errorf("RSS targets belong to 10,000 and 100,000 environments only")
	}
}

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   uint64
		wantOK bool
	}{
		{"real status", "Name:\tx\nVmPeak:\t  123 kB\nVmHWM:\t   31500 kB\nVmRSS:\t 30000 kB\n", 31500 * 1024, true},
		{"missing", "Name:\tx\nVmRSS:\t 30000 kB\n", 0, false},
		{"other unit", "VmHWM:\t 3 MB\n", 0, false},
		{"not a number", "VmHWM:\t lots kB\n", 0, false},
		{"absurd", "VmHWM:\t 99999999999999999 kB\n", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseVmHWM([]byte(tt.status))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("parseVmHWM = %d, %t; want %d, %t", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseVmHWM(f *testing.F) {
	f.Add([]byte("VmHWM:\t   31500 kB\n"))
	f.Add([]byte("Name:\tx\nVmHWM: 1 kB"))
	f.Add([]byte("VmHWM:"))
	f.Add([]byte("VmHWM:\t18446744073709551615 kB\n"))
	f.Fuzz(func(t *testing.T, status []byte) {
		n, ok := parseVmHWM(status)
		if !ok && n != 0 {
			t.Fatalf("not ok but %d bytes", n)
		}
		if ok && (n%1024 != 0 || n > 1<<54) {
			t.Fatalf("%d bytes is not a plausible kB count", n)
		}
	})
}
