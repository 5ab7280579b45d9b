package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/leader"
	"github.com/ldreaper/ldreaper/reconciler"
)

// Causes of a cancelled run, in the run's error and log.
var (
	errShutdownTimeout = errors.New("shutdown timeout reached")
	errRunTimeout      = errors.New("run timeout reached")
)

// livezSlack is how far past its own bound a run, or past three schedule
// periods an idle loop, may go before /livez calls the process stuck. It
// keeps a slow but working LD call from getting the pod restarted.
const livezSlack = time.Minute

// runner runs one reconciliation; *reconciler.Reconciler is one.
type runner interface {
	RunOnce(ctx context.Context, opts reconciler.RunOptions) (reconciler.Report, error)
}

// elector hands out the leader lease; leaderElector adapts *leader.Elector.
type elector interface {
	TryAcquire(ctx context.Context) (lease, error)
	Holder(ctx context.Context) (identity string, generation int64, err error)
}

// lease is the part of *leader.Lease the daemon uses.
type lease interface {
	Generation() int64
	Done() <-chan struct{}
	Check(ctx context.Context) error
	Release(ctx context.Context) error
}

// leaderElector returns *leader.Lease as the lease interface, so fakes can
// stand in for Redis in unit tests.
type leaderElector struct{ *leader.Elector }

func (e leaderElector) TryAcquire(ctx context.Context) (lease, error) {
	l, err := e.Elector.TryAcquire(ctx)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// daemonOptions are what a daemon is built from.
type daemonOptions struct {
	Runner runner
	// Elector is nil for a single instance: no election, always leader.
	Elector    elector
	RateLimits func() ldclient.RateLimitState
	Schedule   *reconciler.Schedule
	Metrics    *metrics
	Log        zerolog.Logger
	Now        func() time.Time
	Identity   string
	// ReconcileToken is the bearer token of POST /reconcile; empty disables it.
	ReconcileToken string
	// RetryEvery is how often a follower tries to take the lease.
	RetryEvery time.Duration
	// LockTTL bounds the wait for a release: after it the lock expires anyway.
	LockTTL         time.Duration
	RunTimeout      time.Duration
	ShutdownTimeout time.Duration
	ReadyPeriods    int
}

// daemon is the long-running mode: a schedule loop that reconciles while this
// replica holds the leader lock, plus the HTTP endpoints.
type daemon struct {
	opts    daemonOptions
	trigger chan struct{}

	mu sync.Mutex
	st daemonState
}

// daemonState is what /status, /readyz and /livez report.
type daemonState struct {
	Identity       string    `json:"identity"`
	SingleInstance bool      `json:"single_instance"`
	Leader         bool      `json:"leader"`
	Generation     int64     `json:"generation,omitempty"`
	LeaderSince    time.Time `json:"leader_since,omitzero"`
	// Holder and HolderGeneration are who leads as far as this replica
	// knows, and the last generation Redis issued.
	Holder           string                   `json:"holder,omitempty"`
	HolderGeneration int64                    `json:"holder_generation,omitempty"`
	RedisError       string                   `json:"redis_error,omitempty"`
	Schedule         string                   `json:"schedule"`
	NextRun          time.Time                `json:"next_run,omitzero"`
	Running          bool                     `json:"running"`
	RunStarted       time.Time                `json:"run_started,omitzero"`
	LastSuccess      time.Time                `json:"last_success,omitzero"`
	LastRun          *lastRun                 `json:"last_run,omitempty"`
	Guards           []reconciler.GuardReport `json:"guards,omitempty"`
	Heartbeat        time.Time                `json:"heartbeat"`
	Started          time.Time                `json:"started"`
}

type lastRun struct {
	RunID      string             `json:"run_id"`
	Generation int64              `json:"generation,omitempty"`
	StartedAt  time.Time          `json:"started_at"`
	FinishedAt time.Time          `json:"finished_at"`
	Summary    reconciler.Summary `json:"summary"`
	Error      string             `json:"error,omitempty"`
	Result     string             `json:"result"`
}

func newDaemon(o daemonOptions) *daemon {
	if o.Now == nil {
		o.Now = time.Now
	}
	now := o.Now()
	return &daemon{
		opts:    o,
		trigger: make(chan struct{}, 1),
		st: daemonState{
			Identity: o.Identity, SingleInstance: o.Elector == nil, Schedule: o.Schedule.String(),
			Started: now, Heartbeat: now,
		},
	}
}

// runDaemon wires the daemon from cfg, serves HTTP and reconciles until ctx
// ends (SIGTERM), then lets the current run finish within shutdown_timeout,
// releases the lock and returns 0.
func runDaemon(ctx context.Context, cfg Config, getenv func(string) string, log zerolog.Logger) int {
	m := newMetrics()
	token, err := cfg.token(getenv)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return 1
	}
	a, err := buildWithToken(cfg, token, getenv, log, nil, m.observeRequest)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return 1
	}
	defer a.close()
	sched, err := reconciler.ParseSchedule(cfg.Reconcile.Schedule, cfg.Reconcile.Jitter)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		return 1
	}
	o := daemonOptions{
		Runner: a.rec, RateLimits: a.ld.RateLimits, Schedule: sched, Metrics: m, Log: log,
		Identity: identity(), RunTimeout: cfg.Reconcile.RunTimeout,
		ShutdownTimeout: cfg.Reconcile.ShutdownTimeout, ReadyPeriods: cfg.HTTP.ReadyPeriods,
	}
	if a.elector != nil {
		o.Elector = leaderElector{a.elector}
		o.RetryEvery, o.LockTTL = cfg.Redis.LockTTL/3, cfg.Redis.LockTTL
	}
	if env := cfg.HTTP.ReconcileTokenEnv; env != "" {
		o.ReconcileToken = strings.TrimSpace(getenv(env))
		if o.ReconcileToken == "" {
			log.Error().Str("env", env).Msg("http.reconcile_token_env names an unset variable")
			return 1
		}
	}
	d := newDaemon(o)

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		log.Error().Err(err).Str("listen", cfg.HTTP.Listen).Msg("start-up failed")
		return 1
	}
	srv := &http.Server{Handler: d.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server stopped")
		}
	}()
	log.Info().Str("listen", ln.Addr().String()).Str("schedule", sched.String()).Str("identity", o.Identity).
		Str("version", version).Msg("ldreaper daemon started")
	if a.elector == nil {
		log.Warn().Msg("single instance: no [redis] configured, so no leader election; run one replica only")
	}

	d.run(ctx)

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	log.Info().Msg("ldreaper daemon stopped")
	return 0
}

// run reconciles until ctx ends: on the schedule as the single instance, or
// while leader when there is an elector.
func (d *daemon) run(ctx context.Context) {
	if d.opts.Elector == nil {
		d.setLeader(0)
		_ = d.opts.Schedule.Loop(ctx, d.opts.Now, d.trigger, func(context.Context) { d.runOnce(ctx, nil) }, d.setNextRun)
		return
	}
	d.electionLoop(ctx)
}

// electionLoop alternates between follower (try to take the lock every
// RetryEvery) and leader (run the schedule until the lease is lost or ctx
// ends).
func (d *daemon) electionLoop(ctx context.Context) {
	for {
		d.beat()
		l, err := d.opts.Elector.TryAcquire(ctx)
		switch {
		case err == nil:
			d.lead(ctx, l)
			if ctx.Err() == nil {
				// The lease was lost: say at once who leads now, or that
				// Redis is unreachable, rather than after the next retry.
				d.observeHolder(ctx)
			}
		case errors.Is(err, leader.ErrNotLeader):
			d.observeHolder(ctx)
		case ctx.Err() != nil:
		default:
			d.opts.Log.Warn().Err(err).Msg("take leader lease; is redis reachable?")
			d.setFollower("", 0, err)
		}
		t := time.NewTimer(d.opts.RetryEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (d *daemon) observeHolder(ctx context.Context) {
	holder, gen, err := d.opts.Elector.Holder(ctx)
	if err != nil && ctx.Err() == nil {
		d.opts.Log.Warn().Err(err).Msg("read leader lease holder; is redis reachable?")
	}
	d.setFollower(holder, gen, err)
}

// lead runs the schedule under l until l is lost or ctx ends, then releases
// the lock so a follower takes over without waiting for the TTL.
func (d *daemon) lead(ctx context.Context, l lease) {
	// A trigger left from an earlier term would only repeat the first run.
	select {
	case <-d.trigger:
	default:
	}
	d.setLeader(l.Generation())
	leaseCtx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.Done():
			cancel(leader.ErrLeaseLost)
		case <-leaseCtx.Done():
		}
	}()
	_ = d.opts.Schedule.Loop(leaseCtx, d.opts.Now, d.trigger, func(context.Context) { d.runOnce(ctx, l) }, d.setNextRun)
	cancel(nil)
	releaseCtx, cancelRelease := context.WithTimeout(context.WithoutCancel(ctx), d.opts.LockTTL)
	defer cancelRelease()
	if err := l.Release(releaseCtx); err != nil {
		d.opts.Log.Warn().Err(err).Int64("generation", l.Generation()).Msg("release leader lease; it expires by itself")
	}
	d.setFollower("", 0, nil)
}

// runOnce runs one reconciliation. Its context is not the signal context:
// after SIGTERM the run gets shutdown_timeout to finish before it is
// cancelled, while a lost lease cancels it at once.
func (d *daemon) runOnce(ctx context.Context, l lease) {
	if ctx.Err() != nil {
		return // shutting down: start nothing new
	}
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	runCtx, cancelTimeout := context.WithTimeoutCause(runCtx, d.opts.RunTimeout, errRunTimeout)
	defer cancelTimeout()
	var opts reconciler.RunOptions
	var leaseDone <-chan struct{}
	if l != nil {
		leaseDone = l.Done()
		opts.Lease, opts.Generation = l, l.Generation()
	}
	finished := make(chan struct{})
	defer close(finished)
	go d.cancelRunWhen(ctx, leaseDone, finished, cancel)

	started := d.opts.Now()
	d.mu.Lock()
	d.st.Running, d.st.RunStarted, d.st.Heartbeat = true, started, started
	d.mu.Unlock()

	rep, err := d.opts.Runner.RunOnce(runCtx, opts)
	d.opts.Metrics.observeRun(rep, d.rateLimits())
	result := runResult(rep)

	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Running, d.st.Heartbeat = false, now
	d.st.LastRun = &lastRun{
		RunID: rep.RunID, Generation: rep.Generation, StartedAt: rep.StartedAt, FinishedAt: rep.FinishedAt,
		Summary: rep.Summary, Error: rep.Error, Result: result,
	}
	d.st.Guards = rep.Guards
	if err == nil && result != resultError {
		d.st.LastSuccess = now
	}
}

// cancelRunWhen cancels a run when the lease is lost, or shutdown_timeout
// after ctx ends, whichever comes first; it returns when the run finishes.
func (d *daemon) cancelRunWhen(ctx context.Context, leaseDone <-chan struct{}, finished <-chan struct{}, cancel context.CancelCauseFunc) {
	select {
	case <-finished:
		return
	case <-leaseDone:
		cancel(leader.ErrLeaseLost)
		return
	case <-ctx.Done():
	}
	d.opts.Log.Info().Dur("shutdown_timeout", d.opts.ShutdownTimeout).Msg("shutting down; letting the current run finish")
	t := time.NewTimer(d.opts.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-finished:
	case <-leaseDone:
		cancel(leader.ErrLeaseLost)
	case <-t.C:
		cancel(errShutdownTimeout)
	}
}

func (d *daemon) rateLimits() ldclient.RateLimitState {
	if d.opts.RateLimits == nil {
		return ldclient.RateLimitState{Global: ldclient.RateLimitWindow{Remaining: -1}}
	}
	return d.opts.RateLimits()
}

func (d *daemon) setLeader(generation int64) {
	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Leader, d.st.LeaderSince, d.st.RedisError, d.st.Heartbeat = true, now, "", now
	d.st.Generation, d.st.Holder, d.st.HolderGeneration = generation, d.st.Identity, generation
	d.opts.Metrics.leader.Set(1)
	if generation != 0 {
		d.opts.Metrics.generation.Set(float64(generation))
		d.opts.Log.Info().Int64("generation", generation).Msg("became leader")
	}
}

func (d *daemon) setFollower(holder string, generation int64, redisErr error) {
	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Leader, d.st.Generation, d.st.LeaderSince, d.st.NextRun, d.st.Heartbeat = false, 0, time.Time{}, time.Time{}, now
	d.st.Holder, d.st.HolderGeneration, d.st.RedisError = holder, generation, ""
	if redisErr != nil {
		d.st.RedisError = redisErr.Error()
	}
	d.opts.Metrics.leader.Set(0)
}

func (d *daemon) setNextRun(t time.Time) {
	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.NextRun, d.st.Heartbeat = t, now
}

func (d *daemon) beat() {
	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Heartbeat = now
}

func (d *daemon) state() daemonState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

func (d *daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", d.livez)
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.HandleFunc("GET /status", d.status)
	mux.HandleFunc("POST /reconcile", d.reconcileNow)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.opts.Metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// livez fails when the loop has stopped making progress: a run going on
// well past run_timeout (a hung call that the timeout did not stop), or no
// heartbeat for several periods while idle (a loop stuck outside a run).
func (d *daemon) livez(w http.ResponseWriter, _ *http.Request) {
	st := d.state()
	now := d.opts.Now()
	idleLimit := 3*d.opts.Schedule.Period(now) + livezSlack
	switch {
	case st.Running && now.Sub(st.RunStarted) > d.opts.RunTimeout+livezSlack:
		http.Error(w, fmt.Sprintf("run started %s ago and has not finished", now.Sub(st.RunStarted).Round(time.Second)), http.StatusServiceUnavailable)
	case !st.Running && now.Sub(st.Heartbeat) > idleLimit:
		http.Error(w, fmt.Sprintf("loop stalled: last heartbeat %s ago", now.Sub(st.Heartbeat).Round(time.Second)), http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}

// readyz: a leader is ready while its last successful run, or its election
// if that is later, is younger than ready_periods schedule periods; a
// follower is ready while Redis answers.
func (d *daemon) readyz(w http.ResponseWriter, _ *http.Request) {
	st := d.state()
	now := d.opts.Now()
	if st.RedisError != "" {
		http.Error(w, "redis unreachable: "+st.RedisError, http.StatusServiceUnavailable)
		return
	}
	if !st.Leader {
		fmt.Fprintln(w, "ok: follower")
		return
	}
	// A newly elected leader gets the same grace as after a success: its
	// last success may date from an earlier term.
	ref := st.LastSuccess
	if st.LeaderSince.After(ref) {
		ref = st.LeaderSince
	}
	limit := time.Duration(d.opts.ReadyPeriods) * d.opts.Schedule.Period(now)
	if age := now.Sub(ref); age > limit {
		http.Error(w, fmt.Sprintf("no successful run for %s (limit %s)", age.Round(time.Second), limit), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok: leader")
}

func (d *daemon) status(w http.ResponseWriter, _ *http.Request) {
	st := d.state()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}

// reconcileNow queues a run on the leader. Followers answer 409 rather than
// forwarding: the caller can find the leader in /status.
func (d *daemon) reconcileNow(w http.ResponseWriter, r *http.Request) {
	if d.opts.ReconcileToken == "" {
		http.Error(w, "POST /reconcile is disabled: set [http] reconcile_token_env", http.StatusNotFound)
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(d.opts.ReconcileToken)) != 1 {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if !d.state().Leader {
		http.Error(w, "not the leader; send it to the leader (see /status)", http.StatusConflict)
		return
	}
	select {
	case d.trigger <- struct{}{}:
	default: // a run is already queued
	}
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintln(w, "reconcile queued")
}
