package orphanstate

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

const testHash = "ldreaper:orphans:my-project"

func miniredisClient(t *testing.T, mr *miniredis.Miniredis) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr:                     mr.Addr(),
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		DisableIdentity:          true, // no CLIENT SETINFO pipeline to muddy the recorded traffic
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestRedis(t *testing.T) {
	testStoreBehaviour(t, func(t *testing.T) store {
		return NewRedis(miniredisClient(t, miniredis.RunT(t)), testHash)
	})
}

func TestRedisLoadRejectsCorruptFields(t *testing.T) {
	tests := []struct {
		name    string
		fields  []string // field, value pairs written behind the store's back
		wantErr []string // substrings
	}{
		{name: "no separator", fields: []string{"pr-1", "1732270000000"}, wantErr: []string{`environment "pr-1"`, "malformed orphan record"}},
		{name: "runs not a number", fields: []string{"pr-1", "1732270000000:x"}, wantErr: []string{`environment "pr-1"`, "run count"}},
		{
			name:    "every corrupt key is named",
			fields:  []string{"pr-1", "garbage", "pr-2", "1732270000000:1", "pr-3", ":"},
			wantErr: []string{`environment "pr-1"`, `environment "pr-3"`, testHash},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mr := miniredis.RunT(t)
			mr.HSet(testHash, tc.fields...)
			got, err := NewRedis(miniredisClient(t, mr), testHash).Load(t.Context())
			if err == nil {
				t.Fatalf("Load() = %v, want an error", got)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load() error = %q, want it to contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), `"pr-2"`) {
				t.Errorf("Load() error = %q names the valid key pr-2", err)
			}
		})
	}
}

func TestRedisWrongTypeNamesTheHash(t *testing.T) {
	mr := miniredis.RunT(t)
	if err := mr.Set(testHash, "not a hash"); err != nil {
		t.Fatal(err)
	}
	s := NewRedis(miniredisClient(t, mr), testHash)
	if _, err := s.Load(t.Context()); err == nil || !strings.Contains(err.Error(), testHash) {
		t.Errorf("Load() error = %v, want one naming %q", err, testHash)
	}
	err := s.Save(t.Context(), map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}}, nil)
	if err == nil || !strings.Contains(err.Error(), testHash) {
		t.Errorf("Save() error = %v, want one naming %q", err, testHash)
	}
}

// commandRecorder is a go-redis hook that records what each pipeline sent.
type commandRecorder struct {
	mu        sync.Mutex
	pipelines [][]string
}

func (r *commandRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *commandRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (r *commandRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		r.mu.Lock()
		r.pipelines = append(r.pipelines, names)
		r.mu.Unlock()
		return next(ctx, cmds)
	}
}

func TestRedisSaveIsOneTransaction(t *testing.T) {
	tests := []struct {
		name   string
		upsert map[string]Record
		remove []string
		want   [][]string
	}{
		{
			name:   "upserts and removals",
			upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}, "pr-2": {FirstSeen: monday, Runs: 1}},
			remove: []string{"pr-3", "pr-4"},
			want:   [][]string{{"multi", "hset", "hdel", "exec"}},
		},
		{name: "upserts only", upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}}, want: [][]string{{"multi", "hset", "exec"}}},
		{name: "removals only", remove: []string{"pr-3"}, want: [][]string{{"multi", "hdel", "exec"}}},
		{name: "nothing sends nothing", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rdb := miniredisClient(t, miniredis.RunT(t))
			recorder := &commandRecorder{}
			rdb.AddHook(recorder)
			if err := NewRedis(rdb, testHash).Save(t.Context(), tc.upsert, tc.remove); err != nil {
				t.Fatalf("Save: %v", err)
			}
			if diff := cmp.Diff(tc.want, recorder.pipelines); diff != "" {
				t.Errorf("pipelines sent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRedisStateIsSharedPerProject(t *testing.T) {
	mr := miniredis.RunT(t)
	replicaA := NewRedis(miniredisClient(t, mr), testHash)
	replicaB := NewRedis(miniredisClient(t, mr), testHash)
	otherProject := NewRedis(miniredisClient(t, mr), "ldreaper:orphans:other")

	want := map[string]Record{"pr-1": {FirstSeen: monday, Runs: 2}}
	if err := replicaA.Save(t.Context(), want, nil); err != nil {
		t.Fatalf("Save on replica A: %v", err)
	}
	got, err := replicaB.Load(t.Context())
	if err != nil {
		t.Fatalf("Load on replica B: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replica B sees (-want +got):\n%s", diff)
	}
	other, err := otherProject.Load(t.Context())
	if err != nil {
		t.Fatalf("Load other project: %v", err)
	}
	if diff := cmp.Diff(map[string]Record{}, other); diff != "" {
		t.Errorf("another project sees (-want +got):\n%s", diff)
	}
	if got := mr.HGet(testHash, "pr-1"); got != encodeRecord(want["pr-1"]) {
		t.Errorf("stored field = %q, want %q", got, encodeRecord(want["pr-1"]))
	}
}

func TestDecodeRecord(t *testing.T) {
	tests := []struct {
		in      string
		want    Record
		wantErr bool
	}{
		{in: "1795424400000:3", want: Record{FirstSeen: time.UnixMilli(1795424400000).UTC(), Runs: 3}},
		{in: "0:0", want: Record{FirstSeen: time.Unix(0, 0).UTC()}},
		{in: "-62135596800000:1", want: Record{Runs: 1}},
		{in: "", wantErr: true},
		{in: ":", wantErr: true},
		{in: "1795424400000", wantErr: true},
		{in: "1795424400000:", wantErr: true},
		{in: "1795424400000:-1", wantErr: true},
		{in: "1795424400000:+1", wantErr: true},
		{in: "1795424400000:01", wantErr: true},
		{in: "+1795424400000:1", wantErr: true},
		{in: " 1795424400000:1", wantErr: true},
		{in: "1795424400000:1:2", wantErr: true},
		{in: "1.7e12:1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := decodeRecord(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("decodeRecord(%q) error = %v, want error: %t", tc.in, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decodeRecord(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, seed := range []string{"1795424400000:3", "0:0", "-62135596800000:1", "", ":", "1:01", "9223372036854775807:1", "1:-1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := decodeRecord(s)
		if err != nil {
			return
		}
		if r.Runs < 0 {
			t.Errorf("decodeRecord(%q) accepted negative runs %d", s, r.Runs)
		}
		if again := encodeRecord(r); again != s {
			t.Errorf("decodeRecord(%q) = %+v, which encodes as %q", s, r, again)
		}
	})
}

func FuzzRecordRoundTrip(f *testing.F) {
	f.Add(int64(1795424400000), 3)
	f.Add(int64(0), 0)
	f.Fuzz(func(t *testing.T, millis int64, runs int) {
		if runs < 0 || millis < -62135596800000 || millis > 253402300799999 { // years 1..9999
			t.Skip()
		}
		want := Record{FirstSeen: time.UnixMilli(millis).UTC(), Runs: runs}
		got, err := decodeRecord(encodeRecord(want))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", want, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	})
}
