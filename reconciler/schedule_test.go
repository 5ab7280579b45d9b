package reconciler

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

var acceptedSpecs = []string{
	"*/5 * * * *",
	"*/30 * * * * *",
	"@every 2m",
	"@every 10s",
	"@hourly",
	"CRON_TZ=Europe/Berlin 30 2 * * *",
}

var rejectedSpecs = []string{
	"@every 1s",
	"@every 0s",
	"@every -5m",
	"* * * * * *",
	"0,5 * * * * *", // regular once a minute, but two runs 5s apart
	"every five minutes",
	"",
	"* * * *",
	"61 * * * *",
	"0 0 30 2 *", // never fires
	"CRON_TZ=Mars/Olympus 0 * * * *",
	// These panic inside robfig/cron.
	"CRON_TZ=UTC",
	"TZ=0",
}

func TestParseSchedule(t *testing.T) {
	for _, spec := range acceptedSpecs {
		t.Run("accepts "+spec, func(t *testing.T) {
			s, err := ParseSchedule(spec, 0)
			if err != nil {
				t.Fatalf("ParseSchedule(%q): %v", spec, err)
			}
			if s.String() != spec {
				t.Errorf("String() = %q, want %q", s.String(), spec)
			}
			if err := ValidateSchedule(spec); err != nil {
				t.Errorf("ValidateSchedule(%q): %v", spec, err)
			}
		})
	}
	for _, spec := range rejectedSpecs {
		t.Run("rejects "+spec, func(t *testing.T) {
			s, err := ParseSchedule(spec, 0)
			if err == nil {
				t.Fatalf("ParseSchedule(%q) = %v, want an error", spec, s)
			}
			// The user must see which value of their config is wrong.
			if !strings.Contains(err.Error(), strconv.Quote(spec)) {
				t.Errorf("error %q does not quote the spec", err)
			}
			if ValidateSchedule(spec) == nil {
				t.Errorf("ValidateSchedule(%q) accepted what ParseSchedule rejects", spec)
			}
		})
	}
}

func TestParseScheduleRejectsNegativeJitter(t *testing.T) {
	if _, err := ParseSchedule("@every 2m", -time.Second); err == nil {
		t.Error("negative jitter accepted")
	}
}

func TestScheduleNextAndPeriod(t *testing.T) {
	at := time.Date(2026, 3, 20, 12, 1, 0, 0, time.UTC)
	summer := time.Date(2026, 7, 20, 12, 1, 0, 0, time.UTC)
	tests := []struct {
		spec       string
		at         time.Time
		wantNext   time.Time
		wantPeriod time.Duration
	}{
		{"*/5 * * * *", at, time.Date(2026, 3, 20, 12, 5, 0, 0, time.UTC), 5 * time.Minute},
		{"*/30 * * * * *", at, time.Date(2026, 3, 20, 12, 1, 30, 0, time.UTC), 30 * time.Second},
		{"@hourly", at, time.Date(2026, 3, 20, 13, 0, 0, 0, time.UTC), time.Hour},
		{"@every 2m", at, at.Add(2 * time.Minute), 2 * time.Minute},
		// 02:30 in Berlin is 01:30 UTC in winter, 00:30 UTC in summer.
		{"CRON_TZ=Europe/Berlin 30 2 * * *", at, time.Date(2026, 3, 21, 1, 30, 0, 0, time.UTC), 24 * time.Hour},
		{"CRON_TZ=Europe/Berlin 30 2 * * *", summer, time.Date(2026, 7, 21, 0, 30, 0, 0, time.UTC), 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := ParseSchedule(tt.spec, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{s.Next(tt.at).UTC(), s.Period(tt.at)}
			if diff := cmp.Diff([]any{tt.wantNext, tt.wantPeriod}, got); diff != "" {
				t.Errorf("[Next Period] (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseSchedule: no spec may panic, and an accepted one never fires
// closer together than MinInterval, whenever one looks.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range append(append([]string{}, acceptedSpecs...), rejectedSpecs...) {
		f.Add(s)
	}
	f.Add("TZ=Asia/Tokyo 0 */15 * * * *")
	f.Add("@every 1h30m")
	f.Add("0 0 29 2 *")
	starts := []time.Time{
		time.Date(2031, 2, 28, 23, 59, 0, 0, time.UTC),
		time.Date(2030, 10, 27, 0, 0, 0, 0, time.UTC), // Europe's autumn DST change
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSchedule(spec, 0)
		if err != nil {
			return
		}
		for _, start := range starts {
			prev := s.Next(start)
			for range 50 {
				next := s.Next(prev)
				if gap := next.Sub(prev); gap < MinInterval {
					t.Fatalf("accepted %q fires %s apart at %s", spec, gap, prev)
				}
				prev = next
			}
		}
	})
}

// loopRecorder records, in fake time since the bubble started, when each
// job started and what Loop said was next.
type loopRecorder struct {
	start    time.Time
	runs     []time.Duration
	nextRuns []time.Duration
}

func newLoopRecorder() *loopRecorder { return &loopRecorder{start: time.Now()} }

func (r *loopRecorder) job(d time.Duration) func(context.Context) {
	return func(ctx context.Context) {
		r.runs = append(r.runs, time.Since(r.start))
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
}

func (r *loopRecorder) nextRun(at time.Time) { r.nextRuns = append(r.nextRuns, at.Sub(r.start)) }

func mustSchedule(t *testing.T, spec string, jitter time.Duration) *Schedule {
	t.Helper()
	s, err := ParseSchedule(spec, jitter)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runLoop runs Loop while run runs, then cancels it and returns its error.
// A Loop that spins without letting fake time pass would hang the test, so
// it is cancelled after far more runs than any test expects.
func runLoop(s *Schedule, now func() time.Time, trigger <-chan struct{}, job func(context.Context), nextRun func(time.Time), run func()) error {
	ctx, cancel := context.WithCancel(context.Background())
	var runs atomic.Int32
	bounded := func(ctx context.Context) {
		if runs.Add(1) > 1000 {
			cancel()
			return
		}
		job(ctx)
	}
	done := make(chan error)
	go func() { done <- s.Loop(ctx, now, trigger, bounded, nextRun) }()
	run()
	cancel()
	return <-done
}

// sendTrigger fails the test instead of hanging when Loop does not take a
// trigger within wait.
func sendTrigger(t *testing.T, trigger chan<- struct{}, wait time.Duration) {
	t.Helper()
	select {
	case trigger <- struct{}{}:
	case <-time.After(wait):
		t.Errorf("Loop did not take the trigger within %s", wait)
	}
}

func TestLoopDelaysALongRunInsteadOfStacking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble's clock starts on a whole hour, so */5 fires on :00, :05, …
		rec := newLoopRecorder()
		err := runLoop(mustSchedule(t, "*/5 * * * *", 0), time.Now, nil, rec.job(7*time.Minute), rec.nextRun,
			func() { time.Sleep(59 * time.Minute) })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Loop returned %v, want context.Canceled", err)
		}
		// A 7-minute run on a 5-minute schedule runs every 10 minutes: the
		// firing it overran is skipped, not queued.
		want := []time.Duration{0, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 40 * time.Minute, 50 * time.Minute}
		if diff := cmp.Diff(want, rec.runs); diff != "" {
			t.Errorf("run starts over an hour (-want +got):\n%s", diff)
		}
	})
}

func TestLoopNeverOverlapsRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var inFlight, maxInFlight atomic.Int32
		job := func(ctx context.Context) {
			n := inFlight.Add(1)
			if n > maxInFlight.Load() {
				maxInFlight.Store(n)
			}
			defer inFlight.Add(-1)
			select {
			case <-time.After(90 * time.Second):
			case <-ctx.Done():
			}
		}
		trigger := make(chan struct{})
		err := runLoop(mustSchedule(t, "@every 1m", 0), time.Now, trigger, job, nil, func() {
			// Triggers arrive while runs are in progress; each waits its turn.
			for range 5 {
				time.Sleep(20 * time.Second)
				sendTrigger(t, trigger, 5*time.Minute)
			}
			time.Sleep(10 * time.Minute)
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Loop returned %v, want context.Canceled", err)
		}
		if got := maxInFlight.Load(); got != 1 {
			t.Errorf("%d runs overlapped", got)
		}
	})
}

func TestLoopRunsAtOnceOnTrigger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newLoopRecorder()
		trigger := make(chan struct{})
		runLoop(mustSchedule(t, "@hourly", 0), time.Now, trigger, rec.job(time.Second), rec.nextRun, func() {
			time.Sleep(10 * time.Minute)
			sendTrigger(t, trigger, time.Second)
			time.Sleep(40 * time.Minute)
		})
		if diff := cmp.Diff([]time.Duration{0, 10 * time.Minute}, rec.runs); diff != "" {
			t.Errorf("run starts (-want +got):\n%s", diff)
		}
		// The triggered run does not move the hourly firing.
		if diff := cmp.Diff([]time.Duration{time.Hour, time.Hour}, rec.nextRuns); diff != "" {
			t.Errorf("next runs (-want +got):\n%s", diff)
		}
	})
}

func TestLoopTellsTheNextRun(t *testing.T) {
	tests := []struct {
		name   string
		jitter time.Duration
	}{
		{name: "no jitter"},
		{name: "with jitter", jitter: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newLoopRecorder()
				runLoop(mustSchedule(t, "*/5 * * * *", tt.jitter), time.Now, nil, rec.job(0), rec.nextRun, func() {
					time.Sleep(16 * time.Minute)
				})
				firings := []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 20 * time.Minute}
				if len(rec.nextRuns) != len(firings) || len(rec.runs) != len(firings) {
					t.Fatalf("runs %v, next runs %v; want %d of each", rec.runs, rec.nextRuns, len(firings))
				}
				for i, at := range rec.nextRuns {
					// Jitter is drawn from [0, jitter).
					if off := at - firings[i]; off < 0 || off > max(tt.jitter-1, 0) {
						t.Errorf("next run %d at +%s, want in [+%s, +%s)", i, at, firings[i], firings[i]+tt.jitter)
					}
					// The run told about is the run that happens.
					if i+1 < len(rec.runs) && rec.runs[i+1] != at {
						t.Errorf("run %d started at +%s, announced for +%s", i+1, rec.runs[i+1], at)
					}
				}
			})
		})
	}
}

// TestLoopUsesTheInjectedClock: a clock two minutes ahead of the timers
// makes */5 fire three timer-minutes after the start, as that clock reads
// 00:05 then.
func TestLoopUsesTheInjectedClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ahead := func() time.Time { return time.Now().Add(2 * time.Minute) }
		rec := newLoopRecorder()
		runLoop(mustSchedule(t, "*/5 * * * *", 0), ahead, nil, rec.job(0), rec.nextRun, func() { time.Sleep(4 * time.Minute) })
		if diff := cmp.Diff([]time.Duration{0, 3 * time.Minute}, rec.runs); diff != "" {
			t.Errorf("run starts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]time.Duration{5 * time.Minute, 10 * time.Minute}, rec.nextRuns); diff != "" {
			t.Errorf("next runs by the injected clock (-want +got):\n%s", diff)
		}
	})
}

func TestLoopReturnsContextError(t *testing.T) {
	tests := []struct {
		name string
		// stop is called at +30s (during the first run) or at +5m (while
		// Loop waits for the next) and ends ctx if it has not ended yet.
		stop      func(ctx context.Context) (context.Context, context.CancelFunc)
		duringRun bool
		want      error
	}{
		{
			name: "cancelled while waiting",
			stop: context.WithCancel,
			want: context.Canceled,
		},
		{
			name: "cancelled with a cause during a run",
			stop: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancelCause(ctx)
				return ctx, func() { cancel(errLeaseLost) }
			},
			duringRun: true,
			want:      context.Canceled,
		},
		{
			name: "deadline while waiting",
			stop: func(ctx context.Context) (context.Context, context.CancelFunc) {
				// Expires at +2m, while Loop waits for the next hour.
				return context.WithTimeout(ctx, 2*time.Minute)
			},
			want: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, stop := tt.stop(t.Context())
				var runs atomic.Int32
				job := func(ctx context.Context) {
					runs.Add(1)
					select {
					case <-time.After(time.Minute):
					case <-ctx.Done():
					}
				}
				done := make(chan error)
				go func() { done <- mustSchedule(t, "@hourly", 0).Loop(ctx, time.Now, nil, job, nil) }()
				if tt.duringRun {
					time.Sleep(30 * time.Second)
				} else {
					time.Sleep(5 * time.Minute)
				}
				stop()
				if err := <-done; !errors.Is(err, tt.want) {
					t.Errorf("Loop returned %v, want %v", err, tt.want)
				}
				if got := runs.Load(); got != 1 {
					t.Errorf("%d runs, want 1", got)
				}
			})
		})
	}
}

func TestLoopStartsNoRunAfterContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var runs int
		err := mustSchedule(t, "@every 1m", 0).Loop(ctx, time.Now, nil, func(context.Context) { runs++ }, nil)
		if !errors.Is(err, context.Canceled) || runs != 0 {
			t.Errorf("Loop on an ended context: err %v, %d runs; want context.Canceled and none", err, runs)
		}
	})
}
