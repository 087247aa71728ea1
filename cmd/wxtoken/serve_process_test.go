package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

// The real binary, built once per test run for the tests that start it as
// a process, as systemd would.
var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
	binaryDir  string
)

// builtBinary returns the path of the wxtoken command built from this
// package, building it on first use.
func builtBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "wxtoken-e2e-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "wxtoken")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, binaryErr)
	return binaryPath
}

// removeBuiltBinaryAndExit deletes the binary once every test has run and
// exits with code, as goleak.Cleanup wants of it.
func removeBuiltBinaryAndExit(code int) {
	if binaryDir != "" {
		_ = os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// requireTool returns the path of a program the test runs, skipping the
// test when it is not installed, unless CI is set: then it fails.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed, and CI is set: install it (.ci/run does so with apt-get)", name)
		}
		t.Skipf("%s is not installed; install it to run this test (CI fails instead of skipping)", name)
	}
	return path
}

// serveProc is a running `wxtoken serve`.
type serveProc struct {
	cmd    *exec.Cmd
	url    string // http://127.0.0.1:PORT
	stderr *logbuf.Buffer
	done   chan struct{}
	err    error // the exit, once done is closed
}

var listeningLine = regexp.MustCompile(`^wxtoken serve: listening on (https?://\S+)$`)

// startServe writes config to a private file and starts `wxtoken serve` on
// it with env as its whole environment, waiting for the listening line.
func startServe(t *testing.T, config string, env ...string) *serveProc {
	t.Helper()
	bin := builtBinary(t)
	path := filepath.Join(t.TempDir(), "serve.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	p := &serveProc{stderr: &logbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "--config", path)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case line := <-lines:
		m := listeningLine.FindStringSubmatch(line)
		require.NotNil(t, m, "first line %q; stderr:\n%s", line, p.stderr)
		p.url = m[1]
	case <-p.done:
		t.Fatalf("wxtoken serve exited (%v) before listening; stderr:\n%s", p.err, p.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("wxtoken serve did not listen within a minute; stderr:\n%s", p.stderr)
	}
	return p
}

// terminate sends SIGTERM.
func (p *serveProc) terminate(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
}

// wait waits for the process to exit, failing the test after a minute.
func (p *serveProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("wxtoken serve did not exit within a minute of SIGTERM; stderr:\n%s", p.stderr)
		return nil
	}
}

// stop ends the process if a test left it running, and requires a clean exit.
func (p *serveProc) stop(t *testing.T) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(t); err != nil {
			t.Errorf("wxtoken serve exited with %v; stderr:\n%s", err, p.stderr)
		}
	}
}

// waitFor polls cond until it holds, failing the test after timeout. It is
// for watching another process, whose progress no channel reports.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a real process, not synchronising goroutines
	}
}

// serveConfig is a configuration against the fake WeChat at wxURL: the
// default Official Account as "shop", its jsapi ticket, a WeCom credential,
// and the clients given (name → key hash and the credentials it may read).
func serveConfig(wxURL, store string, clients map[string][2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\nwechat_base_url: %s\nwecom_base_url: %s\n%s\n", wxURL, wxURL, store)
	b.WriteString(`timeouts: {shutdown: 50s}
credentials:
  shop: {type: official_account, appid: ` + appID + `, secret_env: SHOP_APPSECRET}
  shop-jsapi: {type: jsapi_ticket, token: shop}
  corp: {type: wecom, corp_id: ww0123456789abcdef, secret_env: CORP_SECRET}
clients:
`)
	for name, c := range clients {
		fmt.Fprintf(&b, "  %s: {key_hash: %q, credentials: [%s], rate_limit: {per_second: 10000, burst: 10000}}\n", name, c[0], c[1])
	}
	return b.String()
}

// serveEnv is the environment holding the fake's secrets.
var serveEnv = []string{"SHOP_APPSECRET=" + secret, "CORP_SECRET=Cs0123456789abcdefghijklmnopqrstuvwxyzABCDE"}
