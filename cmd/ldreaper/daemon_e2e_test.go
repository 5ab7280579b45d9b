package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/ldreaper/ldreaper/internal/redistest"
	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

// These tests run the real binary as several daemon processes against one
// real redis-server and one ldfake served from the test process. Each
// process has its own LD token, so ldfake's mutation log says which process
// made each change; the processes' JSON logs say under which lease
// generation. Waits are bounded polls: the tests measure nothing but the
// bounds the issue promises.

const (
	e2eProject         = "e2e"
	e2eReconcileToken  = "reconcile-e2e-secret"
	e2eLockTTL         = 3 * time.Second
	e2ePeriod          = 10 * time.Second
	e2eLockKey         = "ldreaper:leader"
	e2eStartupTimeout  = 15 * time.Second
	e2eConvergeTimeout = e2eLockTTL + e2ePeriod + 5*time.Second
)

func TestDaemonEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs redis-server; skipped with -short")
	}
	bin := onceBinary(t)
	t.Run("two daemons never mutate at once", func(t *testing.T) {
		t.Parallel()
		testNoConcurrentMutations(t, bin, 2)
	})
	t.Run("three daemons never mutate at once", func(t *testing.T) {
		t.Parallel()
		testNoConcurrentMutations(t, bin, 3)
	})
	t.Run("SIGKILL of the leader hands over within lock_ttl plus one period", func(t *testing.T) {
		t.Parallel()
		testLeaderKillHandsOver(t, bin)
	})
	t.Run("redis outage stops mutations and readiness, and recovers", func(t *testing.T) {
		t.Parallel()
		testRedisOutage(t, bin)
	})
	t.Run("SIGTERM mid-run", func(t *testing.T) {
		t.Parallel()
		testSIGTERMMidRun(t, bin)
	})
	t.Run("orphan grace counted across a leader change", func(t *testing.T) {
		t.Parallel()
		testOrphanGraceAcrossLeaderChange(t, bin)
	})
}

// testNoConcurrentMutations runs n daemons that all race for the lock at
// start, then stops the leader mid-run, first with SIGKILL, then with
// SIGTERM and a shutdown_timeout too short to finish, with every daemon
// asked to reconcile at once; each lost process is replaced. So at least
// three leaders mutate, each leaving work to the next.
func testNoConcurrentMutations(t *testing.T, bin string, n int) {
	c := newE2ECluster(t, bin, ldfake.Options{Latency: 40 * time.Millisecond})
	names := previewNames(0, 6)
	c.writeSource(names...)
	cfg := c.config(e2eConfig{shutdownTimeout: "200ms"})
	live := c.startAll(cfg, n)
	c.waitForEnvironments(e2eConvergeTimeout, names)

	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		names = append(names, previewNames(len(names), 10)...)
		c.writeSource(names...)
		before := len(c.fake.Mutations())
		var wg sync.WaitGroup
		for _, p := range live {
			wg.Go(func() { p.reconcile() }) // followers answer 409
		}
		wg.Wait()
		first := c.waitForMutation(before)
		victim := c.byToken(first.TokenID)
		victim.signal(sig)
		if sig == syscall.SIGTERM {
			if code := victim.waitExit(20 * time.Second); code != 0 {
				t.Errorf("SIGTERM: exit %d, want 0", code)
			}
		}
		live = slices.DeleteFunc(live, func(p *daemonProc) bool { return p == victim })
		live = append(live, c.start(cfg))
		c.waitForEnvironments(e2eConvergeTimeout, names)
	}
	for _, p := range live {
		p.signal(syscall.SIGTERM)
	}
	for _, p := range live {
		if code := p.waitExit(20 * time.Second); code != 0 {
			t.Errorf("%s: exit %d after SIGTERM, want 0", p, code)
		}
	}

	c.assertNoDuplicateCreates(names)
	terms := c.leadershipTerms()
	for _, term := range terms {
		t.Logf("generation %d (%s) mutated from %s to %s", term.generation, term.tokenID, term.first.Format(time.StampMicro), term.last.Format(time.StampMicro))
	}
	if len(terms) < 3 {
		t.Errorf("only %d leadership terms mutated; the test meant at least 3 (first leader, after SIGKILL, after SIGTERM)", len(terms))
	}
	for i := 1; i < len(terms); i++ {
		prev, next := terms[i-1], terms[i]
		if !prev.last.Before(next.first) {
			t.Errorf("generation %d (%s) mutated until %s, after generation %d (%s) began at %s",
				prev.generation, prev.tokenID, prev.last.Format(time.RFC3339Nano), next.generation, next.tokenID, next.first.Format(time.RFC3339Nano))
		}
	}
}

func testLeaderKillHandsOver(t *testing.T, bin string) {
	c := newE2ECluster(t, bin, ldfake.Options{})
	c.writeSource("pr-1")
	cfg := c.config(e2eConfig{})
	a := c.start(cfg)
	c.waitForEnvironments(e2eConvergeTimeout, []string{"pr-1"})
	first := a.status()
	b := c.start(cfg)
	waitFor(t, e2eStartupTimeout, "the second daemon to follow", func() bool {
		st := b.status()
		return !st.Leader && st.Holder == first.Identity
	})

	c.writeSource("pr-1", "pr-2")
	a.signal(syscall.SIGKILL)
	elapsed := waitFor(t, e2eLockTTL+e2ePeriod, "the follower to lead and finish a run", func() bool {
		st := b.status()
		return st.Leader && st.LastRun != nil && st.LastRun.Generation == st.Generation
	})
	t.Logf("handover took %s (bound %s)", elapsed, e2eLockTTL+e2ePeriod)
	if second := b.status(); second.Generation <= first.Generation {
		t.Errorf("new leader's generation %d is not above the killed leader's %d", second.Generation, first.Generation)
	}
	c.waitForEnvironments(time.Second, []string{"pr-1", "pr-2"})
	if m := c.fake.Mutations(); m[len(m)-1].TokenID != b.tokenID {
		t.Errorf("pr-2 created by %s, want the new leader %s", m[len(m)-1].TokenID, b.tokenID)
	}
}

func testRedisOutage(t *testing.T, bin string) {
	c := newE2ECluster(t, bin, ldfake.Options{})
	c.writeSource("pr-1")
	cfg := c.config(e2eConfig{})
	procs := c.startAll(cfg, 2)
	c.waitForEnvironments(e2eConvergeTimeout, []string{"pr-1"})
	leaderProc := c.waitForLeader(procs)
	before := len(c.fake.Mutations())

	c.redis.Stop()
	c.writeSource("pr-1", "pr-2")
	leaderProc.reconcile() // 202 while the lease still counts locally, else 409
	waitFor(t, e2eConvergeTimeout, "/readyz to fail on every daemon", func() bool {
		for _, p := range procs {
			if code, _ := p.get("/readyz"); code != http.StatusServiceUnavailable {
				return false
			}
		}
		return true
	})
	for _, p := range procs {
		if st := p.status(); st.Leader || st.RedisError == "" {
			t.Errorf("%s without redis: leader %v, redis_error %q; want follower with the error", p, st.Leader, st.RedisError)
		}
	}
	if m := c.fake.Mutations()[before:]; len(m) != 0 {
		t.Fatalf("mutations while redis was down: %+v", m)
	}

	c.redis.Restart() // empty, as after a crash
	c.waitForEnvironments(e2eConvergeTimeout, []string{"pr-1", "pr-2"})
	waitFor(t, e2eConvergeTimeout, "/readyz to pass on every daemon", func() bool {
		for _, p := range procs {
			if code, _ := p.get("/readyz"); code != http.StatusOK {
				return false
			}
		}
		return true
	})
	for _, p := range procs {
		if p.exited() {
			t.Errorf("%s exited; it should have resumed without a restart", p)
		}
	}
	c.assertNoDuplicateCreates([]string{"pr-1", "pr-2"})
}

func testSIGTERMMidRun(t *testing.T, bin string) {
	tests := []struct {
		name            string
		shutdownTimeout string
		// wantCut: the run outlives shutdown_timeout and is cancelled.
		wantCut bool
	}{
		{name: "run cut at shutdown_timeout", shutdownTimeout: "300ms", wantCut: true},
		{name: "run finishes within shutdown_timeout", shutdownTimeout: "20s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newE2ECluster(t, bin, ldfake.Options{Latency: 100 * time.Millisecond})
			names := previewNames(0, 8)
			c.writeSource(names...)
			cfg := c.config(e2eConfig{shutdownTimeout: tc.shutdownTimeout})
			a := c.start(cfg)
			c.waitForMutation(0)
			a.signal(syscall.SIGTERM)
			if code := a.waitExit(30 * time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, a.logText())
			}
			if n, err := c.redisClient().Exists(context.Background(), e2eLockKey).Result(); err != nil || n != 0 {
				t.Errorf("lock key %q after exit: exists=%d err=%v; want it released", e2eLockKey, n, err)
			}
			created := len(c.fake.Mutations())
			cut := a.logged(func(e logEntry) bool {
				return e.Message == "run failed" && strings.Contains(e.Error, errShutdownTimeout.Error())
			})
			if tc.wantCut != (created < len(names)) || tc.wantCut != cut {
				t.Fatalf("%d of %d created before exit, run failed with shutdown timeout: %v; want cut %v", created, len(names), cut, tc.wantCut)
			}

			// The next daemon finishes what the first left, creating nothing twice.
			b := c.start(cfg)
			c.waitForEnvironments(e2eConvergeTimeout, names)
			c.assertNoDuplicateCreates(names)
			b.signal(syscall.SIGTERM)
			if code := b.waitExit(30 * time.Second); code != 0 {
				t.Errorf("second daemon: exit %d after SIGTERM, want 0", code)
			}
		})
	}
}

func testOrphanGraceAcrossLeaderChange(t *testing.T, bin string) {
	c := newE2ECluster(t, bin, ldfake.Options{GlobalBudget: 10000})
	owned := []string{"ldreaper", "ldreaper-src.previews"}
	for _, key := range []string{"pr-live", "pr-gone"} {
		if _, err := c.fake.Seed(e2eProject, ldfake.Environment{Key: key, Tags: owned}); err != nil {
			t.Fatal(err)
		}
	}
	c.writeSource("pr-live")
	cfg := c.config(e2eConfig{orphanMinRuns: 2})
	a := c.start(cfg)
	waitFor(t, e2eConvergeTimeout, "the first leader's first run", func() bool { return a.status().LastRun != nil })
	first := a.status()
	if diff := cmp.Diff(reconciler.Summary{Keep: 1, Held: 1, Owned: 2}, first.LastRun.Summary); diff != "" {
		t.Errorf("first leader's run: summary (-want +got):\n%s", diff)
	}
	b := c.start(cfg)
	waitFor(t, e2eStartupTimeout, "the second daemon to follow", func() bool { return b.status().Holder == first.Identity })
	a.signal(syscall.SIGKILL)

	waitFor(t, e2eConvergeTimeout, "the orphan to be deleted", func() bool {
		_, ok := c.fake.Environment(e2eProject, "pr-gone")
		return !ok
	})
	// The delete lands before the run ends (orphan state is saved after it).
	waitFor(t, e2eConvergeTimeout, "the new leader's run to finish", func() bool {
		return b.status().LastRun != nil && b.logged(func(e logEntry) bool { return e.Message == "run finished" })
	})
	want := []string{"delete pr-gone by " + b.tokenID}
	if diff := cmp.Diff(want, c.mutationLog()); diff != "" {
		t.Errorf("mutations (-want +got):\n%s", diff)
	}
	runs := b.entries(func(e logEntry) bool { return e.Message == "run finished" })
	if len(runs) == 0 || runs[0].Delete != 1 {
		t.Errorf("the new leader's first run did not delete the orphan: %+v", runs)
	}

	// The new leader's /metrics tell the same story.
	st := b.status()
	code, body := b.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	series := parseSeries(t, body)
	wantSeries := map[string]float64{
		`ldreaper_leader`:                                                     1,
		`ldreaper_fencing_generation`:                                         float64(st.Generation),
		`ldreaper_runs_total{result="success"}`:                               1,
		`ldreaper_runs_total{result="error"}`:                                 0,
		`ldreaper_run_duration_seconds_count`:                                 1,
		`ldreaper_changes_total{op="delete",reason="",status="applied"}`:      1,
		`ldreaper_source_items{source="previews"}`:                            1,
		`ldreaper_source_complete{source="previews"}`:                         1,
		`ldreaper_owned_environments`:                                         2,
		`ldreaper_guard_tripped{guard="orphan_grace"}`:                        0,
		`ldreaper_ld_requests_total{route="delete_environment",status="204"}`: 1,
		`ldreaper_ld_requests_total{route="list_environments",status="200"}`:  series[`ldreaper_ld_requests_total{route="list_environments",status="200"}`],
		`ldreaper_ld_ratelimit_remaining{scope="global"}`:                     series[`ldreaper_ld_ratelimit_remaining{scope="global"}`],
		`ldreaper_last_success_timestamp_seconds`:                             series[`ldreaper_last_success_timestamp_seconds`],
	}
	got := map[string]float64{}
	for k := range wantSeries {
		v, ok := series[k]
		if !ok {
			v = -999 // absent
		}
		got[k] = v
	}
	if diff := cmp.Diff(wantSeries, got); diff != "" {
		t.Errorf("the new leader's /metrics (-want +got):\n%s", diff)
	}
	if n := series[`ldreaper_ld_requests_total{route="list_environments",status="200"}`]; n < 1 {
		t.Errorf("no successful list_environments request counted")
	}
	if r := series[`ldreaper_ld_ratelimit_remaining{scope="global"}`]; r <= 0 || r >= 10000 {
		t.Errorf("ldreaper_ld_ratelimit_remaining{scope=\"global\"} = %v, want within (0, 10000)", r)
	}
	if ts := series[`ldreaper_last_success_timestamp_seconds`]; time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("ldreaper_last_success_timestamp_seconds = %v, not a recent run", ts)
	}
}

// e2eCluster is one redis-server, one ldfake and a directory for config and
// source files, shared by the daemon processes of one test.
type e2eCluster struct {
	t       *testing.T
	bin     string
	redis   *redistest.Server
	fake    *ldfake.Server
	baseURL string
	dir     string

	mu     sync.Mutex
	procs  []*daemonProc
	tokens int
}

func newE2ECluster(t *testing.T, bin string, o ldfake.Options) *e2eCluster {
	t.Helper()
	rs := redistest.Start(t)
	fake := ldfake.New(o)
	fake.AddProject(e2eProject)
	for _, e := range []ldfake.Environment{
		{Key: "production", Name: "Production", Critical: true},
		{Key: "staging", Name: "Staging"},
	} {
		if _, err := fake.Seed(e2eProject, e); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	baseURL, err := fake.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &e2eCluster{t: t, bin: bin, redis: rs, fake: fake, baseURL: baseURL, dir: t.TempDir()}
}

type e2eConfig struct {
	shutdownTimeout string
	orphanMinRuns   int
}

func (c *e2eCluster) config(o e2eConfig) string {
	c.t.Helper()
	if o.shutdownTimeout == "" {
		o.shutdownTimeout = "10s"
	}
	if o.orphanMinRuns == 0 {
		o.orphanMinRuns = 1
	}
	text := fmt.Sprintf(`
[launchdarkly]
project = %q
base_url = %q
source_environment = "staging"
request_timeout = "5s"
max_retries = 1

[reconcile]
schedule = "@every %s"
concurrency = 1
shutdown_timeout = %q

[safety]
orphan_grace = "0s"
orphan_min_runs = %d
protected = ["production", "staging"]

[redis]
url = %q
lock_key = %q
lock_ttl = %q

[http]
listen = "127.0.0.1:0"
reconcile_token_env = "LDREAPER_RECONCILE_TOKEN"

[[source]]
name = "previews"
type = "file"
path = "previews.txt"
allow_empty = true
`, e2eProject, c.baseURL, e2ePeriod, o.shutdownTimeout, o.orphanMinRuns, c.redis.URL(), e2eLockKey, e2eLockTTL)
	path := filepath.Join(c.dir, "ldreaper.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// writeSource replaces the file source's list. The file is written whole
// and renamed so that a daemon never reads half of it.
func (c *e2eCluster) writeSource(names ...string) {
	c.t.Helper()
	tmp := filepath.Join(c.dir, "previews.txt.tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "previews.txt")); err != nil {
		c.t.Fatal(err)
	}
}

func previewNames(from, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("pr-%d", from+i+1)
	}
	return names
}

func (c *e2eCluster) redisClient() *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: c.redis.Addr()})
	c.t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// start launches a daemon with a token of its own and waits until it serves HTTP.
func (c *e2eCluster) start(cfg string) *daemonProc {
	c.t.Helper()
	p := c.launch(cfg)
	p.awaitStarted()
	return p
}

// startAll launches n daemons at once, so they race for the lock.
func (c *e2eCluster) startAll(cfg string, n int) []*daemonProc {
	c.t.Helper()
	procs := make([]*daemonProc, n)
	for i := range procs {
		procs[i] = c.launch(cfg)
	}
	for _, p := range procs {
		p.awaitStarted()
	}
	return procs
}

func (c *e2eCluster) launch(cfg string) *daemonProc {
	c.t.Helper()
	c.mu.Lock()
	c.tokens++
	token := fmt.Sprintf("api-e2e-daemon-%d-0000-secret", c.tokens)
	c.mu.Unlock()
	p := &daemonProc{t: c.t, token: token, tokenID: c.fake.AddToken(token, ldfake.RoleWriter), started: make(chan struct{}), done: make(chan struct{})}
	p.http = &http.Client{Timeout: 2 * time.Second}
	p.cmd = exec.Command(c.bin, "--config", cfg)
	p.cmd.Dir = c.dir
	p.cmd.Env = []string{"LD_API_TOKEN=" + token, "LDREAPER_RECONCILE_TOKEN=" + e2eReconcileToken, "PATH=" + os.Getenv("PATH")}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start ldreaper: %v", err)
	}
	go p.collect(stderr)
	c.t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if strings.Contains(p.logText(), token) {
			c.t.Errorf("%s logged its LD token", p)
		}
	})
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

func (c *e2eCluster) byToken(id string) *daemonProc {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.tokenID == id {
			return p
		}
	}
	c.t.Fatalf("no daemon has token %q", id)
	return nil
}

func (c *e2eCluster) waitForLeader(procs []*daemonProc) *daemonProc {
	c.t.Helper()
	var found *daemonProc
	waitFor(c.t, e2eConvergeTimeout, "a leader", func() bool {
		for _, p := range procs {
			if p.status().Leader {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// waitForEnvironments waits until every key exists in ldfake.
func (c *e2eCluster) waitForEnvironments(limit time.Duration, keys []string) {
	c.t.Helper()
	waitFor(c.t, limit, fmt.Sprintf("environments %v", keys), func() bool {
		for _, k := range keys {
			if _, ok := c.fake.Environment(e2eProject, k); !ok {
				return false
			}
		}
		return true
	})
}

// waitForMutation waits for the mutation after the first n and returns it.
// It polls tightly: tests act on the leader while its run goes on.
func (c *e2eCluster) waitForMutation(n int) ldfake.Mutation {
	c.t.Helper()
	deadline := time.Now().Add(e2eConvergeTimeout)
	for {
		if m := c.fake.Mutations(); len(m) > n {
			return m[n]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no mutation after the first %d within %s", n, e2eConvergeTimeout)
		}
		time.Sleep(2 * time.Millisecond) // polling ldfake; bounded by the deadline
	}
}

func (c *e2eCluster) mutationLog() []string {
	var out []string
	for _, m := range c.fake.Mutations() {
		out = append(out, fmt.Sprintf("%s %s by %s", m.Op, m.Key, m.TokenID))
	}
	return out
}

// assertNoDuplicateCreates: every key was created once, and no create ever
// met an existing key (a 409 would mean two runs raced to create it).
func (c *e2eCluster) assertNoDuplicateCreates(keys []string) {
	c.t.Helper()
	creates := map[string]int{}
	for _, m := range c.fake.Mutations() {
		if m.Op == ldfake.OpCreate {
			creates[m.Key]++
		}
	}
	want := map[string]int{}
	for _, k := range keys {
		want[k] = 1
	}
	if diff := cmp.Diff(want, creates); diff != "" {
		c.t.Errorf("creates per key (-want +got):\n%s", diff)
	}
	for _, a := range c.fake.Audit() {
		if a.Route == ldclient.RouteCreateEnvironment && a.Status == http.StatusConflict {
			c.t.Errorf("a create met an existing key (409) at %s from %s", a.Time.Format(time.RFC3339Nano), a.TokenID)
		}
	}
}

// leadershipTerm is the span of one lease generation's mutations.
type leadershipTerm struct {
	generation  int64
	tokenID     string
	first, last time.Time
}

// leadershipTerms attributes every ldfake mutation to the generation its
// process logged it under, and returns the terms ordered by generation.
// A mutation a SIGKILLed process made but did not live to log belongs to
// that process's only term; a process that led twice must have logged it.
func (c *e2eCluster) leadershipTerms() []leadershipTerm {
	c.t.Helper()
	terms := map[int64]*leadershipTerm{}
	for _, m := range c.fake.Mutations() {
		p := c.byToken(m.TokenID)
		gen, ok := p.generationOf(string(m.Op), m.Key)
		if !ok {
			gens := p.generations()
			if len(gens) != 1 {
				c.t.Errorf("cannot attribute %s %s by %s to one of its generations %v", m.Op, m.Key, p, gens)
				continue
			}
			gen = gens[0]
		}
		term, ok := terms[gen]
		if !ok {
			term = &leadershipTerm{generation: gen, tokenID: m.TokenID, first: m.Time}
			terms[gen] = term
		}
		if term.tokenID != m.TokenID {
			c.t.Errorf("generation %d mutated through two tokens, %s and %s", gen, term.tokenID, m.TokenID)
		}
		term.last = m.Time
	}
	out := make([]leadershipTerm, 0, len(terms))
	for _, term := range terms {
		out = append(out, *term)
	}
	slices.SortFunc(out, func(a, b leadershipTerm) int { return int(a.generation - b.generation) })
	return out
}

// daemonProc is one ldreaper daemon process and what it logged.
type daemonProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	token   string
	tokenID string
	addr    string // its HTTP listener, from the start-up log line
	http    *http.Client

	started chan struct{}
	done    chan struct{} // closed when the process has exited
	mu      sync.Mutex
	lines   []string
	exit    int
}

func (p *daemonProc) String() string {
	return fmt.Sprintf("daemon %d (%s)", p.cmd.Process.Pid, p.tokenID)
}

// logEntry is the subset of the JSON log fields the tests read.
type logEntry struct {
	Message    string `json:"message"`
	Listen     string `json:"listen"`
	Generation int64  `json:"generation"`
	Op         string `json:"op"`
	Key        string `json:"key"`
	Delete     int    `json:"delete"`
	Error      string `json:"error"`
}

// collect reads the process's JSON log until it exits, then reaps it.
func (p *daemonProc) collect(stderr io.Reader) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var e logEntry
		if json.Unmarshal([]byte(line), &e) == nil && e.Message == "ldreaper daemon started" {
			p.mu.Lock()
			p.addr = e.Listen
			p.mu.Unlock()
			close(p.started)
		}
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	var exitErr *exec.ExitError
	p.mu.Lock()
	switch {
	case errors.As(err, &exitErr):
		p.exit = exitErr.ExitCode()
	case err != nil:
		p.exit = -1
	}
	p.mu.Unlock()
	close(p.done)
}

func (p *daemonProc) awaitStarted() {
	p.t.Helper()
	select {
	case <-p.started:
	case <-p.done:
		p.t.Fatalf("%s exited before serving:\n%s", p, p.logText())
	case <-time.After(e2eStartupTimeout):
		p.t.Fatalf("%s did not start within %s:\n%s", p, e2eStartupTimeout, p.logText())
	}
}

func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *daemonProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s to %s: %v", sig, p, err)
	}
}

// waitExit waits for the process to exit and returns its exit code (-1
// for death by signal).
func (p *daemonProc) waitExit(limit time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("%s still running %s after the signal:\n%s", p, limit, p.logText())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

func (p *daemonProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *daemonProc) entries(keep func(logEntry) bool) []logEntry {
	p.mu.Lock()
	lines := slices.Clone(p.lines)
	p.mu.Unlock()
	var out []logEntry
	for _, line := range lines {
		var e logEntry
		if json.Unmarshal([]byte(line), &e) == nil && keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func (p *daemonProc) logged(match func(logEntry) bool) bool {
	return len(p.entries(match)) > 0
}

// generationOf is the generation under which the process logged a change.
func (p *daemonProc) generationOf(op, key string) (int64, bool) {
	msg := map[string]string{"create": "environment created", "delete": "environment deleted"}[op]
	found := p.entries(func(e logEntry) bool { return e.Message == msg && e.Key == key })
	if len(found) != 1 {
		return 0, false
	}
	return found[0].Generation, true
}

// generations are the lease generations the process was elected under.
func (p *daemonProc) generations() []int64 {
	var out []int64
	for _, e := range p.entries(func(e logEntry) bool { return e.Message == "became leader" }) {
		out = append(out, e.Generation)
	}
	return out
}

func (p *daemonProc) url(path string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://" + p.addr + path
}

// get returns the status code and body; code 0 when the daemon did not answer.
func (p *daemonProc) get(path string) (int, string) {
	resp, err := p.http.Get(p.url(path))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (p *daemonProc) status() daemonState {
	p.t.Helper()
	code, body := p.get("/status")
	var st daemonState
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
		return daemonState{}
	}
	return st
}

// reconcile sends POST /reconcile and returns the status code.
func (p *daemonProc) reconcile() int {
	req, err := http.NewRequest(http.MethodPost, p.url("/reconcile"), nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+e2eReconcileToken)
	resp, err := p.http.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond until it holds, failing the test after limit. It
// returns how long it took.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond) // polling other processes; bounded by limit
	}
	return time.Since(start)
}
