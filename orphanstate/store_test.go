package orphanstate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// store is the reconciler's view of orphan state; both implementations are
// held to the same behaviour through it.
type store interface {
	Load(ctx context.Context) (map[string]Record, error)
	Save(ctx context.Context, upsert map[string]Record, remove []string) error
}

var (
	monday  = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tuesday = monday.Add(24 * time.Hour)
)

type save struct {
	upsert  map[string]Record
	remove  []string
	wantErr string // substring; empty means success
}

// testStoreBehaviour runs the shared table against stores from newStore,
// one fresh store per case.
func testStoreBehaviour(t *testing.T, newStore func(t *testing.T) store) {
	tests := []struct {
		name  string
		saves []save
		want  map[string]Record
	}{
		{name: "empty", want: map[string]Record{}},
		{
			name:  "upserts are loaded back",
			saves: []save{{upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}, "pr-2": {FirstSeen: tuesday, Runs: 3}}}},
			want:  map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}, "pr-2": {FirstSeen: tuesday, Runs: 3}},
		},
		{
			name: "upsert overwrites and removal deletes in one save",
			saves: []save{
				{upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}, "pr-2": {FirstSeen: monday, Runs: 1}}},
				{upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 2}}, remove: []string{"pr-2"}},
			},
			want: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 2}},
		},
		{
			name: "removing an unknown key is a no-op",
			saves: []save{
				{upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}}},
				{remove: []string{"pr-404"}},
			},
			want: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}},
		},
		{
			name:  "empty save changes nothing",
			saves: []save{{upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}}}, {}},
			want:  map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}},
		},
		{
			name:  "first-seen kept to the millisecond in UTC",
			saves: []save{{upsert: map[string]Record{"pr-1": {FirstSeen: monday.Add(1500 * time.Microsecond).In(time.FixedZone("CET", 3600)), Runs: 1}}}},
			want:  map[string]Record{"pr-1": {FirstSeen: monday.Add(time.Millisecond), Runs: 1}},
		},
		{
			name:  "zero first-seen and zero runs round-trip",
			saves: []save{{upsert: map[string]Record{"pr-1": {}}}},
			want:  map[string]Record{"pr-1": {}},
		},
		{
			name: "key both upserted and removed is rejected whole",
			saves: []save{
				{upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}}},
				{upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 2}, "pr-2": {FirstSeen: monday, Runs: 1}}, remove: []string{"pr-1"}, wantErr: `"pr-1" is both upserted and removed`},
			},
			want: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}},
		},
		{
			name: "negative runs are rejected whole",
			saves: []save{
				{upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: -1}, "pr-2": {FirstSeen: monday, Runs: 1}}, wantErr: "negative run count"},
			},
			want: map[string]Record{},
		},
		{
			name: "empty keys are rejected whole",
			saves: []save{
				{upsert: map[string]Record{"": {FirstSeen: monday, Runs: 1}}, wantErr: "empty environment key"},
				{upsert: map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}}, remove: []string{""}, wantErr: "empty environment key"},
			},
			want: map[string]Record{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			for i, sv := range tc.saves {
				err := s.Save(t.Context(), sv.upsert, sv.remove)
				switch {
				case sv.wantErr == "" && err != nil:
					t.Fatalf("save %d: %v", i, err)
				case sv.wantErr != "" && (err == nil || !strings.Contains(err.Error(), sv.wantErr)):
					t.Fatalf("save %d: error = %v, want containing %q", i, err, sv.wantErr)
				}
			}
			got, err := s.Load(t.Context())
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("loaded state (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("load returns a copy", func(t *testing.T) {
		s := newStore(t)
		if err := s.Save(t.Context(), map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}}, nil); err != nil {
			t.Fatalf("Save: %v", err)
		}
		first, err := s.Load(t.Context())
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		first["pr-1"] = Record{FirstSeen: tuesday, Runs: 9}
		first["pr-2"] = Record{}
		second, err := s.Load(t.Context())
		if err != nil {
			t.Fatalf("second Load: %v", err)
		}
		if diff := cmp.Diff(map[string]Record{"pr-1": {FirstSeen: monday, Runs: 1}}, second); diff != "" {
			t.Errorf("state after mutating a loaded map (-want +got):\n%s", diff)
		}
	})
}

func TestMemory(t *testing.T) {
	testStoreBehaviour(t, func(*testing.T) store { return NewMemory() })
}
