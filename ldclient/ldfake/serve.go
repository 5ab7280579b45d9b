package ldfake

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

const shutdownGrace = 5 * time.Second

// Serve listens on addr, which must be a loopback address (the fake checks no
// real credentials, so it must not be reachable from elsewhere); an empty
// host means 127.0.0.1. It serves until ctx is done, then shuts down
// gracefully, and returns the base URL to give the client.
func (s *Server) Serve(ctx context.Context, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("parsing listen address %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("listening on %q: the fake serves only on a loopback address", addr)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return "", fmt.Errorf("listening on %q: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests inherit ctx, so stalls and latency end when serving does
		// instead of holding up the shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	// Serve returns ErrServerClosed after the shutdown below, or a listener
	// error that leaves the caller with failing requests to notice.
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			_ = srv.Close() // graceful shutdown timed out; cut the rest
		}
	}()
	return "http://" + ln.Addr().String(), nil
}
