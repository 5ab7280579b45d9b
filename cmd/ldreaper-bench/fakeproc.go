package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

const (
	// roleEnv tells a started copy of the binary to serve the fake instead
	// of benchmarking.
	roleEnv  = "LDREAPER_BENCH_ROLE"
	roleFake = "fake"

	benchProject = "bench"
	benchToken   = "api-ldreaper-bench-token"
	statsPath    = "/_bench/stats"
)

// fakeSpec is what the child fake serves: ldfake's options and the
// environments it starts with.
type fakeSpec struct {
	MaxPageSize  int           `json:"max_page_size"`
	RateWindow   time.Duration `json:"rate_window"`
	GlobalBudget int           `json:"global_budget"`
	Latency      time.Duration `json:"latency"`
	// Owned environments carry the managed and provenance tags and are
	// keyed OwnedPrefix plus a six-digit index.
	Owned       int    `json:"owned"`
	OwnedPrefix string `json:"owned_prefix"`
}

// fakeStats is what the fake's audit and mutation logs show.
type fakeStats struct {
	Requests    int            `json:"requests"`
	ByRoute     map[string]int `json:"by_route"`
	RateLimited int            `json:"rate_limited"`
	Creates     int            `json:"creates"`
	Deletes     int            `json:"deletes"`
	// Repeated counts keys created, or deleted, more than once.
	Repeated int `json:"repeated"`
}

// serveFake is the child's whole life: read a fakeSpec line from stdin,
// serve it on loopback, print {"url": …} to stdout, and stop when stdin
// closes, which is also what happens when the parent dies.
func serveFake(stdin io.Reader, stdout, stderr io.Writer) int {
	in := bufio.NewReader(stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper-bench fake: read spec: %v\n", err)
		return 1
	}
	var spec fakeSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		fmt.Fprintf(stderr, "ldreaper-bench fake: decode spec: %v\n", err)
		return 1
	}
	fake, err := newFake(spec)
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper-bench fake: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(stderr, "ldreaper-bench fake: listen: %v\n", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", fake)
	mux.HandleFunc("GET "+statsPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(statsOf(fake)) // the parent reports a short body
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { _ = srv.Serve(ln) }() // ends with Close below
	defer srv.Close()
	if err := json.NewEncoder(stdout).Encode(map[string]string{"url": "http://" + ln.Addr().String()}); err != nil {
		fmt.Fprintf(stderr, "ldreaper-bench fake: announce: %v\n", err)
		return 1
	}
	_, _ = io.Copy(io.Discard, in) // until the parent closes stdin
	return 0
}

func newFake(spec fakeSpec) (*ldfake.Server, error) {
	fake := ldfake.New(ldfake.Options{
		MaxPageSize:  spec.MaxPageSize,
		RateWindow:   spec.RateWindow,
		GlobalBudget: spec.GlobalBudget,
		Latency:      spec.Latency,
		Seed:         1,
	})
	fake.AddToken(benchToken, ldfake.RoleWriter)
	fake.AddProject(benchProject)
	seed := []ldfake.Environment{
		{Key: sourceEnvironment, Name: "Staging"},
		{Key: "production", Name: "Production", Critical: true},
	}
	for _, e := range seed {
		if _, err := fake.Seed(benchProject, e); err != nil {
			return nil, fmt.Errorf("seed %q: %w", e.Key, err)
		}
	}
	// Strictly increasing creation times keep seeding an append, not an
	// insertion into the middle of 100,000 environments.
	start := time.Now().Add(-time.Hour)
	for i := range spec.Owned {
		key := itemName(spec.OwnedPrefix, i)
		e := ldfake.Environment{Key: key, Name: "Preview " + key, Tags: []string{managedTag, provenanceTag}, CreatedOn: start.Add(time.Duration(i) * time.Microsecond)}
		if _, err := fake.Seed(benchProject, e); err != nil {
			return nil, fmt.Errorf("seed %q: %w", key, err)
		}
	}
	return fake, nil
}

func statsOf(fake *ldfake.Server) fakeStats {
	st := fakeStats{ByRoute: map[string]int{}}
	for _, a := range fake.Audit() {
		st.Requests++
		st.ByRoute[a.Route]++
		if a.Status == http.StatusTooManyRequests {
			st.RateLimited++
		}
	}
	seen := map[string]int{}
	for _, m := range fake.Mutations() {
		switch m.Op {
		case ldfake.OpCreate:
			st.Creates++
		case ldfake.OpDelete:
			st.Deletes++
		}
		op := string(m.Op) + " " + m.Key
		seen[op]++
		if seen[op] == 2 {
			st.Repeated++
		}
	}
	return st
}

// fakeProcess is a running child fake.
type fakeProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
}

// startFake starts this binary as a child fake serving spec; the child's
// errors go to stderr.
func startFake(ctx context.Context, spec fakeSpec, stderr io.Writer) (*fakeProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable to start the fake: %w", err)
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), roleEnv+"="+roleFake)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start fake: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start fake: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fake: %w", err)
	}
	p := &fakeProcess{cmd: cmd, stdin: stdin}
	if err := json.NewEncoder(stdin).Encode(spec); err != nil {
		p.stop()
		return nil, fmt.Errorf("send spec to the fake: %w", err)
	}
	var hello struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(stdout).Decode(&hello); err != nil {
		p.stop()
		return nil, fmt.Errorf("read the fake's address: %w", err)
	}
	if hello.URL == "" {
		p.stop()
		return nil, errors.New("the fake announced no address")
	}
	p.url = hello.URL
	return p, nil
}

func (p *fakeProcess) stats(ctx context.Context) (fakeStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+statsPath, nil)
	if err != nil {
		return fakeStats{}, fmt.Errorf("fake stats: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fakeStats{}, fmt.Errorf("fake stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fakeStats{}, fmt.Errorf("fake stats: status %d", resp.StatusCode)
	}
	var st fakeStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fakeStats{}, fmt.Errorf("decode fake stats: %w", err)
	}
	return st, nil
}

// stop closes the child's stdin, which ends it, and waits for it.
func (p *fakeProcess) stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait() // its exit status says nothing the stats did not
}
