package ldfake_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

func TestFaultsStrike(t *testing.T) {
	tests := []struct {
		name        string
		faults      ldfake.Faults
		wantStatus  []int // any of
		wantFault   string
		wantCreated bool
		wantType    string
	}{
		{"none", ldfake.Faults{}, []int{201}, "", true, "application/json"},
		{"5xx before acting", ldfake.Faults{Error5xxBefore: 1}, []int{500, 502, 503}, ldfake.Fault5xxBefore, false, ""},
		{"500 after committing", ldfake.Faults{Error5xxAfter: 1}, []int{500}, ldfake.Fault5xxAfter, true, "application/json"},
		{"drop after committing", ldfake.Faults{DropAfter: 1}, []int{0}, ldfake.FaultDropAfter, true, ""},
		{"drop before acting", ldfake.Faults{Drop: 1}, []int{0}, ldfake.FaultDrop, false, ""},
		{"HTML 502", ldfake.Faults{HTML502: 1}, []int{502}, ldfake.FaultHTML502, false, "text/html"},
		{"drop wins over 5xx", ldfake.Faults{Drop: 1, Error5xxBefore: 1, HTML502: 1}, []int{0}, ldfake.FaultDrop, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, ldfake.Options{}, "production")
			s.SetFaults(tt.faults)
			r := call(t, s, http.MethodPost, envsPath, writerToken, createBody("pr-1"))
			if !slices.Contains(tt.wantStatus, r.status) {
				t.Errorf("status = %d (%s), want one of %v", r.status, r.body, tt.wantStatus)
			}
			if tt.wantType != "" && r.header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", r.header.Get("Content-Type"), tt.wantType)
			}
			_, created := s.Environment(project, "pr-1")
			if created != tt.wantCreated {
				t.Errorf("created = %t, want %t", created, tt.wantCreated)
			}
			if got := len(s.Mutations()); got != map[bool]int{false: 0, true: 1}[tt.wantCreated] {
				t.Errorf("%d mutations logged, want one per commit", got)
			}
			audit := s.Audit()
			if len(audit) != 1 || audit[0].Fault != tt.wantFault || audit[0].Status != r.status {
				t.Errorf("audit = %+v, want one entry with fault %q and status %d", audit, tt.wantFault, r.status)
			}
		})
	}
}

func TestFaultsAreDeterministicPerSeed(t *testing.T) {
	faults := ldfake.Faults{Error5xxBefore: 0.2, Drop: 0.1, HTML502: 0.1, Error5xxAfter: 0.1, DropAfter: 0.1}
	run := func(seed int64) []string {
		s := newServer(t, ldfake.Options{Seed: seed}, "production")
		s.SetFaults(faults)
		for range 80 {
			call(t, s, http.MethodGet, envsPath+"/production", readerToken, "")
		}
		var got []string
		for _, e := range s.Audit() {
			got = append(got, e.Fault+":"+http.StatusText(e.Status))
		}
		return got
	}
	first := run(7)
	if diff := cmp.Diff(first, run(7)); diff != "" {
		t.Errorf("same seed, different faults (-first +second):\n%s", diff)
	}
	if cmp.Equal(first, run(8)) {
		t.Error("seeds 7 and 8 gave the same fault sequence")
	}
	for _, fault := range []string{"", ldfake.Fault5xxBefore, ldfake.FaultDrop, ldfake.FaultHTML502, ldfake.Fault5xxAfter, ldfake.FaultDropAfter} {
		if !slices.ContainsFunc(first, func(s string) bool { return strings.HasPrefix(s, fault+":") }) {
			t.Errorf("fault %q never struck in 80 requests: %v", fault, first)
		}
	}
}

// A seeded fault sequence must not depend on how many ids were generated in
// between: creates and lists draw from a separate stream.
func TestFaultSequenceIndependentOfCreates(t *testing.T) {
	faults := ldfake.Faults{Error5xxBefore: 0.5}
	run := func(creates bool) []string {
		s := newServer(t, ldfake.Options{Seed: 3}, "production")
		s.SetFaults(faults)
		var got []string
		for i := range 20 {
			if creates {
				if _, err := s.Seed(project, ldfake.Environment{Key: envKeys("x", 20)[i]}); err != nil {
					t.Fatal(err)
				}
			}
			got = append(got, call(t, s, http.MethodGet, envsPath+"/production", readerToken, "").header.Get("Content-Type"))
		}
		return got
	}
	if diff := cmp.Diff(run(false), run(true)); diff != "" {
		t.Errorf("fault sequence changed with creates (-without +with):\n%s", diff)
	}
}

func TestDropClosesTheConnection(t *testing.T) {
	tests := []struct {
		name        string
		faults      ldfake.Faults
		wantDeleted bool
	}{
		{"before acting", ldfake.Faults{Drop: 1}, false},
		{"after acting", ldfake.Faults{DropAfter: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, ldfake.Options{}, "production", "pr-1")
			s.SetFaults(tt.faults)
			srv := httptest.NewServer(s)
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodDelete, srv.URL+envsPath+"/pr-1", nil)
			req.Header.Set("Authorization", writerToken)
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got a %d response, want the connection dropped", resp.StatusCode)
			}
			if _, exists := s.Environment(project, "pr-1"); exists == tt.wantDeleted {
				t.Errorf("pr-1 exists = %t, want deleted = %t", exists, tt.wantDeleted)
			}
		})
	}
}

func TestNoCodeErrors(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	s.SetFaults(ldfake.Faults{NoCodeErrors: true})
	r := call(t, s, http.MethodPost, envsPath, writerToken, `{"key":"bad key","name":"x","color":"F5A623"}`)
	want := `{"message":"Invalid request body: key \"bad key\" must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"}`
	if r.status != http.StatusBadRequest || string(r.body) != want {
		t.Errorf("got %d %s, want 400 %s", r.status, r.body, want)
	}
	if r := call(t, s, http.MethodGet, envsPath+"/nope", readerToken, ""); r.errorCode() != "not_found" {
		t.Errorf("404 body %s lost its code; only 400s should", r.body)
	}
}

func TestErrorBodiesCarryAnID(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	r := call(t, s, http.MethodGet, envsPath+"/nope", readerToken, "")
	if !strings.Contains(string(r.body), `"id":"`) {
		t.Errorf("error body %s has no id", r.body)
	}
}

func TestStallAndLatency(t *testing.T) {
	tests := []struct {
		name        string
		opts        ldfake.Options
		faults      ldfake.Faults
		timeout     time.Duration
		wantElapsed time.Duration
		wantStatus  int
		wantFault   string
	}{
		{"stall then answer", ldfake.Options{}, ldfake.Faults{Stall: 1, StallFor: time.Minute}, time.Hour, time.Minute, 200, ldfake.FaultStall},
		{"client gives up during a stall", ldfake.Options{}, ldfake.Faults{Stall: 1, StallFor: time.Minute}, 10 * time.Second, 10 * time.Second, 0, ldfake.FaultCanceled},
		{"latencies add up", ldfake.Options{Latency: 30 * time.Millisecond}, ldfake.Faults{Latency: 20 * time.Millisecond}, time.Hour, 50 * time.Millisecond, 200, ""},
		{"client gives up during latency", ldfake.Options{Latency: time.Minute}, ldfake.Faults{}, time.Second, time.Second, 0, ldfake.FaultCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newServer(t, tt.opts, "production")
				s.SetFaults(tt.faults)
				ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
				defer cancel()
				req := httptest.NewRequestWithContext(ctx, http.MethodGet, envsPath, nil)
				req.Header.Set("Authorization", readerToken)
				start := time.Now()
				status := serveRecovering(s, req)
				if elapsed := time.Since(start); elapsed != tt.wantElapsed {
					t.Errorf("took %v of fake time, want %v", elapsed, tt.wantElapsed)
				}
				audit := s.Audit()
				if status != tt.wantStatus || len(audit) != 1 || audit[0].Fault != tt.wantFault || audit[0].Status != tt.wantStatus {
					t.Errorf("status %d, audit %+v; want %d with fault %q", status, audit, tt.wantStatus, tt.wantFault)
				}
			})
		})
	}
}

// serveRecovering serves req and returns the status, or 0 when the handler
// aborted the connection.
func serveRecovering(h http.Handler, req *http.Request) (status int) {
	rec := httptest.NewRecorder()
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			status = 0
		}
	}()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func TestListLagHidesNewEnvironmentsFromListsOnly(t *testing.T) {
	clock := newClock()
	s := newServer(t, ldfake.Options{Now: clock.Now}, "production")
	s.SetFaults(ldfake.Faults{ListLag: 5 * time.Second})
	clock.Advance(time.Second)
	if r := call(t, s, http.MethodPost, envsPath, writerToken, createBody("pr-1")); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	s.SetFaults(ldfake.Faults{}) // the lag is fixed at creation
	steps := []struct {
		advance time.Duration
		want    []string
	}{
		{0, []string{"production"}},
		{4999 * time.Millisecond, []string{"production"}},
		{time.Millisecond, []string{"production", "pr-1"}},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		got := decodePage(t, call(t, s, http.MethodGet, envsPath, readerToken, ""))
		if diff := cmp.Diff(st.want, itemKeys(got.Items)); diff != "" {
			t.Errorf("step %d: listed keys (-want +got):\n%s", i, diff)
		}
		if r := call(t, s, http.MethodGet, envsPath+"/pr-1", readerToken, ""); r.status != http.StatusOK {
			t.Errorf("step %d: GET of the lagging environment = %d, want 200", i, r.status)
		}
	}
}

func TestShuffleOrderKeepsThePageSet(t *testing.T) {
	keys := envKeys("e", 30)
	s := newServer(t, ldfake.Options{}, keys...)
	s.SetFaults(ldfake.Faults{ShuffleOrder: true})
	got := itemKeys(decodePage(t, call(t, s, http.MethodGet, envsPath+"?limit=20", readerToken, "")).Items)
	if slices.Equal(got, keys[:20]) {
		t.Errorf("page order %v was not shuffled", got)
	}
	slices.Sort(got)
	if diff := cmp.Diff(keys[:20], got); diff != "" {
		t.Errorf("shuffled page holds other items (-want +got):\n%s", diff)
	}
}
