package reconciler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ldreaper/ldreaper/ldclient"
	"github.com/ldreaper/ldreaper/orphanstate"
)

// fuzzInput decodes arbitrary bytes into a planner input over a small key
// space, so that collisions between desired, owned, protected and source
// keys are common.
func fuzzInput(data []byte) Input {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	keys := []string{"pr-1", "pr-2", "pr-3", "pr-4", "pr-5", "staging", "production", "keep-a", "qa", "ns-1", "ns-2", "ns-3"}
	srcNames := []string{"previews", "k8s", "gone"}
	cfg := baseConfig()
	cfg.Policy = []Policy{PolicySync, PolicyCreateOnly, PolicyDeleteOnly}[int(next())%3]
	cfg.MaxDeletes = int(next()%6) + 1
	cfg.MaxDeletePercent = float64(next()%101) + 1
	cfg.PercentMinOwned = int(next() % 8)
	cfg.OrphanGrace = time.Duration(next()%4) * time.Minute
	cfg.OrphanMinRuns = int(next()%3) + 1
	flags := next()
	cfg.NoGrace = flags&1 != 0
	cfg.ForceDeletes = flags&2 != 0

	in := Input{Config: cfg, Now: t0, ProjectEnvCount: int(next() % 16), Orphans: map[string]orphanstate.Record{}}
	if flags&4 != 0 {
		in.OrphanStateErr = "unavailable"
	}
	for _, s := range srcNames[:2] {
		b := next()
		in.Sources = append(in.Sources, SourceResult{Name: s, Items: int(b % 3), Complete: b&4 == 0, Failed: b&8 != 0, AllowEmpty: b&16 != 0})
	}
	for _, k := range keys {
		b := next()
		src := srcNames[int(b>>5)%3]
		if b&1 != 0 {
			in.Desired = append(in.Desired, Desired{Key: k, Name: k, Source: src})
		}
		if b&2 != 0 {
			var tags []string
			if b&4 != 0 {
				tags = append(tags, []string{"ldreaper", "LDREAPER", "other"}[int(b>>3)%3])
			}
			if b&8 == 0 {
				tags = append(tags, ProvenanceTag("ldreaper", src))
			}
			in.Existing = append(in.Existing, ldclient.Environment{Key: k, Tags: tags, Critical: b&16 != 0})
		}
		if o := next(); o&1 != 0 {
			in.Orphans[k] = orphanstate.Record{FirstSeen: t0.Add(-time.Duration(o>>1) * time.Minute), Runs: int(o % 4)}
		}
	}
	if in.ProjectEnvCount < len(in.Existing) {
		in.ProjectEnvCount = len(in.Existing)
	}
	return in
}

func FuzzCalculateInvariants(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 5, 50, 0, 0, 0, 4, 1, 1, 3, 0, 7, 0, 6, 0, 2, 0})
	f.Add([]byte("\x00\x01\x64\x02\x01\x02\x03\x0f\x01\x01\x06\x07\x06\x06\x26\x26\x46\x46\x06\x06\x06\x06"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzInput(data)
		p := Calculate(in)
		cfg := in.Config
		desired := map[string]bool{}
		for _, d := range in.Desired {
			desired[d.Key] = true
		}
		owned := map[string]ldclient.Environment{}
		for _, e := range in.Existing {
			if e.HasTag(cfg.ManagedTag) {
				owned[e.Key] = e
			}
		}
		sources := map[string]SourceResult{}
		for _, s := range in.Sources {
			sources[s.Name] = s
		}
		for _, a := range p.Deletes {
			env, ok := owned[a.Key]
			switch {
			case !ok:
				t.Fatalf("delete of %q, which lacks the managed tag or does not exist", a.Key)
			case desired[a.Key]:
				t.Fatalf("delete of %q, which a source wants", a.Key)
			case env.Critical:
				t.Fatalf("delete of critical %q", a.Key)
			case contains(cfg.SourceEnvironments, a.Key):
				t.Fatalf("delete of the source environment %q", a.Key)
			case matchesAny(cfg.Protected, a.Key):
				t.Fatalf("delete of protected %q", a.Key)
			case cfg.Policy == PolicyCreateOnly:
				t.Fatalf("delete of %q under create-only", a.Key)
			case in.OrphanStateErr != "" && !cfg.NoGrace:
				t.Fatalf("delete of %q without orphan state", a.Key)
			}
			for _, tag := range env.Tags {
				name, ok := strings.CutPrefix(strings.ToLower(tag), "ldreaper-src.")
				if !ok {
					continue
				}
				s, configured := sources[name]
				if !configured || s.Failed || !s.Complete || (s.Items == 0 && !s.AllowEmpty) {
					t.Fatalf("delete of %q on behalf of unhealthy or unknown source %q (%+v)", a.Key, name, s)
				}
			}
			if !cfg.NoGrace {
				rec := p.OrphanUpserts[a.Key]
				if in.Now.Sub(rec.FirstSeen) < cfg.OrphanGrace || rec.Runs < cfg.OrphanMinRuns {
					t.Fatalf("delete of %q inside orphan grace (%+v)", a.Key, rec)
				}
			}
		}
		if n := len(p.Deletes); n > 0 && !cfg.ForceDeletes {
			if n > cfg.MaxDeletes {
				t.Fatalf("%d deletes over max_deletes %d", n, cfg.MaxDeletes)
			}
			if len(owned) >= cfg.PercentMinOwned && float64(n)*100 > cfg.MaxDeletePercent*float64(len(owned)) {
				t.Fatalf("%d of %d deletes over max_delete_percent %g", n, len(owned), cfg.MaxDeletePercent)
			}
		}
		if len(p.Deletes) > 0 && in.ProjectEnvCount-len(p.Deletes) < 1 {
			t.Fatalf("plan deletes the last environment: %d of %d", len(p.Deletes), in.ProjectEnvCount)
		}
		for _, a := range p.Creates {
			if !desired[a.Key] || cfg.Policy == PolicyDeleteOnly || matchesAny(cfg.Protected, a.Key) {
				t.Fatalf("forbidden create %q", a.Key)
			}
			for _, e := range in.Existing {
				if e.Key == a.Key {
					t.Fatalf("create of existing key %q", a.Key)
				}
			}
		}
		// Every owned orphan and every desired key is accounted for exactly once.
		seen := map[string]int{}
		for _, a := range append(append(append([]Action(nil), p.Creates...), p.Deletes...), p.Held...) {
			seen[fmt.Sprintf("%s %s", a.Op, a.Key)]++
		}
		for k, n := range seen {
			if n != 1 {
				t.Fatalf("%s appears %d times in the plan", k, n)
			}
		}
	})
}
