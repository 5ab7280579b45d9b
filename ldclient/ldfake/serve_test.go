package ldfake_test

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ldreaper/ldreaper/ldclient/ldfake"
)

func TestServeAnswersUntilCancelled(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	base, err := s.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("base URL %q, want http://127.0.0.1:PORT", base)
	}
	req, _ := http.NewRequest(http.MethodGet, base+envsPath+"/production", nil)
	req.Header.Set("Authorization", readerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}

	cancel()
	// Shutdown runs in the background; the bound only limits a broken test.
	addr := strings.TrimPrefix(base, "http://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after the context was cancelled")
		}
		runtime.Gosched()
	}
}

func TestServeEndsStallsOnCancel(t *testing.T) {
	s := newServer(t, ldfake.Options{}, "production")
	s.SetFaults(ldfake.Faults{Stall: 1, StallFor: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	base, err := s.Serve(ctx, ":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, base+envsPath, nil)
		req.Header.Set("Authorization", readerToken)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a stalled request got an answer after shutdown")
		}
	case <-time.After(30 * time.Second): // only a broken shutdown gets here
		t.Fatal("a stalled request held up the shutdown")
	}
}

func TestServeOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "10.1.2.3:0", "example.com:0", "[::]:0", "no-port"} {
		if _, err := ldfake.New(ldfake.Options{}).Serve(t.Context(), addr); err == nil {
			t.Errorf("Serve(%q) succeeded, want a loopback-only error", addr)
		}
	}
}
