package ldfake_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

func TestSeed(t *testing.T) {
	tests := []struct {
		name    string
		project string
		env     ldfake.Environment
		wantErr error
	}{
		{"fills the rest", project, ldfake.Environment{Key: "pr-1"}, nil},
		{"unknown project", "nope", ldfake.Environment{Key: "pr-1"}, ldfake.ErrUnknownProject},
		{"duplicate", project, ldfake.Environment{Key: "production"}, ldfake.ErrEnvironmentExists},
		{"bad key", project, ldfake.Environment{Key: "-x"}, ldfake.ErrInvalidEnvironment},
		{"bad color", project, ldfake.Environment{Key: "x", Color: "red"}, ldfake.ErrInvalidEnvironment},
		{"bad tag", project, ldfake.Environment{Key: "x", Tags: []string{"a,b"}}, ldfake.ErrInvalidEnvironment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, ldfake.Options{}, "production")
			_, err := s.Seed(tt.project, tt.env)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSeedKeepsWhatItIsGiven(t *testing.T) {
	s := newServer(t, ldfake.Options{})
	given := ldfake.Environment{
		ID: "0123456789abcdef01234567", Key: "staging", Name: "Staging", APIKey: "sdk-x", MobileKey: "mob-x",
		Color: "000000", Tags: []string{"a"}, Critical: true, CreatedOn: epoch.Add(-time.Hour), Version: 4,
		Links: map[string]ldfake.Link{"self": {Href: "/x", Type: "application/json"}},
	}
	got, err := s.Seed(project, given)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(given, got); diff != "" {
		t.Errorf("seeded (-given +got):\n%s", diff)
	}
	filled, err := s.Seed(project, ldfake.Environment{Key: "pr-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := ldfake.Environment{Key: "pr-1", Name: "pr-1", Color: "7B42BC", Tags: []string{}, CreatedOn: epoch, Version: 1,
		Links: map[string]ldfake.Link{"self": {Href: envsPath + "/pr-1", Type: "application/json"}}}
	if diff := cmp.Diff(want, filled, cmpopts.IgnoreFields(ldfake.Environment{}, "ID", "APIKey", "MobileKey")); diff != "" {
		t.Errorf("filled (-want +got):\n%s", diff)
	}
}

func TestEnvironmentsAndRemove(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "zeta", "alpha", "mid")
	keys := func() []string {
		var k []string
		for _, e := range s.Environments(project) {
			k = append(k, e.Key)
		}
		return k
	}
	if diff := cmp.Diff([]string{"alpha", "mid", "zeta"}, keys()); diff != "" {
		t.Errorf("sorted by key (-want +got):\n%s", diff)
	}
	envs := s.Environments(project)
	envs[0].Tags = append(envs[0].Tags, "mutated")
	if e, _ := s.Environment(project, "alpha"); len(e.Tags) != 0 {
		t.Error("changing a returned environment changed the server's")
	}
	if !s.Remove(project, "mid") || s.Remove(project, "mid") || s.Remove("nope", "alpha") {
		t.Error("Remove reported the wrong existence")
	}
	if diff := cmp.Diff([]string{"alpha", "zeta"}, keys()); diff != "" {
		t.Errorf("after Remove (-want +got):\n%s", diff)
	}
	if s.Environments("nope") != nil {
		t.Error("unknown project has environments")
	}
	if len(s.Mutations()) != 0 || len(s.Audit()) != 0 {
		t.Error("out-of-band changes were logged as API traffic")
	}
}

func TestSameSeedSameIdentities(t *testing.T) {
	ids := func(seed int64) []string {
		s := newServer(t, ldfake.Options{Seed: seed}, "a", "b")
		var out []string
		for _, e := range s.Environments(project) {
			out = append(out, e.ID, e.APIKey, e.MobileKey)
		}
		return out
	}
	if diff := cmp.Diff(ids(1), ids(1)); diff != "" {
		t.Errorf("same seed, different ids (-first +second):\n%s", diff)
	}
	if cmp.Equal(ids(1), ids(2)) {
		t.Error("different seeds gave the same ids")
	}
}
