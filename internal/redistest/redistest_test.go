package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStartAnswersPingOnLoopback(t *testing.T) {
	s := Start(t)
	require.NoError(t, ping(s.Addr()))
	assert.Regexp(t, `^127\.0\.0\.1:\d+$`, s.Addr())
}

func TestStopThenRestartKeepsAddress(t *testing.T) {
	s := Start(t)
	addr := s.Addr()

	s.Stop()
	require.Error(t, ping(addr), "server must be down after Stop")
	s.Stop() // idempotent

	s.Restart()
	assert.Equal(t, addr, s.Addr())
	require.NoError(t, ping(addr))
	s.Restart() // no-op while running
	require.NoError(t, ping(addr))
}

func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	require.NotEqual(t, a.Addr(), b.Addr())
	a.Stop()
	require.NoError(t, ping(b.Addr()))
}

func TestNewClientFailsAtOnceWhileStopped(t *testing.T) {
	s := Start(t)
	rdb := s.NewClient(t)
	require.NoError(t, rdb.Set(t.Context(), "k", "v", 0).Err())

	s.Stop()
	began := time.Now()
	err := rdb.Get(t.Context(), "k").Err()
	took := time.Since(began)
	require.Error(t, err)
	// go-redis's defaults would retry and redial for several hundred ms.
	assert.Less(t, took, 250*time.Millisecond, "the client retried against a stopped server")

	s.Restart()
	require.NoError(t, rdb.Ping(t.Context()).Err())
}

func TestLaunchStopRestartWithoutTB(t *testing.T) {
	Start(t) // skips, or fails under CI, when redis-server is missing
	p, err := Launch(t.TempDir())
	require.NoError(t, err)
	defer p.Stop()
	addr := p.Addr()
	require.NoError(t, ping(addr))

	p.Stop()
	require.Error(t, ping(addr), "server must be down after Stop")
	p.Stop() // idempotent
	require.NoError(t, p.Restart())
	assert.Equal(t, addr, p.Addr())
	require.NoError(t, ping(addr))
	require.NoError(t, p.Restart(), "no-op while running")
}

func TestRestartThatCannotStartReturnsError(t *testing.T) {
	Start(t)
	dir := filepath.Join(t.TempDir(), "work")
	require.NoError(t, os.Mkdir(dir, 0o700))
	p, err := Launch(dir)
	require.NoError(t, err)
	defer p.Stop()
	p.Stop()
	require.NoError(t, os.Remove(dir)) // redis-server exits when it cannot enter its folder

	err = p.Restart()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "restart redis-server on "+p.Addr())
	assert.Contains(t, err.Error(), "redis-server exited during start")
	require.Error(t, ping(p.Addr()))
}

func TestLaunchWithoutRedisIsErrNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	p, err := Launch(t.TempDir())
	require.ErrorIs(t, err, ErrNotInstalled)
	assert.Nil(t, p)
}

// recordingTB stops at Skip and Fatal like a testing.T, and records which was called.
type recordingTB struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	fatal   string
}

func (r *recordingTB) Skip(args ...any) {
	r.mu.Lock()
	r.skipped = fmt.Sprint(args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// startWithout runs Start with an empty PATH in its own goroutine, as the
// testing package does, so that Skip and Fatal can end it.
func startWithout(t *testing.T, ci string) *recordingTB {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", ci)
	r := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(r)
		r.Fatalf("Start returned without redis-server")
	}()
	<-done
	return r
}

func TestMissingRedisSkipsOutsideCI(t *testing.T) {
	r := startWithout(t, "")
	assert.Contains(t, r.skipped, "redis-server not installed")
	assert.Empty(t, r.fatal)
}

func TestMissingRedisFailsInCI(t *testing.T) {
	r := startWithout(t, "true")
	assert.Contains(t, r.fatal, "redis-server not found")
	assert.Empty(t, r.skipped)
}

// pingWithin sends PING and waits at most d for the answer.
func pingWithin(addr string, d time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	_, err = bufio.NewReader(conn).ReadString('\n')
	return err
}

func TestPauseAcceptsButDoesNotAnswerUntilResume(t *testing.T) {
	s := Start(t)
	pid, err := s.Pid()
	require.NoError(t, err)
	assert.Positive(t, pid)

	s.Pause()
	err = pingWithin(s.Addr(), 100*time.Millisecond)
	var nerr net.Error
	require.ErrorAs(t, err, &nerr, "a paused server must leave the client waiting")
	assert.True(t, nerr.Timeout(), "want a timeout, got %v", err)

	s.Resume()
	require.NoError(t, ping(s.Addr()))
}

func TestStopEndsAPausedServerWithoutKill(t *testing.T) {
	Start(t) // skips, or fails under CI, when redis-server is missing
	p, err := Launch(t.TempDir())
	require.NoError(t, err)
	var logs []string
	p.logf = func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }
	require.NoError(t, p.Pause())
	p.Stop()
	assert.Empty(t, logs, "SIGTERM must reach a paused server")
	require.Error(t, ping(p.Addr()))

	_, err = p.Pid()
	require.ErrorIs(t, err, ErrNotRunning)
	require.ErrorIs(t, p.Pause(), ErrNotRunning)
	require.ErrorIs(t, p.Resume(), ErrNotRunning)
}
