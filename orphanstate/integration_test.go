package orphanstate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ldreaper/ldreaper/internal/redistest"
)

func realClient(t *testing.T, s *redistest.Server) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("parse %q: %v", s.URL(), err)
	}
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestIntegrationRedisBehaviour(t *testing.T) {
	s := redistest.Start(t)
	rdb := realClient(t, s)
	testStoreBehaviour(t, func(t *testing.T) store {
		// One hash per case keeps the cases independent on one server.
		return NewRedis(rdb, "ldreaper:orphans:"+t.Name())
	})
}

// TestIntegrationOrphanStateSurvivesLeaderChange: the old leader saves with
// its own connection, the new leader loads with another, and grace goes on
// where it stopped.
func TestIntegrationOrphanStateSurvivesLeaderChange(t *testing.T) {
	s := redistest.Start(t)
	oldLeader := NewRedis(realClient(t, s), testHash)
	newLeader := NewRedis(realClient(t, s), testHash)

	saved := map[string]Record{"pr-1": {FirstSeen: monday, Runs: 2}, "pr-2": {FirstSeen: tuesday, Runs: 1}}
	if err := oldLeader.Save(t.Context(), saved, nil); err != nil {
		t.Fatalf("old leader Save: %v", err)
	}
	got, err := newLeader.Load(t.Context())
	if err != nil {
		t.Fatalf("new leader Load: %v", err)
	}
	if diff := cmp.Diff(saved, got); diff != "" {
		t.Errorf("new leader sees (-want +got):\n%s", diff)
	}

	if err := newLeader.Save(t.Context(), map[string]Record{"pr-1": {FirstSeen: monday, Runs: 3}}, []string{"pr-2"}); err != nil {
		t.Fatalf("new leader Save: %v", err)
	}
	got, err = oldLeader.Load(t.Context())
	if err != nil {
		t.Fatalf("old leader Load: %v", err)
	}
	if diff := cmp.Diff(map[string]Record{"pr-1": {FirstSeen: monday, Runs: 3}}, got); diff != "" {
		t.Errorf("old leader sees after the new leader's save (-want +got):\n%s", diff)
	}
}
