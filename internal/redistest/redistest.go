// Package redistest starts a private redis-server for tests, and for the
// benchmarks' programs through Launch.
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
	// launchAttempts bounds how many ports Launch tries: another process may
	// take the port between our probe and redis-server's bind.
	launchAttempts = 5
	// readyTimeout bounds the wait for a freshly started server to answer PING.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds the wait after SIGTERM before SIGKILL.
	stopTimeout = 5 * time.Second
)

// ErrNotInstalled is matched by Launch's error when redis-server is not on
// PATH (and by LaunchCluster's when redis-cli is not either), so that callers
// can skip what needs Redis with a clear message.
var ErrNotInstalled = errors.New("redistest: redis-server not found on PATH")

// Process is one redis-server on a free port of 127.0.0.1 that persists
// nothing. It needs no testing.TB, so that programs such as the benchmarks'
// figures command can run one; tests use Start. Its methods are safe for
// concurrent use.
type Process struct {
	bin   string
	dir   string
	port  int
	conf  string                           // a config file, read first; "" for none
	extra []string                         // more arguments for redis-server, such as a cluster's
	logf  func(format string, args ...any) // nil: Stop reports nothing

	mu  sync.Mutex
	run *run // nil while stopped
}

// run is one run of redis-server.
type run struct {
	cmd  *exec.Cmd
	out  *logbuf.Buffer // os/exec writes it from its own goroutine
	done chan struct{}  // closed when the process has exited and been reaped
}

// Launch starts redis-server on a free port of 127.0.0.1 with dir as its
// working folder, into which it writes nothing, and returns once the server
// answers PING. The caller must Stop it. The error matches ErrNotInstalled when
// redis-server is not on PATH.
func Launch(dir string) (*Process, error) { return launch(dir, nil) }

// launch is Launch with more arguments for redis-server: extra, when not nil,
// returns them for each attempt, so that they may name ports of their own.
func launch(dir string, extra func() ([]string, error)) (*Process, error) {
	return launchConf(dir, "", extra)
}

// launchConf is launch with a config file, which redis-server reads before
// the arguments (a sentinel needs one it can rewrite).
func launchConf(dir, conf string, extra func() ([]string, error)) (*Process, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	p := &Process{bin: bin, dir: dir, conf: conf}
	var lastErr error
	for range launchAttempts {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("redistest: pick a port: %w", err)
		}
		p.port = port
		if extra != nil {
			if p.extra, err = extra(); err != nil {
				return nil, fmt.Errorf("redistest: pick a port: %w", err)
			}
		}
		if lastErr = p.start(); lastErr == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("redistest: redis-server did not start after %d attempts: %w", launchAttempts, lastErr)
}

// Addr returns the server's address, "127.0.0.1:port". It stays the same
// across Stop and Restart.
func (p *Process) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited within a
// few seconds. It returns once the process has exited, and is idempotent.
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return
	}
	r := p.run
	p.run = nil
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	// A paused server only acts on SIGTERM once it runs again.
	_ = r.cmd.Process.Signal(resumeSignal)
	select {
	case <-r.done:
		return
	case <-time.After(stopTimeout):
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	if p.logf != nil {
		p.logf("redistest: redis-server on %s ignored SIGTERM and was killed", p.Addr())
	}
}

// Kill ends the server with SIGKILL, as a crash or a lost host would: it
// saves nothing and tells nobody. It returns once the process has exited, and
// is idempotent; Restart starts the server again.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return
	}
	r := p.run
	p.run = nil
	_ = r.cmd.Process.Kill()
	<-r.done
}

// Restart starts the server again on the same port and folder, after Stop,
// and returns once it answers PING. It does nothing when the server is
// running.
func (p *Process) Restart() error {
	p.mu.Lock()
	running := p.run != nil
	p.mu.Unlock()
	if running {
		return nil
	}
	if err := p.start(); err != nil {
		return fmt.Errorf("redistest: restart redis-server on %s: %w", p.Addr(), err)
	}
	return nil
}

// ErrNotRunning is matched by the error of Pause, Resume and Pid while the
// server is stopped.
var ErrNotRunning = errors.New("redistest: redis-server is not running")

// Pid returns the process id of the running redis-server.
func (p *Process) Pid() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return 0, ErrNotRunning
	}
	return p.run.cmd.Process.Pid, nil
}

// Pause stops the server with SIGSTOP, as a host that hangs or swaps would:
// the kernel still accepts connections on its port, but nothing answers them
// until Resume. Stop works on a paused server.
func (p *Process) Pause() error { return p.signal(pauseSignal) }

// Resume lets a paused server run again with SIGCONT; it answers what was
// sent to it meanwhile.
func (p *Process) Resume() error { return p.signal(resumeSignal) }

func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return fmt.Errorf("redistest: signal %v to %s: %w", sig, p.Addr(), ErrNotRunning)
	}
	if err := p.run.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("redistest: signal %v to %s: %w", sig, p.Addr(), err)
	}
	return nil
}

// Server is a Process owned by a test: Start stops it when the test ends, and
// its Restart fails the test instead of returning an error.
type Server struct {
	*Process
	t testing.TB
}

// skipNotice prints, once per test binary, that the Redis tests are skipped.
var skipNotice sync.Once

// Start starts a redis-server for t and stops it when t ends. It skips t when
// redis-server is not installed, unless the environment variable CI is set,
// in which case it fails t.
func Start(t testing.TB) *Server {
	t.Helper()
	p, err := Launch(t.TempDir())
	skipIfNotInstalled(t, err, "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	p.logf = t.Logf // before anything else can see p
	t.Cleanup(p.Stop)
	return &Server{Process: p, t: t}
}

// skipIfNotInstalled skips t when err says that program, a part of Redis, is
// not installed, or fails it when the environment variable CI is set.
func skipIfNotInstalled(t testing.TB, err error, program string) {
	t.Helper()
	if !errors.Is(err, ErrNotInstalled) {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%v, and CI is set: install it (.ci/run does so with apt-get)", err)
	}
	skipNotice.Do(func() {
		// go test shows a skip only with -v: say it once where anyone sees it.
		fmt.Fprintf(os.Stderr, "redistest: %s not installed; the Redis tests are skipped (apt-get install redis-server)\n", program)
	})
	t.Skip(program + " not installed; install it to run the Redis tests (CI fails instead of skipping)")
}

// Restart starts the server again on the same port and folder, after Stop. It
// fails the test if the server cannot start; it does nothing when the server is
// running.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.Process.Restart(); err != nil {
		s.t.Fatal(err)
	}
}

// Pause stops the server with SIGSTOP until Resume (or the end of the test),
// failing the test if it cannot.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.Process.Pause(); err != nil {
		s.t.Fatal(err)
	}
}

// Resume lets a paused server run again, failing the test if it cannot.
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.Process.Resume(); err != nil {
		s.t.Fatal(err)
	}
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

// start runs redis-server on p.port and waits until it answers PING.
func (p *Process) start() error {
	var args []string
	if p.conf != "" {
		args = append(args, p.conf) // redis-server takes a config file only as its first argument
	}
	args = append(args,
		"--port", strconv.Itoa(p.port),
		"--bind", "127.0.0.1",
		"--protected-mode", "yes",
		"--save", "",
		"--appendonly", "no",
		"--dir", p.dir,
		"--loglevel", "warning",
	)
	cmd := exec.Command(p.bin, append(args, p.extra...)...)
	out := &logbuf.Buffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.bin, err)
	}
	r := &run{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(r.done)
	}()
	if err := waitReady(p.Addr(), r); err != nil {
		_ = cmd.Process.Kill()
		<-r.done
		return fmt.Errorf("%w; redis-server said: %s", err, strings.TrimSpace(out.String()))
	}
	p.mu.Lock()
	p.run = r
	p.mu.Unlock()
	return nil
}

// waitReady polls addr with PING until it answers, r exits, or readyTimeout
// passes. Polling is the only way to learn that another process is ready to
// serve.
func waitReady(addr string, r *run) error {
	deadline := time.Now().Add(readyTimeout)
	delay := 5 * time.Millisecond
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", readyTimeout, err)
		}
		select {
		case <-r.done:
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
// before redis-server binds it, so Launch retries when somebody else wins it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
