package ldfake_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

func TestConcurrentCreatesAndDeletes(t *testing.T) {
	const workers, perWorker = 8, 25
	s := newServer(t, ldfake.Options{}, "production")
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				key := fmt.Sprintf("w%d-%d", w, i)
				if r := call(t, s, http.MethodPost, envsPath, writerToken, createBody(key, "eph")); r.status != http.StatusCreated {
					t.Errorf("create %s: %d %s", key, r.status, r.body)
				}
				call(t, s, http.MethodGet, envsPath+"?filter=tags:eph&limit=5", readerToken, "")
				if i%2 == 1 {
					if r := call(t, s, http.MethodDelete, envsPath+"/"+key, writerToken, ""); r.status != http.StatusNoContent {
						t.Errorf("delete %s: %d %s", key, r.status, r.body)
					}
				}
			}
		})
	}
	// Everyone races for the same key too: exactly one wins.
	statuses := make([]int, workers)
	for w := range workers {
		wg.Go(func() {
			statuses[w] = call(t, s, http.MethodPost, envsPath, writerToken, createBody("contested")).status
		})
	}
	wg.Wait()

	won := 0
	for _, st := range statuses {
		switch st {
		case http.StatusCreated:
			won++
		case http.StatusConflict:
		default:
			t.Errorf("contested create answered %d", st)
		}
	}
	if won != 1 {
		t.Errorf("%d creates of one key succeeded, want 1", won)
	}
	deleted := workers * (perWorker / 2)
	wantCount := 1 + 1 + workers*perWorker - deleted // production, contested, kept
	if got := len(s.Environments(project)); got != wantCount {
		t.Errorf("%d environments, want %d", got, wantCount)
	}
	page := decodePage(t, call(t, s, http.MethodGet, envsPath+"?filter=tags:eph&limit=1", readerToken, ""))
	if diff := cmp.Diff(wantCount-2, *page.TotalCount); diff != "" {
		t.Errorf("listed total (-want +got):\n%s", diff)
	}
	creates, deletes := 0, 0
	for _, m := range s.Mutations() {
		switch m.Op {
		case ldfake.OpCreate:
			creates++
		case ldfake.OpDelete:
			deletes++
		}
	}
	if creates != workers*perWorker+1 || deletes != deleted {
		t.Errorf("logged %d creates and %d deletes, want %d and %d", creates, deletes, workers*perWorker+1, deleted)
	}
}
