// Package redistest runs a real redis-server for integration tests.
//
// miniredis covers the unit tests, but only a real server shows how the
// lease and the orphan store behave when Redis crashes and comes back empty.
// Tests skip when redis-server is not installed, unless
// LDREAPER_REQUIRE_REDIS=1 (set by CI), which turns the skip into a failure
// so a missing install step cannot pass silently.
package redistest

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startupTimeout bounds how long Start and Restart wait for PING; a healthy
// redis-server answers in milliseconds, so this only guards against hangs.
const startupTimeout = 10 * time.Second

// Server is one redis-server process bound to a loopback port that stays the
// same across Restart.
type Server struct {
	t      testing.TB
	binary string
	port   int
	dir    string

	mu     sync.Mutex
	cmd    *exec.Cmd
	output *lockedBuffer
}

// Start launches redis-server on a free 127.0.0.1 port without persistence,
// waits until it answers PING, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	binary, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("LDREAPER_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server not installed and LDREAPER_REQUIRE_REDIS=1: %v", err)
		}
		t.Skip("redis-server not installed")
	}
	s := &Server{t: t, binary: binary, port: freePort(t), dir: t.TempDir()}
	t.Cleanup(s.Stop)
	s.launch()
	return s
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL is a redis:// URL for database 0, the form the config file uses.
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Stop kills the server without letting it shut down cleanly, the way a
// crash or an OOM kill would, and waits for the process to exit. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait() // a killed process reports "signal: killed"; that is the point
	s.cmd = nil
}

// Restart stops the server if it runs and starts a new one on the same port.
// Without persistence the new server starts empty, as after a crash.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.launch()
}

func (s *Server) launch() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	output := &lockedBuffer{}
	cmd := exec.Command(s.binary,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
	)
	cmd.Stdout = output
	cmd.Stderr = output
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server on port %d: %v", s.port, err)
	}
	s.cmd, s.output = cmd, output
	if err := waitForPing(s.Addr(), startupTimeout); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		s.cmd = nil
		s.t.Fatalf("redis-server on port %d never answered PING: %v\nserver output:\n%s", s.port, err, output.String())
	}
}

// freePort asks the kernel for an unused port. Another process could take
// it before redis-server binds it; on loopback in a test run that is rare
// enough, and Start then fails loudly rather than testing the wrong server.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitForPing(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // polling a child process's startup; no event to wait on
	}
}

func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(reply) != "+PONG" {
		return &unexpectedReplyError{reply: reply}
	}
	return nil
}

type unexpectedReplyError struct{ reply string }

func (e *unexpectedReplyError) Error() string {
	return "unexpected PING reply " + strconv.Quote(e.reply)
}

// lockedBuffer collects the server's output, written by exec's copying
// goroutines while a failing test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
