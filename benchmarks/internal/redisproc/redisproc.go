// Package redisproc starts a private redis-server on a loopback port for the
// benchmarks, and stops it again. It persists nothing and binds 127.0.0.1 only.
package redisproc

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotInstalled is matched by Start's error when redis-server is not on PATH,
// so that callers can skip the Redis figures with a clear message.
var ErrNotInstalled = errors.New("redisproc: redis-server not found on PATH (apt-get install redis-server)")

const (
	readyTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
)

// Server is one running redis-server.
type Server struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
}

// Start runs redis-server on a free port of 127.0.0.1 and returns once it
// answers PING. Stop it with Stop.
func Start() (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	var lastErr error
	// Another process may take the port between our probe and the server's
	// bind, hence a few attempts.
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s, err := start(bin, port)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("redisproc: redis-server did not start: %w", lastErr)
}

func start(bin string, port int) (*Server, error) {
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", os.TempDir()) // nothing is written there: no save, no AOF
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(); err != nil {
		_ = cmd.Process.Kill()
		<-s.done
		return nil, err
	}
	return s, nil
}

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Stop ends the server: SIGTERM, then SIGKILL after a few seconds. It waits for
// the process to exit.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// waitReady polls with PING: there is no other way to learn that another
// process is ready to serve.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	delay := 5 * time.Millisecond
	for {
		err := ping(s.addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", readyTimeout, err)
		}
		select {
		case <-s.done:
			return errors.New("redis-server exited during start")
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
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
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("unexpected reply to PING: %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
