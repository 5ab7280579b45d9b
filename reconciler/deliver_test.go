package reconciler

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/ldreaper/ldreaper/sources"
)

// recordingDeliverer remembers what it was handed and can fail.
type recordingDeliverer struct {
	calls [][]sources.Delivery
	err   error
}

func (d *recordingDeliverer) DeliverSecrets(_ context.Context, ds []sources.Delivery) error {
	d.calls = append(d.calls, ds)
	return d.err
}

// deliveredLines is one line per delivery without the secrets themselves,
// plus whether each secret was present.
func deliveredLines(ds []sources.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, strings.Join([]string{d.Item.Name, d.EnvironmentKey, d.Project,
			yesNo(strings.HasPrefix(d.SDKKey, "sdk-")), yesNo(strings.HasPrefix(d.MobileKey, "mob-")), yesNo(len(d.ClientSideID) == 24)}, " "))
	}
	sort.Strings(out)
	return out
}

func TestRunOnceDeliversKeysOfLiveItems(t *testing.T) {
	// pr-1 exists (kept), pr-2 is created now, old is deleted; a second
	// source without delivery is never asked.
	h := newLDHarness(t, managed("pr-1", "previews"), managed("old", "previews"))
	w := h.client(t, writerToken)
	deliverer := &recordingDeliverer{}
	srcs := specs(stubSource{name: "previews", items: []string{"pr-1", "pr-2"}}, stubSource{name: "other", items: []string{"o-1"}})
	srcs[0].Deliverer = deliverer
	r := New(runConfig(), w, w, srcs, nil, zerolog.Nop(), nil)

	rep, err := r.RunOnce(t.Context(), RunOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(deliverer.calls) != 0 {
		t.Fatalf("a dry run delivered keys: %v", deliverer.calls)
	}

	if rep, err = r.RunOnce(t.Context(), RunOptions{}); err != nil {
		t.Fatalf("RunOnce: %v (%+v)", err, rep)
	}
	if len(deliverer.calls) != 1 {
		t.Fatalf("%d delivery calls, want 1", len(deliverer.calls))
	}
	want := []string{"pr-1 pr-1 proj yes yes yes", "pr-2 pr-2 proj yes yes yes"}
	if diff := cmp.Diff(want, deliveredLines(deliverer.calls[0])); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
}

func TestRunOnceDeliveryFailureIsASourceError(t *testing.T) {
	h := newLDHarness(t, managed("pr-1", "previews"))
	w := h.client(t, writerToken)
	deliverer := &recordingDeliverer{err: errors.New("secrets is forbidden")}
	srcs := specs(stubSource{name: "previews", items: []string{"pr-1"}})
	srcs[0].Deliverer = deliverer
	r := New(runConfig(), w, w, srcs, nil, zerolog.Nop(), nil)
	rep, err := r.RunOnce(t.Context(), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Sources[0].Error, "deliver SDK keys: secrets is forbidden") {
		t.Errorf("source error = %q", rep.Sources[0].Error)
	}
	if rep.ExitCode(false) != ExitError {
		t.Errorf("exit code %d, want 1", rep.ExitCode(false))
	}
	if strings.Contains(rep.Sources[0].Error, "sdk-") {
		t.Error("an SDK key leaked into the report")
	}
}

func TestRunOnceNoDeliveryForAFailedSource(t *testing.T) {
	h := newLDHarness(t, managed("pr-1", "previews"))
	w := h.client(t, writerToken)
	deliverer := &recordingDeliverer{}
	srcs := specs(stubSource{name: "previews", err: errors.New("forbidden")})
	srcs[0].Deliverer = deliverer
	r := New(runConfig(), w, w, srcs, nil, zerolog.Nop(), nil)
	if _, err := r.RunOnce(t.Context(), RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(deliverer.calls) != 0 {
		t.Errorf("delivered for a failed source: %v", deliverer.calls)
	}
}
