// Package leader elects the one ldreaper replica that may mutate LaunchDarkly.
//
// The lease is a single Redis key taken with SET NX PX (through
// bsm/redislock) and kept alive by a watchdog that refreshes it every TTL/3.
// Every successful acquisition is stamped with a fencing generation that only
// grows, so logs and audit records show which leader did what.
//
// LaunchDarkly cannot check a fencing token, so (after Kleppmann) this is
// detection and damage limitation, not prevention: a paused leader can act
// after its lease expired. The package narrows that window from both ends:
//   - the lease counts as lost by the local clock once TTL-Margin has passed
//     since the last refresh Redis confirmed, before Redis can expire the key
//     and hand it to another replica;
//   - Lease.Context is cancelled the moment the lease is lost, aborting the
//     run's in-flight work;
//   - Lease.Check, called before each mutation, asks Redis that the key is
//     still ours with more than Margin to live.
package leader

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

var (
	// ErrNotLeader means another replica holds the lease.
	ErrNotLeader = errors.New("leader lease held by another replica")
	// ErrLeaseLost means the lease expired, was taken over or was released;
	// the holder must stop mutating.
	ErrLeaseLost = errors.New("leader lease lost")
)

// minTTL keeps the lease well above Redis's millisecond expiry resolution
// and leaves the watchdog room for a few refresh attempts.
const minTTL = 100 * time.Millisecond

// Options configure an Elector.
type Options struct {
	// Key is the Redis key of the lock, e.g. "ldreaper:leader".
	Key string
	// TTL is how long the lock lives without a refresh. The watchdog
	// refreshes every TTL/3, so two refreshes can fail before the lease is
	// given up.
	TTL time.Duration
	// Identity names this replica (pod name, hostname and pid) so followers
	// can report who leads.
	Identity string
	// GenerationKey holds the last fencing generation issued; default
	// Key+":generation". The acquisition script touches both keys, so on
	// Redis Cluster give them a common hash tag, e.g. "{ldreaper}:leader".
	GenerationKey string
	// Margin is the safety distance from expiry: Check fails when the lock
	// has less than Margin to live, and the lease counts as lost once
	// TTL-Margin has passed since the last confirmed refresh. It absorbs
	// clock drift, GC pauses and request latency. Default TTL/3; it must stay
	// below TTL/2 so a refresh is due well before the lease is given up.
	Margin time.Duration
	// Logger receives acquisition, loss and release events. The zero value
	// logs nothing.
	Logger zerolog.Logger
}

// redisClient is the part of go-redis the Elector uses: scripts for the
// lock and the generation, GET for Holder.
type redisClient interface {
	redis.Scripter
	Get(ctx context.Context, key string) *redis.StringCmd
}

// Elector acquires the leader lease for one replica.
type Elector struct {
	rdb    redisClient
	locker *redislock.Client
	// nextGenerationScript runs nextGenerationLua by its SHA after the first use.
	nextGenerationScript *redis.Script
	key                  string
	generationKey        string
	identity             string
	ttl                  time.Duration
	margin               time.Duration
	log                  zerolog.Logger
}

// New validates o and returns an Elector that uses rdb. It does not talk to
// Redis.
func New(rdb redis.UniversalClient, o Options) (*Elector, error) {
	if rdb == nil {
		return nil, errors.New("new leader elector: nil redis client")
	}
	if o.Key == "" {
		return nil, errors.New("new leader elector: empty lock key")
	}
	if o.Identity == "" {
		return nil, fmt.Errorf("new leader elector for key %q: empty identity", o.Key)
	}
	if o.TTL < minTTL {
		return nil, fmt.Errorf("new leader elector for key %q: ttl %s is below the minimum %s", o.Key, o.TTL, minTTL)
	}
	if o.GenerationKey == "" {
		o.GenerationKey = o.Key + ":generation"
	}
	if o.GenerationKey == o.Key {
		return nil, fmt.Errorf("new leader elector for key %q: generation key must differ from the lock key", o.Key)
	}
	if o.Margin == 0 {
		o.Margin = o.TTL / 3
	}
	if o.Margin < 0 || o.Margin >= o.TTL/2 {
		return nil, fmt.Errorf("new leader elector for key %q: margin %s must be positive and below ttl/2 (%s)", o.Key, o.Margin, o.TTL/2)
	}
	return &Elector{
		rdb:                  rdb,
		locker:               redislock.New(rdb),
		nextGenerationScript: redis.NewScript(nextGenerationLua),
		key:                  o.Key,
		generationKey:        o.GenerationKey,
		identity:             o.Identity,
		ttl:                  o.TTL,
		margin:               o.Margin,
		log:                  o.Logger.With().Str("key", o.Key).Str("identity", o.Identity).Logger(),
	}, nil
}

// TryAcquire makes one attempt to take the lease. It returns an error
// wrapping ErrNotLeader when another replica holds it. On success the
// returned Lease is kept alive by a watchdog until it is lost or released.
func (e *Elector) TryAcquire(ctx context.Context) (*Lease, error) {
	// The lock's server-side TTL starts after this instant, so counting
	// from here errs on the side of giving the lease up early.
	obtainedAt := time.Now()
	token := rand.Text()
	lock, err := e.locker.Obtain(ctx, e.key, e.ttl, &redislock.Options{
		Token:    token,
		Metadata: e.identity,
	})
	if errors.Is(err, redislock.ErrNotObtained) {
		return nil, fmt.Errorf("acquire lease %q: %w", e.key, ErrNotLeader)
	}
	if err != nil {
		return nil, fmt.Errorf("acquire lease %q: %w", e.key, err)
	}

	generation, err := e.nextGeneration(ctx, token+e.identity)
	if err != nil {
		// Without a generation the run could not be fenced in the logs;
		// give the lock back rather than lead anonymously.
		if releaseErr := lock.Release(context.WithoutCancel(ctx)); releaseErr != nil && !errors.Is(releaseErr, redislock.ErrLockNotHeld) {
			e.log.Warn().Err(releaseErr).Msg("release lease after generation failure")
		}
		return nil, fmt.Errorf("acquire lease %q: %w", e.key, err)
	}

	l := newLease(leaseParams{
		lock:       lock,
		identity:   e.identity,
		generation: generation,
		ttl:        e.ttl,
		margin:     e.margin,
		obtainedAt: obtainedAt,
		base:       context.WithoutCancel(ctx),
		log:        e.log.With().Int64("generation", generation).Logger(),
	})
	l.log.Info().Msg("leader lease acquired")
	return l, nil
}

// nextGenerationLua issues a fencing generation, but only to the holder of
// the lock, and keeps generations increasing even when Redis loses its data.
//
// A plain INCR restarts at 1 after Redis restarts without persistence (or
// fails over to a replica that missed the write), and a new leader would
// then reuse generations an old leader already logged. So the generation is
// max(previous+1, Redis server time in unix milliseconds): after a data loss
// the counter resumes from the clock, which has moved past every generation
// issued before. That holds as long as the Redis server's clock does not
// step back across the loss and leadership changes less than once per
// millisecond on average (it changes at most about once per TTL). The
// server's clock is used rather than the replicas' so that skew between
// replicas does not matter.
const nextGenerationLua = `
if redis.call("get", KEYS[1]) ~= ARGV[1] then return -1 end
local now = redis.call("time")
local floor = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local generation = (tonumber(redis.call("get", KEYS[2])) or 0) + 1
if generation < floor then generation = floor end
local encoded = string.format("%d", generation)
redis.call("set", KEYS[2], encoded)
return encoded
`

func (e *Elector) nextGeneration(ctx context.Context, lockValue string) (int64, error) {
	reply, err := e.nextGenerationScript.Run(ctx, e.rdb, []string{e.key, e.generationKey}, lockValue).Result()
	if err != nil {
		return 0, fmt.Errorf("issue generation at %q: %w", e.generationKey, err)
	}
	if n, ok := reply.(int64); ok && n == -1 {
		return 0, fmt.Errorf("issue generation at %q: lock expired before it could be stamped: %w", e.generationKey, ErrLeaseLost)
	}
	encoded, ok := reply.(string)
	if !ok {
		return 0, fmt.Errorf("issue generation at %q: unexpected reply %T", e.generationKey, reply)
	}
	generation, err := parseGeneration(encoded)
	if err != nil {
		return 0, fmt.Errorf("issue generation at %q: %w", e.generationKey, err)
	}
	return generation, nil
}

// Holder reports who holds the lease now and the last generation issued,
// for /status. identity is empty when nobody holds it; generation is 0 when
// none was ever issued (or Redis lost it), and after a release it stays the
// released lease's until the next acquisition. The two reads are not
// atomic: right after a takeover the generation may already be the new
// leader's while the identity is still the old one's, or the reverse.
func (e *Elector) Holder(ctx context.Context) (identity string, generation int64, err error) {
	value, err := e.getOptional(ctx, e.key)
	if err != nil {
		return "", 0, fmt.Errorf("read lease holder at %q: %w", e.key, err)
	}
	if value != "" {
		if identity, err = parseLockValue(value); err != nil {
			return "", 0, fmt.Errorf("read lease holder at %q: %w", e.key, err)
		}
	}
	encoded, err := e.getOptional(ctx, e.generationKey)
	if err != nil {
		return "", 0, fmt.Errorf("read lease generation at %q: %w", e.generationKey, err)
	}
	if encoded != "" {
		if generation, err = parseGeneration(encoded); err != nil {
			return "", 0, fmt.Errorf("read lease generation at %q: %w", e.generationKey, err)
		}
	}
	return identity, generation, nil
}

func (e *Elector) getOptional(ctx context.Context, key string) (string, error) {
	value, err := e.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return value, err
}

// tokenLen is the length of crypto/rand.Text, the random lock token that
// precedes the identity in the lock value.
const tokenLen = 26

// parseLockValue extracts the holder's identity from a lock value written by
// TryAcquire: a 26-character base32 token followed by the identity.
func parseLockValue(value string) (string, error) {
	if len(value) <= tokenLen {
		return "", fmt.Errorf("malformed lock value of %d bytes: want a %d-byte token and an identity", len(value), tokenLen)
	}
	for _, c := range value[:tokenLen] {
		if !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
			return "", errors.New("malformed lock value: token is not base32")
		}
	}
	return value[tokenLen:], nil
}

func parseGeneration(encoded string) (int64, error) {
	generation, err := strconv.ParseInt(encoded, 10, 64)
	if err != nil || generation <= 0 || strconv.FormatInt(generation, 10) != encoded {
		return 0, fmt.Errorf("malformed generation %q: want a positive decimal integer", encoded)
	}
	return generation, nil
}

// Lease is a held leader lease. All methods are safe for concurrent use.
type Lease struct {
	lock       *redislock.Lock
	identity   string
	generation int64
	ttl        time.Duration
	margin     time.Duration
	log        zerolog.Logger

	done          chan struct{}
	watchdogDone  chan struct{}
	refreshEvery  time.Duration
	retryEvery    time.Duration
	expiry        *time.Timer
	mu            sync.Mutex
	lastConfirmed time.Time // start of the last refresh Redis confirmed
	ended         bool      // done is closed

	// releaseMu serialises Release's round trip without blocking Check.
	releaseMu sync.Mutex
	released  bool // the key was deleted or found not ours
}

type leaseParams struct {
	lock       *redislock.Lock
	identity   string
	generation int64
	ttl        time.Duration
	margin     time.Duration
	obtainedAt time.Time
	base       context.Context
	log        zerolog.Logger
}

func newLease(p leaseParams) *Lease {
	l := &Lease{
		lock:          p.lock,
		identity:      p.identity,
		generation:    p.generation,
		ttl:           p.ttl,
		margin:        p.margin,
		log:           p.log,
		done:          make(chan struct{}),
		watchdogDone:  make(chan struct{}),
		refreshEvery:  p.ttl / 3,
		retryEvery:    p.ttl / 12,
		lastConfirmed: p.obtainedAt,
	}
	// The expiry timer enforces the local deadline even when a refresh
	// hangs: go-redis only honours context deadlines when the caller's
	// client sets ContextTimeoutEnabled, which this package cannot rely on.
	l.expiry = time.AfterFunc(time.Until(l.deadlineLocked()), l.expire)
	go l.watch(p.base)
	return l
}

// Generation is the fencing generation issued with this lease; it is
// greater than that of every earlier lease on the same key.
func (l *Lease) Generation() int64 { return l.generation }

// Identity is the identity this lease was taken under.
func (l *Lease) Identity() string { return l.identity }

// Done is closed when the lease is lost or released.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Context returns a child of parent that is cancelled, with cause
// ErrLeaseLost, when the lease ends. Run the leader's work under it so
// losing the lease aborts in-flight mutations.
func (l *Lease) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	go func() {
		select {
		case <-l.done:
			cancel(ErrLeaseLost)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// Check reports whether a mutation may proceed: the lease has not ended, and
// Redis confirms the lock is still ours with more than Margin to live. When
// either is false the lease is marked lost and the error wraps ErrLeaseLost.
// Any other error (Redis unreachable) also means "do not mutate now", but
// leaves the lease to the watchdog, which may still refresh it in time.
func (l *Lease) Check(ctx context.Context) error {
	l.mu.Lock()
	ended := l.ended
	overdue := !time.Now().Before(l.deadlineLocked())
	l.mu.Unlock()
	if ended {
		return l.lostError()
	}
	if overdue {
		l.end("refresh overdue")
		return l.lostError()
	}
	remaining, err := l.lock.TTL(ctx)
	if err != nil {
		return fmt.Errorf("check lease %q generation %d: %w", l.lock.Key(), l.generation, err)
	}
	if remaining <= l.margin {
		// TTL reports 0 when the key is gone or holds another token.
		l.end("remaining ttl below margin")
		return l.lostError()
	}
	return nil
}

func (l *Lease) lostError() error {
	return fmt.Errorf("lease %q generation %d: %w", l.lock.Key(), l.generation, ErrLeaseLost)
}

// Release stops the watchdog and deletes the lock if it is still ours, so a
// follower can take over without waiting for the TTL. Calling it again, or
// after the lease was lost, is safe; it returns an error only when Redis
// could not be asked, in which case the lock simply expires.
func (l *Lease) Release(ctx context.Context) error {
	l.end("released")
	select {
	case <-l.watchdogDone:
	case <-ctx.Done():
		return fmt.Errorf("release lease %q: wait for watchdog: %w", l.lock.Key(), ctx.Err())
	}

	l.releaseMu.Lock()
	defer l.releaseMu.Unlock()
	if l.released {
		return nil
	}
	err := l.lock.Release(ctx)
	if err != nil && !errors.Is(err, redislock.ErrLockNotHeld) {
		return fmt.Errorf("release lease %q: %w", l.lock.Key(), err)
	}
	l.released = true
	l.log.Info().Bool("was_held", err == nil).Msg("leader lease released")
	return nil
}

// end closes Done once; reason says why, for the log.
func (l *Lease) end(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLocked(reason)
}

func (l *Lease) endLocked(reason string) {
	if l.ended {
		return
	}
	l.ended = true
	l.expiry.Stop()
	close(l.done)
	if reason == "released" {
		return
	}
	l.log.Warn().Str("reason", reason).Time("last_confirmed", l.lastConfirmed).Msg("leader lease lost")
}

// deadlineLocked is when the lease stops counting as ours: TTL-Margin after
// the last refresh Redis confirmed, measured on the local monotonic clock.
func (l *Lease) deadlineLocked() time.Time {
	return l.lastConfirmed.Add(l.ttl - l.margin)
}

// expire runs on the expiry timer. A refresh may have moved the deadline
// after the timer fired, so it re-checks before giving the lease up.
func (l *Lease) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Now().Before(l.deadlineLocked()) {
		return
	}
	l.endLocked("no refresh confirmed within ttl-margin")
}

func (l *Lease) confirmed(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.lastConfirmed = at
	l.expiry.Reset(time.Until(l.deadlineLocked()))
}

func (l *Lease) remaining() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Until(l.deadlineLocked())
}

// watch refreshes the lock every TTL/3 until the lease ends. A refresh that
// finds the key gone or someone else's ends the lease at once; other errors
// are retried every TTL/12 until the expiry timer gives up.
func (l *Lease) watch(base context.Context) {
	defer close(l.watchdogDone)
	timer := time.NewTimer(l.refreshEvery)
	defer timer.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-timer.C:
		}
		remaining := l.remaining()
		if remaining <= 0 {
			l.expire()
			return
		}
		startedAt := time.Now()
		ctx, cancel := context.WithTimeout(base, remaining)
		err := l.lock.Refresh(ctx, l.ttl, nil)
		cancel()
		switch {
		case err == nil:
			l.confirmed(startedAt)
			timer.Reset(l.refreshEvery)
		case errors.Is(err, redislock.ErrNotObtained):
			l.end("lock expired or taken over")
			return
		default:
			l.log.Warn().Err(err).Dur("remaining", l.remaining()).Msg("refresh leader lease")
			timer.Reset(min(l.retryEvery, max(l.remaining(), 0)))
		}
	}
}
