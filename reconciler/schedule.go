package reconciler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/robfig/cron/v3"
)

// MinInterval is the shortest schedule period accepted. robfig/cron happily
// accepts "@every 0s" and "@every -5m" (run every second); against a shared
// LD account that would be a self-inflicted rate-limit outage.
const MinInterval = 10 * time.Second

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Schedule says when runs start.
type Schedule struct {
	spec   string
	sched  cron.Schedule
	jitter time.Duration
}

// ParseSchedule parses a cron spec: 5 fields, an optional leading seconds
// field, descriptors such as "@every 2m" or "@hourly", and an optional
// CRON_TZ= prefix. Some malformed specs panic inside the parser; they are
// reported as errors.
func ParseSchedule(spec string, jitter time.Duration) (s *Schedule, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("invalid schedule %q: %v", spec, p)
		}
	}()
	sched, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid schedule %q: %w", spec, err)
	}
	// Check the gaps over a long window: cron specs can be irregular (e.g.
	// "0,5 * * * * *" fires 5s apart once a minute).
	prev := sched.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for range 200 {
		next := sched.Next(prev)
		if prev.IsZero() || next.IsZero() {
			return nil, fmt.Errorf("invalid schedule %q: it never fires", spec)
		}
		if gap := next.Sub(prev); gap < MinInterval {
			return nil, fmt.Errorf("schedule %q fires %s apart; the minimum is %s", spec, gap, MinInterval)
		}
		prev = next
	}
	if jitter < 0 {
		return nil, fmt.Errorf("negative jitter %s", jitter)
	}
	return &Schedule{spec: spec, sched: sched, jitter: jitter}, nil
}

// ValidateSchedule reports whether spec would be accepted.
func ValidateSchedule(spec string) error {
	_, err := ParseSchedule(spec, 0)
	return err
}

// String returns the spec.
func (s *Schedule) String() string { return s.spec }

// Next is the first firing strictly after t, without jitter.
func (s *Schedule) Next(t time.Time) time.Time { return s.sched.Next(t) }

// Period estimates the time between two firings after t; readiness uses it.
func (s *Schedule) Period(t time.Time) time.Duration {
	a := s.sched.Next(t)
	return s.sched.Next(a).Sub(a)
}

// Loop calls job at every firing until ctx ends, and also whenever trigger
// delivers (POST /reconcile). Runs never overlap: the next firing is
// computed after a run returns, so a run longer than the period delays the
// next one instead of stacking. The first run starts at once. nextRun, when
// set, is told when the next run is due. Loop returns ctx's error and starts
// no run once ctx has ended.
func (s *Schedule) Loop(ctx context.Context, now func() time.Time, trigger <-chan struct{}, job func(context.Context), nextRun func(time.Time)) error {
	if now == nil {
		now = time.Now
	}
	for {
		// The select below picks at random when the timer and ctx are both
		// ready, and a job may run under a context of its own rather than
		// ctx, so a run could start after ctx ended without this check.
		if err := ctx.Err(); err != nil {
			return err
		}
		job(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		at := s.Next(now())
		if s.jitter > 0 {
			at = at.Add(rand.N(s.jitter))
		}
		if nextRun != nil {
			nextRun(at)
		}
		timer := time.NewTimer(at.Sub(now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-trigger:
			timer.Stop()
		case <-timer.C:
		}
	}
}
