package faultsuite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
	"github.com/ldreaper/ldreaper/reconciler"
)

// exitDeadline bounds how long the binary may take to exit after SIGTERM
// before the test calls it hung; it is a guard, not a measurement.
const exitDeadline = 20 * time.Second

// buildBinary builds cmd/ldreaper into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "ldreaper")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/ldreaper").CombinedOutput(); err != nil {
		t.Fatalf("build ldreaper: %v\n%s", err, out)
	}
	return bin
}

// TestSIGTERMMidApply sends SIGTERM to `ldreaper --once` while it is
// applying. The process stops starting mutations, reports what it did and
// did not do, and exits 1; the next --once finishes the job without
// repeating any of it.
func TestSIGTERMMidApply(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t, ldfake.Options{Seed: 31, Latency: 20 * time.Millisecond}, layout{keep: 4, orphans: 10, creates: 15})
	dir := t.TempDir()
	var sections []string
	for _, name := range sortedKeys(w.sources) {
		path := filepath.Join(dir, name+".txt")
		if err := os.WriteFile(path, []byte(strings.Join(w.sources[name].items, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		sections = append(sections, fmt.Sprintf("[[source]]\nname = %q\ntype = \"file\"\npath = %q\n", name, path))
	}
	config := filepath.Join(dir, "ldreaper.toml")
	text := fmt.Sprintf(`[launchdarkly]
project = %q
base_url = %q
source_environment = "staging"

[reconcile]
concurrency = 2

[safety]
max_deletes = 1000
max_delete_percent = 100
protected = ["production", "keep-*"]

%s`, project, w.url, strings.Join(sections, "\n"))
	if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var returned []string
	for _, s := range w.sources {
		returned = append(returned, s.items...)
	}

	// once runs the binary; with signalAfter > 0 it sends SIGTERM when the
	// fake sees that many mutating requests.
	once := func(name string, signalAfter int) (runRecord, int) {
		t.Helper()
		var code int
		r := w.record(name, false, returned, func() reconciler.Report {
			strike := make(chan struct{})
			var mu sync.Mutex
			mutating := 0
			w.mu.Lock()
			w.tap = func(r *http.Request) {
				if r.Method == http.MethodGet {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				mutating++
				if mutating == signalAfter {
					close(strike)
				}
			}
			w.mu.Unlock()
			defer func() {
				w.mu.Lock()
				w.tap = nil
				w.mu.Unlock()
			}()

			cmd := exec.Command(bin, "--config", config, "--once", "--report", "json", "--log-level", "error")
			cmd.Env = []string{"LD_API_TOKEN=" + writerToken, "PATH=" + os.Getenv("PATH")}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var err error
			if signalAfter > 0 {
				select {
				case <-strike:
					if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
						t.Fatal(err)
					}
				case err = <-exited:
					t.Fatalf("ldreaper exited (%v) before %d mutations\nstderr:\n%s", err, signalAfter, stderr.String())
				}
			}
			select {
			case err = <-exited:
			case <-time.After(exitDeadline):
				_ = cmd.Process.Kill()
				t.Fatalf("ldreaper still running %s after SIGTERM", exitDeadline)
			}
			var exitErr *exec.ExitError
			switch {
			case errors.As(err, &exitErr):
				code = exitErr.ExitCode()
			case err != nil:
				t.Fatal(err)
			}
			if strings.Contains(stdout.String()+stderr.String(), writerToken) {
				t.Error("the API token appears in the output")
			}
			var rep reconciler.Report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("report is not JSON: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			return rep
		})
		return r, code
	}

	r, code := once("--once interrupted by SIGTERM", 8)
	if code != reconciler.ExitError {
		t.Errorf("exit code %d after SIGTERM, want %d", code, reconciler.ExitError)
	}
	if !strings.Contains(r.report.Error, "interrupted") {
		t.Errorf("report error %q does not say the run was interrupted", r.report.Error)
	}
	if n := len(r.mutations); n < 8 || n >= 50 {
		t.Errorf("%d mutations before the process ended, want at least 8 and not all 50", n)
	}
	for i := range convergeRuns {
		r, code := once(fmt.Sprintf("--once %d after the interruption", i+1), 0)
		if code != reconciler.ExitOK {
			t.Errorf("%s: exit code %d, want 0\n%s", r.name, code, r.report.Error)
		}
		if len(r.mutations) == 0 {
			break
		}
	}
	w.verify(true)
}
