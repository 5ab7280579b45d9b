package redistest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

func newClient(t *testing.T, s *Server) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("parse %q: %v", s.URL(), err)
	}
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	opts.MaxRetries = -1 // a dead server must fail the call, not be retried into the next phase
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	if got, want := s.URL(), "redis://"+s.Addr()+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	rdb := newClient(t, s)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET before stop: %v", err)
	}

	addr := s.Addr()
	s.Stop()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Stop succeeded, want an error")
	}

	s.Restart()
	if s.Addr() != addr {
		t.Errorf("Addr after Restart = %q, want %q", s.Addr(), addr)
	}
	err := rdb.Get(ctx, "k").Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		// the pooled connection died with the old server; one failed call is allowed
		err = rdb.Get(ctx, "k").Err()
	}
	if !errors.Is(err, redis.Nil) {
		t.Errorf("GET after Restart: err = %v, want redis.Nil (no persistence)", err)
	}
	s.Stop()
	s.Stop() // idempotent
}

// abortingTB records the first Skip or Fatal and unwinds Start the way the
// real testing package would, so the caller can inspect what happened.
type abortingTB struct {
	*testing.T
	outcome string
}

type aborted struct{}

func (a *abortingTB) Skip(args ...any) {
	a.outcome = "skip: " + fmt.Sprint(args...)
	panic(aborted{})
}

func (a *abortingTB) Fatalf(format string, args ...any) {
	a.outcome = "fatal"
	panic(aborted{})
}

func startOutcome(t *testing.T) string {
	tb := &abortingTB{T: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(aborted); !ok {
					panic(r)
				}
			}
		}()
		Start(tb)
	}()
	return tb.outcome
}

func TestStartWithoutBinary(t *testing.T) {
	tests := []struct {
		name    string
		require string
		want    string
	}{
		{name: "skips by default", require: "", want: "skip: redis-server not installed"},
		{name: "fails when CI requires redis", require: "1", want: "fatal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir())
			t.Setenv("LDREAPER_REQUIRE_REDIS", tc.require)
			if diff := cmp.Diff(tc.want, startOutcome(t)); diff != "" {
				t.Errorf("Start outcome (-want +got):\n%s", diff)
			}
		})
	}
}
