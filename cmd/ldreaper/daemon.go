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

	"github.com/ldreaper/ldreaper/leader"
	"github.com/ldreaper/ldreaper/reconciler"
)

// daemon is the long-running mode: a schedule loop that reconciles while this
// replica holds the leader lock, plus the HTTP endpoints.
type daemon struct {
	app      *app
	sched    *reconciler.Schedule
	metrics  *metrics
	log      zerolog.Logger
	now      func() time.Time
	trigger  chan struct{}
	token    string // POST /reconcile bearer token; empty disables it
	shutdown time.Duration

	mu sync.Mutex
	st daemonState
}

// daemonState is what /status, /readyz and /livez report.
type daemonState struct {
	Identity       string                   `json:"identity"`
	SingleInstance bool                     `json:"single_instance"`
	Leader         bool                     `json:"leader"`
	Generation     int64                    `json:"generation,omitempty"`
	LeaderSince    time.Time                `json:"leader_since,omitzero"`
	Holder         string                   `json:"holder,omitempty"`
	HolderGen      int64                    `json:"holder_generation,omitempty"`
	RedisError     string                   `json:"redis_error,omitempty"`
	Schedule       string                   `json:"schedule"`
	NextRun        time.Time                `json:"next_run,omitzero"`
	Running        bool                     `json:"running"`
	RunStarted     time.Time                `json:"run_started,omitzero"`
	LastSuccess    time.Time                `json:"last_success,omitzero"`
	LastRun        *lastRun                 `json:"last_run,omitempty"`
	Guards         []reconciler.GuardReport `json:"guards,omitempty"`
	Heartbeat      time.Time                `json:"heartbeat"`
	Started        time.Time                `json:"started"`
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
	d := &daemon{
		app: a, sched: sched, metrics: m, log: log, now: time.Now,
		trigger: make(chan struct{}, 1), shutdown: cfg.Reconcile.ShutdownTimeout,
	}
	if env := cfg.HTTP.ReconcileTokenEnv; env != "" {
		d.token = strings.TrimSpace(getenv(env))
		if d.token == "" {
			log.Error().Str("env", env).Msg("http.reconcile_token_env names an unset variable")
			return 1
		}
	}
	d.st = daemonState{Identity: identity(), SingleInstance: a.elector == nil, Schedule: sched.String(), Started: d.now(), Heartbeat: d.now()}

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
	log.Info().Str("listen", ln.Addr().String()).Str("schedule", sched.String()).Str("identity", d.st.Identity).
		Str("version", version).Msg("ldreaper daemon started")

	if a.elector == nil {
		log.Warn().Msg("single instance: no [redis] configured, so no leader election; run one replica only")
		d.setLeader(nil)
		_ = d.sched.Loop(ctx, d.now, d.trigger, func(context.Context) { d.runOnce(ctx, nil) }, d.setNextRun)
	} else {
		d.electionLoop(ctx, cfg.Redis.LockTTL/3)
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	log.Info().Msg("ldreaper daemon stopped")
	return 0
}

// electionLoop alternates between follower (try to take the lock every
// retry) and leader (run the schedule until the lease is lost or ctx ends).
func (d *daemon) electionLoop(ctx context.Context, retry time.Duration) {
	for {
		d.beat()
		lease, err := d.app.elector.TryAcquire(ctx)
		switch {
		case err == nil:
			d.lead(ctx, lease)
		case errors.Is(err, leader.ErrNotLeader):
			holder, gen, herr := d.app.elector.Holder(ctx)
			d.setFollower(holder, gen, herr)
		case ctx.Err() != nil:
		default:
			d.log.Warn().Err(err).Msg("leader election failed; redis unreachable?")
			d.setFollower("", 0, err)
		}
		if ctx.Err() != nil {
			return
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (d *daemon) lead(ctx context.Context, lease *leader.Lease) {
	d.setLeader(lease)
	leaseCtx, cancel := lease.Context(ctx)
	_ = d.sched.Loop(leaseCtx, d.now, d.trigger, func(context.Context) { d.runOnce(ctx, lease) }, d.setNextRun)
	cancel()
	if err := lease.Release(context.WithoutCancel(ctx)); err != nil {
		d.log.Warn().Err(err).Msg("release leader lock")
	}
	d.setFollower("", 0, nil)
}

// runOnce runs one reconciliation. Its context is not the signal context:
// on SIGTERM the run gets the shutdown timeout to finish before it is
// cancelled, while a lost lease cancels it at once.
func (d *daemon) runOnce(ctx context.Context, lease *leader.Lease) {
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	var leaseDone <-chan struct{}
	opts := reconciler.RunOptions{}
	if lease != nil {
		leaseDone = lease.Done()
		opts.Lease, opts.Generation = lease, lease.Generation()
	}
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-finished:
			return
		case <-leaseDone:
			cancel(errors.New("leader lease lost"))
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(d.shutdown)
		defer t.Stop()
		select {
		case <-finished:
		case <-leaseDone:
			cancel(errors.New("leader lease lost"))
		case <-t.C:
			cancel(errors.New("shutdown timeout reached"))
		}
	}()

	d.mu.Lock()
	d.st.Running, d.st.RunStarted, d.st.Heartbeat = true, d.now(), d.now()
	d.mu.Unlock()
	rep, err := d.app.rec.RunOnce(runCtx, opts)
	d.metrics.observeRun(rep, d.app.ld.RateLimits())
	result := map[int]string{reconciler.ExitOK: "success", reconciler.ExitGuarded: "guarded"}[rep.ExitCode(false)]
	if result == "" {
		result = "error"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Running, d.st.Heartbeat = false, d.now()
	d.st.LastRun = &lastRun{RunID: rep.RunID, Generation: rep.Generation, StartedAt: rep.StartedAt, FinishedAt: rep.FinishedAt, Summary: rep.Summary, Error: rep.Error, Result: result}
	d.st.Guards = rep.Guards
	if err == nil && result != "error" {
		d.st.LastSuccess = d.now()
	}
}

func (d *daemon) setLeader(lease *leader.Lease) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Leader, d.st.LeaderSince, d.st.RedisError, d.st.Heartbeat = true, d.now(), "", d.now()
	d.st.Holder, d.st.HolderGen = d.st.Identity, 0
	d.metrics.leader.Set(1)
	if lease != nil {
		d.st.Generation, d.st.HolderGen = lease.Generation(), lease.Generation()
		d.metrics.generation.Set(float64(lease.Generation()))
		d.log.Info().Int64("generation", lease.Generation()).Msg("became leader")
	}
}

func (d *daemon) setFollower(holder string, gen int64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Leader, d.st.NextRun, d.st.Heartbeat = false, time.Time{}, d.now()
	d.st.Holder, d.st.HolderGen = holder, gen
	d.st.RedisError = ""
	if err != nil {
		d.st.RedisError = err.Error()
	}
	d.metrics.leader.Set(0)
}

func (d *daemon) setNextRun(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.NextRun, d.st.Heartbeat = t, d.now()
}

func (d *daemon) beat() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Heartbeat = d.now()
}

func (d *daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", d.livez)
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.HandleFunc("GET /status", d.status)
	mux.HandleFunc("POST /reconcile", d.reconcileNow)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// livez fails when the loop has stopped making progress: no heartbeat for
// several periods while idle, or one run going on far longer than any run
// should (a hung call that timeouts did not catch).
func (d *daemon) livez(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	st := d.st
	d.mu.Unlock()
	now := d.now()
	period := d.sched.Period(now)
	idleLimit := 3*period + time.Minute
	switch {
	case st.Running && now.Sub(st.RunStarted) > d.app.cfg.Reconcile.RunTimeout+time.Minute:
		http.Error(w, fmt.Sprintf("run started %s ago and has not finished", now.Sub(st.RunStarted).Round(time.Second)), http.StatusServiceUnavailable)
	case !st.Running && now.Sub(st.Heartbeat) > idleLimit:
		http.Error(w, fmt.Sprintf("loop stalled: last heartbeat %s ago", now.Sub(st.Heartbeat).Round(time.Second)), http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}

// readyz: a leader is ready while its last successful run (or, before the
// first one, its election) is younger than ready_periods schedule periods;
// a follower is ready while Redis answers.
func (d *daemon) readyz(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	st := d.st
	d.mu.Unlock()
	now := d.now()
	if st.RedisError != "" {
		http.Error(w, "redis unreachable: "+st.RedisError, http.StatusServiceUnavailable)
		return
	}
	if !st.Leader {
		fmt.Fprintln(w, "ok: follower")
		return
	}
	ref := st.LastSuccess
	if ref.IsZero() || ref.Before(st.LeaderSince) {
		if st.LastSuccess.IsZero() {
			ref = st.LeaderSince
		}
	}
	limit := time.Duration(d.app.cfg.HTTP.ReadyPeriods) * d.sched.Period(now)
	if age := now.Sub(ref); age > limit {
		http.Error(w, fmt.Sprintf("no successful run for %s (limit %s)", age.Round(time.Second), limit), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok: leader")
}

func (d *daemon) status(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	st := d.st
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}

func (d *daemon) reconcileNow(w http.ResponseWriter, r *http.Request) {
	if d.token == "" {
		http.Error(w, "POST /reconcile is disabled: set [http] reconcile_token_env", http.StatusNotFound)
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(d.token)) != 1 {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	d.mu.Lock()
	isLeader := d.st.Leader
	d.mu.Unlock()
	if !isLeader {
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
