package leader

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

const (
	testKey = "ldreaper:leader"
	testTTL = 30 * time.Second
)

// fakeRedis is a miniredis whose clients dial through a switch, so a test
// can cut one replica off from Redis while others still reach it.
type fakeRedis struct {
	mr *miniredis.Miniredis
}

// newFakeRedis must run inside a synctest bubble: with ClockTTL, keys expire
// as the bubble's fake clock advances.
func newFakeRedis(t *testing.T) *fakeRedis {
	t.Helper()
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true)
	t.Cleanup(mr.Close)
	return &fakeRedis{mr: mr}
}

// client returns a go-redis client and the switch that makes its dials and
// in-flight connections fail.
func (f *fakeRedis) client(t *testing.T) (*redis.Client, *partition) {
	t.Helper()
	p := &partition{}
	rdb := redis.NewClient(&redis.Options{
		Dialer: func(context.Context, string, string) (net.Conn, error) {
			if p.cut.Load() {
				return nil, errors.New("dial miniredis: partitioned")
			}
			conn, err := f.mr.Dial()
			if err != nil {
				return nil, err
			}
			return &partitionedConn{Conn: conn, p: p}, nil
		},
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, p
}

type partition struct{ cut atomic.Bool }

type partitionedConn struct {
	net.Conn
	p *partition
}

func (c *partitionedConn) Write(b []byte) (int, error) {
	if c.p.cut.Load() {
		return 0, errors.New("write miniredis: partitioned")
	}
	return c.Conn.Write(b)
}

func newElector(t *testing.T, rdb redis.UniversalClient, identity string) *Elector {
	t.Helper()
	e, err := New(rdb, Options{Key: testKey, TTL: testTTL, Identity: identity})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func mustAcquire(t *testing.T, e *Elector) *Lease {
	t.Helper()
	l, err := e.TryAcquire(t.Context())
	if err != nil {
		t.Fatalf("TryAcquire(%s): %v", e.identity, err)
	}
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// waitClosed reports whether ch closes within d of fake time.
func waitClosed(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func TestNewValidatesOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = rdb.Close() })
	valid := Options{Key: testKey, TTL: testTTL, Identity: "pod-a"}
	tests := []struct {
		name    string
		client  redis.UniversalClient
		edit    func(*Options)
		wantErr string
	}{
		{name: "valid", client: rdb, edit: func(*Options) {}},
		{name: "nil client", client: nil, edit: func(*Options) {}, wantErr: "nil redis client"},
		{name: "empty key", client: rdb, edit: func(o *Options) { o.Key = "" }, wantErr: "empty lock key"},
		{name: "empty identity", client: rdb, edit: func(o *Options) { o.Identity = "" }, wantErr: "empty identity"},
		{name: "ttl too short", client: rdb, edit: func(o *Options) { o.TTL = 99 * time.Millisecond }, wantErr: "below the minimum"},
		{name: "generation key equals lock key", client: rdb, edit: func(o *Options) { o.GenerationKey = testKey }, wantErr: "must differ"},
		{name: "negative margin", client: rdb, edit: func(o *Options) { o.Margin = -time.Second }, wantErr: "margin"},
		{name: "margin at half ttl", client: rdb, edit: func(o *Options) { o.Margin = testTTL / 2 }, wantErr: "margin"},
		{name: "margin just below half ttl", client: rdb, edit: func(o *Options) { o.Margin = testTTL/2 - time.Millisecond }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := valid
			tc.edit(&o)
			var client redis.UniversalClient
			if tc.client != nil {
				client = tc.client
			}
			_, err := New(client, o)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && !strings.Contains(gotErr, tc.wantErr) {
				t.Errorf("New() error = %q, want containing %q", gotErr, tc.wantErr)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = rdb.Close() })
	e, err := New(rdb, Options{Key: testKey, TTL: testTTL, Identity: "pod-a"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	type defaults struct {
		GenerationKey string
		Margin        time.Duration
	}
	want := defaults{GenerationKey: testKey + ":generation", Margin: testTTL / 3}
	if diff := cmp.Diff(want, defaults{e.generationKey, e.margin}); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestSecondElectorIsNotLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdbA, _ := f.client(t)
		rdbB, _ := f.client(t)
		leaderA := mustAcquire(t, newElector(t, rdbA, "pod-a"))

		_, err := newElector(t, rdbB, "pod-b").TryAcquire(t.Context())
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("second TryAcquire error = %v, want ErrNotLeader", err)
		}
		if got := f.mr.TTL(testKey); got != testTTL {
			t.Errorf("lock TTL = %s, want %s", got, testTTL)
		}
		if leaderA.Identity() != "pod-a" {
			t.Errorf("Identity() = %q, want pod-a", leaderA.Identity())
		}
	})
}

func TestGenerationsStayMonotonic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdb, _ := f.client(t)
		e := newElector(t, rdb, "pod-a")
		startMillis := time.Now().UnixMilli() // the bubble's epoch, which miniredis's TIME follows

		// Each step optionally disturbs Redis, then acquires and releases.
		steps := []struct {
			name   string
			before func()
			want   int64
		}{
			{name: "first acquisition starts at the server clock", before: func() {}, want: startMillis},
			{name: "back to back increments", before: func() {}, want: startMillis + 1},
			{name: "again", before: func() {}, want: startMillis + 2},
			{name: "after a minute follows the clock", before: func() { time.Sleep(time.Minute) }, want: startMillis + time.Minute.Milliseconds()},
			{name: "data loss does not reset it", before: func() { time.Sleep(time.Second); f.mr.FlushAll() }, want: startMillis + time.Minute.Milliseconds() + time.Second.Milliseconds()},
			{name: "corrupt counter falls back to the clock", before: func() { _ = f.mr.Set(testKey+":generation", "garbage") }, want: startMillis + time.Minute.Milliseconds() + time.Second.Milliseconds()},
		}
		var got, want []int64
		for _, step := range steps {
			step.before()
			l, err := e.TryAcquire(t.Context())
			if err != nil {
				t.Fatalf("%s: TryAcquire: %v", step.name, err)
			}
			got = append(got, l.Generation())
			want = append(want, step.want)
			if err := l.Release(t.Context()); err != nil {
				t.Fatalf("%s: Release: %v", step.name, err)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("generations (-want +got):\n%s", diff)
		}
	})
}

func TestGenerationFailureGivesTheLockBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdb, _ := f.client(t)
		f.mr.HSet(testKey+":generation", "not", "a string") // GET on it fails with WRONGTYPE

		_, err := newElector(t, rdb, "pod-a").TryAcquire(t.Context())
		if err == nil || !strings.Contains(err.Error(), "issue generation") {
			t.Fatalf("TryAcquire error = %v, want an issue-generation error", err)
		}
		if f.mr.Exists(testKey) {
			t.Error("lock key still exists after a failed acquisition; want it released")
		}
	})
}

func TestHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdb, _ := f.client(t)
		observer := newElector(t, rdb, "observer")
		type holder struct {
			Identity   string
			Generation int64
		}
		read := func() holder {
			t.Helper()
			id, gen, err := observer.Holder(t.Context())
			if err != nil {
				t.Fatalf("Holder: %v", err)
			}
			return holder{id, gen}
		}

		if diff := cmp.Diff(holder{}, read()); diff != "" {
			t.Errorf("before any leader (-want +got):\n%s", diff)
		}
		l := mustAcquire(t, newElector(t, rdb, "pod-a:4242"))
		if diff := cmp.Diff(holder{"pod-a:4242", l.Generation()}, read()); diff != "" {
			t.Errorf("while pod-a leads (-want +got):\n%s", diff)
		}
		if err := l.Release(t.Context()); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if diff := cmp.Diff(holder{"", l.Generation()}, read()); diff != "" {
			t.Errorf("after release (-want +got):\n%s", diff)
		}

		_ = f.mr.Set(testKey, "short")
		if _, _, err := observer.Holder(t.Context()); err == nil {
			t.Error("Holder on a malformed lock value succeeded, want an error")
		}
	})
}

func TestWatchdogKeepsLeaseForTenMinutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdbA, _ := f.client(t)
		rdbB, _ := f.client(t)
		l := mustAcquire(t, newElector(t, rdbA, "pod-a"))
		follower := newElector(t, rdbB, "pod-b")

		for range 60 {
			time.Sleep(10 * time.Second)
			if _, err := follower.TryAcquire(t.Context()); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("follower TryAcquire at %s: err = %v, want ErrNotLeader", time.Now().UTC().Format(time.TimeOnly), err)
			}
		}
		if isClosed(l.Done()) {
			t.Fatal("lease ended during 10 minutes of healthy refreshes")
		}
		if err := l.Check(t.Context()); err != nil {
			t.Errorf("Check after 10 minutes: %v", err)
		}
	})
}

func TestLeaseLostWhenLockChangesUnderneath(t *testing.T) {
	tests := []struct {
		name    string
		disturb func(mr *miniredis.Miniredis)
	}{
		{name: "key deleted", disturb: func(mr *miniredis.Miniredis) { mr.Del(testKey) }},
		{name: "key expired", disturb: func(mr *miniredis.Miniredis) { mr.FastForward(testTTL) }},
		{name: "key taken by another replica", disturb: func(mr *miniredis.Miniredis) { _ = mr.Set(testKey, "AAAAAAAAAAAAAAAAAAAAAAAAAAintruder") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeRedis(t)
				rdb, _ := f.client(t)
				l := mustAcquire(t, newElector(t, rdb, "pod-a"))
				runCtx, cancel := l.Context(t.Context())
				defer cancel()

				time.Sleep(time.Second)
				tc.disturb(f.mr)
				if !waitClosed(l.Done(), testTTL/3) {
					t.Fatal("Done not closed within TTL/3 after the lock changed")
				}
				synctest.Wait()
				if runCtx.Err() == nil {
					t.Fatal("lease context not cancelled after loss")
				}
				if cause := context.Cause(runCtx); !errors.Is(cause, ErrLeaseLost) {
					t.Errorf("context cause = %v, want ErrLeaseLost", cause)
				}
				if err := l.Check(t.Context()); !errors.Is(err, ErrLeaseLost) {
					t.Errorf("Check after loss = %v, want ErrLeaseLost", err)
				}
			})
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		disturb  func(f *fakeRedis, p *partition, l *Lease)
		wantLost bool // error wraps ErrLeaseLost and the lease ends
		wantErr  bool // any error at all
	}{
		{name: "healthy", disturb: func(*fakeRedis, *partition, *Lease) {}},
		{
			name:    "ttl above margin",
			disturb: func(f *fakeRedis, _ *partition, _ *Lease) { f.mr.SetTTL(testKey, testTTL/3+time.Second) },
		},
		{
			name:     "ttl under margin",
			disturb:  func(f *fakeRedis, _ *partition, _ *Lease) { f.mr.SetTTL(testKey, testTTL/3-time.Second) },
			wantLost: true, wantErr: true,
		},
		{
			name:     "key gone",
			disturb:  func(f *fakeRedis, _ *partition, _ *Lease) { f.mr.Del(testKey) },
			wantLost: true, wantErr: true,
		},
		{
			name:     "released",
			disturb:  func(_ *fakeRedis, _ *partition, l *Lease) { _ = l.Release(context.Background()) },
			wantLost: true, wantErr: true,
		},
		{
			name:    "redis unreachable only blocks this mutation",
			disturb: func(_ *fakeRedis, p *partition, _ *Lease) { p.cut.Store(true) },
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeRedis(t)
				rdb, p := f.client(t)
				l := mustAcquire(t, newElector(t, rdb, "pod-a"))
				tc.disturb(f, p, l)

				err := l.Check(t.Context())
				if gotErr := err != nil; gotErr != tc.wantErr {
					t.Fatalf("Check() = %v, want error: %t", err, tc.wantErr)
				}
				if gotLost := errors.Is(err, ErrLeaseLost); gotLost != tc.wantLost {
					t.Errorf("Check() = %v, want ErrLeaseLost: %t", err, tc.wantLost)
				}
				if ended := isClosed(l.Done()); ended != tc.wantLost {
					t.Errorf("Done closed = %t, want %t", ended, tc.wantLost)
				}
				p.cut.Store(false)
			})
		})
	}
}

func TestCheckFailsWhenRefreshOverdueEvenIfRedisDisagrees(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdb, _ := f.client(t)
		e := newElector(t, rdb, "pod-a")
		l := mustAcquire(t, e)
		// Simulate a process pause: the lease's local clock says the last
		// confirmation is older than TTL-Margin though Redis still has time.
		l.mu.Lock()
		l.lastConfirmed = time.Now().Add(-(testTTL - e.margin))
		l.mu.Unlock()
		if err := l.Check(t.Context()); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("Check() = %v, want ErrLeaseLost", err)
		}
	})
}

func TestReleaseHandsOverToFollower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdbA, _ := f.client(t)
		rdbB, _ := f.client(t)
		first := mustAcquire(t, newElector(t, rdbA, "pod-a"))
		follower := newElector(t, rdbB, "pod-b")

		if err := first.Release(t.Context()); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := first.Release(t.Context()); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		if !isClosed(first.Done()) {
			t.Error("Done open after Release")
		}
		second := mustAcquire(t, follower)
		if second.Generation() <= first.Generation() {
			t.Errorf("follower generation %d, want > %d", second.Generation(), first.Generation())
		}
		// A stale lease must never delete the new holder's lock.
		if err := first.Release(t.Context()); err != nil {
			t.Fatalf("stale Release: %v", err)
		}
		if err := second.Check(t.Context()); err != nil {
			t.Errorf("new leader's Check after stale Release: %v", err)
		}
	})
}

func TestReleaseAfterLossKeepsNewHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdbA, partA := f.client(t)
		rdbB, _ := f.client(t)
		old := mustAcquire(t, newElector(t, rdbA, "pod-a"))
		partA.cut.Store(true)
		time.Sleep(testTTL + time.Second)
		successor := mustAcquire(t, newElector(t, rdbB, "pod-b"))
		partA.cut.Store(false)

		if err := old.Release(t.Context()); err != nil {
			t.Fatalf("Release of the lost lease: %v", err)
		}
		if err := successor.Check(t.Context()); err != nil {
			t.Errorf("successor Check after the old leader's Release: %v", err)
		}
	})
}

func TestLeaseLostWhenRedisUnreachable(t *testing.T) {
	tests := []struct {
		name string
		fail func(f *fakeRedis, p *partition)
	}{
		{name: "partitioned from the leader", fail: func(_ *fakeRedis, p *partition) { p.cut.Store(true) }},
		{name: "server answers errors", fail: func(f *fakeRedis, _ *partition) { f.mr.SetError("LOADING Redis is loading the dataset in memory") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeRedis(t)
				rdb, p := f.client(t)
				l := mustAcquire(t, newElector(t, rdb, "pod-a"))
				runCtx, cancel := l.Context(t.Context())
				defer cancel()

				time.Sleep(time.Second)
				tc.fail(f, p)
				failedAt := time.Now()
				if !waitClosed(l.Done(), testTTL) {
					t.Fatal("lease still held a full TTL after Redis became unreachable")
				}
				// Lost no earlier than the refresh that would have kept it.
				if elapsed := time.Since(failedAt); elapsed < testTTL/3 {
					t.Errorf("lease lost %s after the failure, want at least TTL/3 of retries", elapsed)
				}
				synctest.Wait()
				if !errors.Is(context.Cause(runCtx), ErrLeaseLost) {
					t.Errorf("lease context cause = %v, want ErrLeaseLost", context.Cause(runCtx))
				}
				f.mr.SetError("")
				p.cut.Store(false)
			})
		})
	}
}

func TestShortOutageKeepsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdb, p := f.client(t)
		l := mustAcquire(t, newElector(t, rdb, "pod-a"))

		// The first refresh is due at TTL/3; an outage around it that ends
		// before TTL-Margin must be ridden out by the retries.
		time.Sleep(testTTL/3 - time.Second)
		p.cut.Store(true)
		time.Sleep(testTTL / 6)
		p.cut.Store(false)
		time.Sleep(testTTL)

		if isClosed(l.Done()) {
			t.Fatal("lease lost after an outage shorter than the retry window")
		}
		if err := l.Check(t.Context()); err != nil {
			t.Errorf("Check after the outage: %v", err)
		}
	})
}

// TestNoOverlapUnderPartition is the property the package exists for: when
// the leader is cut off from Redis, it gives up the lease at least Margin
// before any follower can take it, the slack that absorbs clock drift and
// pauses in real deployments.
func TestNoOverlapUnderPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRedis(t)
		rdbA, partA := f.client(t)
		rdbB, _ := f.client(t)
		e := newElector(t, rdbA, "pod-a")
		old := mustAcquire(t, e)
		follower := newElector(t, rdbB, "pod-b")
		lostAt := make(chan time.Time, 1)
		go func() {
			<-old.Done()
			lostAt <- time.Now()
		}()

		time.Sleep(7 * time.Second)
		partA.cut.Store(true)
		for {
			time.Sleep(100 * time.Millisecond)
			successor, err := follower.TryAcquire(t.Context())
			if errors.Is(err, ErrNotLeader) {
				continue
			}
			if err != nil {
				t.Fatalf("follower TryAcquire: %v", err)
			}
			t.Cleanup(func() { _ = successor.Release(context.Background()) })
			break
		}
		acquiredAt := time.Now()
		select {
		case lost := <-lostAt:
			if gap := acquiredAt.Sub(lost); gap < e.margin {
				t.Errorf("old leader stepped down %s before the follower took over, want at least the margin %s", gap, e.margin)
			}
		default:
			t.Fatal("follower acquired while the partitioned leader still held its lease")
		}
		partA.cut.Store(false)
	})
}

func TestParseLockValue(t *testing.T) {
	token := strings.Repeat("A", tokenLen)
	tests := []struct {
		name    string
		value   string
		want    string
		wantErr bool
	}{
		{name: "token and identity", value: token + "pod-a:42", want: "pod-a:42"},
		{name: "identity with separators", value: token + "host/ns:pod 7", want: "host/ns:pod 7"},
		{name: "token only", value: token, wantErr: true},
		{name: "empty", value: "", wantErr: true},
		{name: "lower-case token", value: strings.Repeat("a", tokenLen) + "pod", wantErr: true},
		{name: "token with digit outside base32", value: strings.Repeat("1", tokenLen) + "pod", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLockValue(tc.value)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseLockValue(%q) error = %v, want error: %t", tc.value, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseGeneration(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "1", want: 1},
		{in: "1732000000000", want: 1732000000000},
		{in: "0", wantErr: true},
		{in: "-3", wantErr: true},
		{in: "+3", wantErr: true},
		{in: "007", wantErr: true},
		{in: "1.7e+12", wantErr: true},
		{in: "", wantErr: true},
		{in: "99999999999999999999", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseGeneration(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseGeneration(%q) error = %v, want error: %t", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("parseGeneration(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseLockValue(f *testing.F) {
	f.Add(strings.Repeat("A", tokenLen) + "pod-a:42")
	f.Add("")
	f.Add(strings.Repeat("Z", tokenLen))
	f.Add("short")
	f.Fuzz(func(t *testing.T, value string) {
		identity, err := parseLockValue(value)
		if err != nil {
			return
		}
		if identity == "" || !strings.HasSuffix(value, identity) || len(value) != tokenLen+len(identity) {
			t.Errorf("parseLockValue(%q) = %q: not the suffix after the token", value, identity)
		}
	})
}

func FuzzParseGeneration(f *testing.F) {
	f.Add("1")
	f.Add("1732000000000")
	f.Add("-1")
	f.Add("01")
	f.Add("9223372036854775807")
	f.Fuzz(func(t *testing.T, encoded string) {
		generation, err := parseGeneration(encoded)
		if err != nil {
			return
		}
		if generation <= 0 {
			t.Errorf("parseGeneration(%q) = %d, want positive", encoded, generation)
		}
		again, err := parseGeneration(encoded)
		if err != nil || again != generation {
			t.Errorf("parseGeneration(%q) not deterministic", encoded)
		}
	})
}
