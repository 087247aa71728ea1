// Package redistest starts a private redis-server for tests.
//
// Each Server listens on a free port of 127.0.0.1, keeps its (empty) working
// folder in the test's temporary directory, persists nothing, and is stopped
// when the test ends. When redis-server is not on PATH the test is skipped, or
// failed when the CI environment variable is set, so that CI cannot silently
// skip the Redis tests.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

const (
	// startAttempts bounds how many ports Start tries: another process may take
	// the port between our probe and redis-server's bind.
	startAttempts = 5
	// readyTimeout bounds the wait for a freshly started server to answer PING.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds the wait after SIGTERM before SIGKILL.
	stopTimeout = 5 * time.Second
)

// Server is one redis-server process owned by a test. Its methods are safe for
// concurrent use.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	out  *logbuf.Buffer // os/exec writes it from its own goroutine
	done chan struct{}  // closed when the process has exited and been reaped
}

// Start starts a redis-server for t and stops it when t ends. It skips t when
// redis-server is not installed, unless the environment variable CI is set,
// in which case it fails t.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redistest: redis-server not found on PATH, and CI is set: install it (.ci/run does so with apt-get): %v", err)
		}
		t.Skip("redis-server not installed; install it to run the Redis tests (CI fails instead of skipping)")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: pick a port: %v", err)
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("redistest: redis-server did not start after %d attempts: %v", startAttempts, lastErr)
	return nil
}

// Addr returns the server's address, "127.0.0.1:port". It stays the same
// across Stop and Restart.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// NewClient returns a go-redis client of the server, closed when t ends.
// Command retries are off and it dials once per attempt, so that while the
// server is stopped commands fail at once instead of after go-redis's five
// dials 100 ms apart. It skips the maintenance-notifications handshake, which
// Redis 7.0 does not know.
func (s *Server) NewClient(t testing.TB) *redis.Client {
	rdb := redis.NewClient(&redis.Options{
		Addr:                     s.Addr(),
		MaxRetries:               -1,
		DialerRetries:            1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited within a
// few seconds. It is idempotent, and runs by itself when the test ends.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	p := s.proc
	s.proc = nil
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	s.t.Logf("redistest: redis-server on %s ignored SIGTERM and was killed", s.Addr())
}

// Restart starts the server again on the same port and folder, after Stop. It
// fails the test if the server cannot start; it does nothing when the server is
// running.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if running {
		return
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart redis-server on %s: %v", s.Addr(), err)
	}
}

// start runs redis-server on s.port and waits until it answers PING.
func (s *Server) start() error {
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--protected-mode", "yes",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--loglevel", "warning",
	)
	out := &logbuf.Buffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := s.waitReady(p); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%w; redis-server said: %s", err, strings.TrimSpace(out.String()))
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls the server with PING until it answers, exits, or
// readyTimeout passes. Polling is the only way to learn that another process
// is ready to serve.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	delay := 5 * time.Millisecond
	for {
		err := ping(s.Addr())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", readyTimeout, err)
		}
		select {
		case <-p.done:
			return errors.New("redis-server exited during start")
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// ping sends one PING in the inline protocol and expects +PONG.
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
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected reply to PING: %q", line)
	}
	return nil
}

// freePort asks the kernel for a free loopback port. The port is released
// before redis-server binds it, so Start retries when somebody else wins it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
