package wxtoken_test

// Whole-system tests of the cross-process protocol: several Clients (standing
// for replicas or processes) share one Store that locks, and WeChat is the
// wxtest fake. They check what the fleet as a whole promises: one fetch per
// token, a dead lock holder costing at most its lease, newest token wins,
// Redis trouble never taking Get down, no secret in Redis, renewals reaching
// the other replicas without fetches of their own.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/logbuf"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
	"github.com/wxtoken/wxtoken/wxtest"
)

const (
	appID  = wxtest.DefaultAppID
	secret = wxtest.DefaultSecret

	replicas       = 4
	callersPerPeer = 100
)

// newReplica returns a Client on store that calls the in-process fake srv,
// and closes it when t ends.
func newReplica(t testing.TB, srv *wxtest.Server, store wxtoken.Store, opts ...wxtoken.Option) *wxtoken.Client {
	t.Helper()
	base := []wxtoken.Option{
		wxtoken.WithStore(store),
		wxtoken.WithBaseURL(srv.URL()),
		wxtoken.WithHTTPClient(srv.Client()),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)),
	}
	c, err := wxtoken.New(appID, secret, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// getAll calls Get from n goroutines per client, all released at once, and
// returns every token received. It fails t on any error.
func getAll(t *testing.T, clients []*wxtoken.Client, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		mu    sync.Mutex
		got   []string
		errs  []error
	)
	for _, c := range clients {
		for range n {
			wg.Go(func() {
				<-start
				tok, err := c.Get(ctx)
				mu.Lock()
				defer mu.Unlock()
				got = append(got, tok)
				if err != nil {
					errs = append(errs, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.Len(t, got, len(clients)*n)
	return got
}

func totalFetches(clients []*wxtoken.Client) int64 {
	var n int64
	for _, c := range clients {
		n += c.Stats().Fetches
	}
	return n
}

// requireAll asserts every element of got is want.
func requireAll(t *testing.T, want string, got []string) {
	t.Helper()
	require.NotEmpty(t, want)
	for i, tok := range got {
		require.Equal(t, want, tok, "caller %d got another token", i)
	}
}

func TestRedisReplicasFetchOnce(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	srv := wxtest.NewHandler()
	clients := make([]*wxtoken.Client, replicas)
	for i := range clients {
		// Each replica has its own connection pool, as separate processes would.
		st := redisstore.New(rs.NewClient(t), redisstore.WithPrefix("fleet:"))
		clients[i] = newReplica(t, srv, st)
	}

	got := getAll(t, clients, callersPerPeer)

	assert.Equal(t, 1, srv.TokenCalls(), "the fleet must fetch once")
	assert.Equal(t, int64(1), totalFetches(clients))
	requireAll(t, srv.CurrentToken(appID), got)
	for _, c := range clients {
		wxtoken.WaitIdle(c) // tokens are handed out before they are saved
	}
	stored, err := redisstore.New(rs.NewClient(t), redisstore.WithPrefix("fleet:")).Load(t.Context(), appID)
	require.NoError(t, err)
	assert.Equal(t, got[0], stored.AccessToken)
}

func TestRedisDeadLockHolderDelaysAtMostTheLease(t *testing.T) {
	t.Parallel()
	const lease = 500 * time.Millisecond
	for _, tc := range []struct {
		name string
		key  string
		opts []wxtoken.Option
		hits func(*wxtest.Server) int
	}{
		{"token", appID, nil, (*wxtest.Server).TokenCalls},
		{"stable", appID + ".stable", []wxtoken.Option{wxtoken.WithStableToken()}, (*wxtest.Server).StableCalls},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := redistest.Start(t)
			srv := wxtest.NewHandler()
			st := redisstore.New(rs.NewClient(t))
			// A holder that takes the lock and dies: its connection goes, so
			// nothing renews its lease, and unlock is never called.
			holderRdb := rs.NewClient(t)
			unlockDead, err := redisstore.New(holderRdb).Lock(t.Context(), tc.key, lease)
			require.NoError(t, err)
			require.NoError(t, holderRdb.Close())
			defer func() { _ = unlockDead(context.Background()) }() // stops its renewal goroutine
			c := newReplica(t, srv, st, tc.opts...)

			began := time.Now()
			tok, err := c.Get(t.Context())
			took := time.Since(began)

			require.NoError(t, err)
			assert.NotEmpty(t, tok)
			assert.Equal(t, 1, tc.hits(srv))
			assert.Equal(t, int64(1), c.Stats().Fetches)
			// The Client must have waited for the dead holder's lock to lapse,
			// and not much longer: the lock poll backs off to at most 200 ms.
			assert.GreaterOrEqual(t, took, lease*9/10, "the Client did not wait for the lock")
			assert.Less(t, took, lease+1500*time.Millisecond, "the dead holder delayed the Client beyond its lease")
		})
	}
}

func TestRedisReplicaOlderTokenDoesNotReplaceNewer(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	srv := wxtest.NewHandler()
	stA := redisstore.New(rs.NewClient(t))
	stB := redisstore.New(rs.NewClient(t))
	a := newReplica(t, srv, stA, wxtoken.WithRejectGuard(0))
	b := newReplica(t, srv, stB, wxtoken.WithRejectGuard(0))
	ctx := t.Context()

	t1, err := a.Token(ctx)
	require.NoError(t, err)
	held, err := b.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, t1.AccessToken, held, "B must take A's token from Redis")
	require.Zero(t, b.Stats().Fetches)

	// B is told T1 was rejected and renews it.
	t2, err := b.Invalidate(ctx, t1.AccessToken)
	require.NoError(t, err)
	require.NotEqual(t, t1.AccessToken, t2)
	wxtoken.WaitIdle(b) // B hands T2 out before it saves it
	require.Equal(t, 2, srv.TokenCalls())

	// A saving its older token again must not win.
	err = stA.Save(ctx, appID, t1)
	require.ErrorIs(t, err, wxtoken.ErrNewerToken)
	stored, err := stA.Load(ctx, appID)
	require.NoError(t, err)
	assert.Equal(t, t2, stored.AccessToken)

	// And A, told in turn that T1 is bad, takes T2 from Redis without a fetch.
	got, err := a.Invalidate(ctx, t1.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, t2, got)
	assert.Equal(t, int64(1), a.Stats().Fetches)
	assert.Equal(t, 2, srv.TokenCalls())
}

func TestRedisDownKeepsServing(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	srv := wxtest.NewHandler()
	rdb := rs.NewClient(t)
	st := redisstore.New(rdb)
	ctx := t.Context()

	var logsA logbuf.Buffer
	// A re-reads the store often, so that its failing reads are seen below.
	a := newReplica(t, srv, st, wxtoken.WithLogger(logsA.Logger(slog.LevelDebug)), wxtoken.WithStoreSync(20*time.Millisecond))
	cached, err := a.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, srv.TokenCalls())

	rs.Stop()
	require.Eventually(t, func() bool {
		return strings.Contains(logsA.String(), "reading the store failed")
	}, 5*time.Second, 10*time.Millisecond, "A's store sync never met the stopped Redis")
	for i := range 1000 {
		tok, err := a.Get(ctx)
		require.NoError(t, err, "Get %d", i)
		require.Equal(t, cached, tok, "Get %d", i)
	}
	assert.Equal(t, 1, srv.TokenCalls(), "a cached token must not be fetched again")

	// A replica that starts while Redis is down has no token: it fetches one,
	// once for all its callers, and says why it could not use the store.
	var logsB logbuf.Buffer
	b := newReplica(t, srv, st, wxtoken.WithLogger(logsB.Logger(slog.LevelDebug)))
	got := getAll(t, []*wxtoken.Client{b}, 50)
	assert.Equal(t, 2, srv.TokenCalls())
	assert.Equal(t, int64(1), b.Stats().Fetches)
	requireAll(t, srv.CurrentToken(appID), got)
	warns := logsB.Warnings()
	require.NotEmpty(t, warns, "B must warn that the store is unavailable")
	assert.Contains(t, warns[0], "store")
	for _, logs := range []string{logsA.String(), logsB.String()} {
		assert.NotContains(t, logs, secret)
		assert.NotContains(t, logs, got[0])
		assert.NotContains(t, logs, cached)
	}

	// Redis is back (empty: it persists nothing). The store works again, and
	// replicas share through it once more.
	rs.Restart()
	require.Eventually(t, func() bool { return rdb.Ping(ctx).Err() == nil },
		5*time.Second, 10*time.Millisecond)
	c := newReplica(t, srv, st)
	fresh, err := c.Get(ctx)
	require.NoError(t, err)
	wxtoken.WaitIdle(c)
	stored, err := st.Load(ctx, appID)
	require.NoError(t, err)
	assert.Equal(t, fresh, stored.AccessToken)
	d := newReplica(t, srv, redisstore.New(rs.NewClient(t)))
	same, err := d.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, fresh, same)
	assert.Zero(t, d.Stats().Fetches)
	// A, which syncs often, moves to the token now in Redis by itself.
	require.Eventually(t, func() bool {
		tok, err := a.Get(ctx)
		return err == nil && tok == fresh
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(1), a.Stats().Fetches)
}

func TestRedisHoldsNoSecret(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	srv := wxtest.NewHandler()
	rdb := rs.NewClient(t)
	st := redisstore.New(rdb)
	ctx := t.Context()

	plain := newReplica(t, srv, st, wxtoken.WithRejectGuard(0))
	stable := newReplica(t, srv, st, wxtoken.WithStableToken())
	t1, err := plain.Get(ctx)
	require.NoError(t, err)
	t2, err := plain.Invalidate(ctx, t1)
	require.NoError(t, err)
	s1, err := stable.Get(ctx)
	require.NoError(t, err)
	wxtoken.WaitIdle(plain) // tokens are handed out before they are saved and unlocked
	wxtoken.WaitIdle(stable)
	require.Equal(t, 2, srv.TokenCalls())
	require.Equal(t, 1, srv.StableCalls())
	// A lock held right now, so that lock keys are looked at too.
	unlock, err := st.Lock(ctx, appID, time.Minute)
	require.NoError(t, err)
	defer func() { _ = unlock(context.Background()) }()

	var keys []string
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	require.NoError(t, iter.Err())
	tokenKey, stableKey := "wxtoken:{"+appID+"}", "wxtoken:{"+appID+".stable}"
	assert.ElementsMatch(t, []string{tokenKey, stableKey, tokenKey + ":lock"}, keys)
	for _, k := range keys {
		assert.NotContains(t, k, secret, "key %q", k)
		for _, tok := range []string{t1, t2, s1} {
			assert.NotContains(t, k, tok, "a key holds a token")
		}
		v, err := rdb.Get(ctx, k).Result()
		require.NoError(t, err, "key %q", k)
		assert.NotContains(t, v, secret, "the value of %q holds the app secret", k)
	}
	for k, want := range map[string]string{tokenKey: t2, stableKey: s1} {
		v, err := rdb.Get(ctx, k).Result()
		require.NoError(t, err)
		assert.Contains(t, v, want)
		ttl, err := rdb.TTL(ctx, k).Result()
		require.NoError(t, err)
		assert.Greater(t, ttl, time.Duration(0), "the token key %q must expire", k)
		assert.LessOrEqual(t, ttl, 7200*time.Second, "key %q", k)
	}
}

func TestRedisReplicaPicksUpRenewal(t *testing.T) {
	t.Parallel()
	const every = 200 * time.Millisecond
	rs := redistest.Start(t)
	srv := wxtest.NewHandler()
	a := newReplica(t, srv, redisstore.New(rs.NewClient(t)), wxtoken.WithRejectGuard(0))
	b := newReplica(t, srv, redisstore.New(rs.NewClient(t)), wxtoken.WithStoreSync(every))
	ctx := t.Context()

	t1, err := a.Get(ctx)
	require.NoError(t, err)
	held, err := b.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, t1, held)

	t2, err := a.Invalidate(ctx, t1)
	require.NoError(t, err)
	require.NotEqual(t, t1, t2)
	renewed := time.Now()

	require.Eventually(t, func() bool {
		tok, err := b.Get(ctx)
		return err == nil && tok == t2
	}, 10*every, every/10, "B never served A's renewed token")
	t.Logf("B served the renewed token %v after the renewal (sync interval %v)", time.Since(renewed), every)
	assert.Zero(t, b.Stats().Fetches, "B must not fetch")
	assert.Equal(t, 2, srv.TokenCalls())
}

// The same pick-up in fake time: B adopts the renewal no later than one sync
// interval after it, and fetches nothing.
func TestReplicaPicksUpRenewalWithinSyncInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = time.Minute
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		a := newReplica(t, srv, store, wxtoken.WithRejectGuard(0), wxtoken.WithStoreSync(0))
		b := newReplica(t, srv, store, wxtoken.WithStoreSync(every))
		ctx := t.Context()

		t1, err := a.Get(ctx)
		require.NoError(t, err)
		held, err := b.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, t1, held)

		time.Sleep(10 * time.Second) // fake time: the renewal comes later than T1
		t2, err := a.Invalidate(ctx, t1)
		require.NoError(t, err)
		require.NotEqual(t, t1, t2)

		time.Sleep(every)
		synctest.Wait()
		got, err := b.Get(ctx)
		require.NoError(t, err)
		assert.Equal(t, t2, got)
		assert.Zero(t, b.Stats().Fetches)
		assert.Equal(t, 2, srv.TokenCalls())
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
	})
}

func TestFileStoreReplicasFetchOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := wxtest.NewHandler()
	clients := make([]*wxtoken.Client, replicas)
	for i := range clients {
		// A FileStore each, as separate processes would have.
		st, err := wxtoken.NewFileStore(dir)
		require.NoError(t, err)
		clients[i] = newReplica(t, srv, st)
	}

	got := getAll(t, clients, callersPerPeer)

	assert.Equal(t, 1, srv.TokenCalls())
	assert.Equal(t, int64(1), totalFetches(clients))
	requireAll(t, srv.CurrentToken(appID), got)
}

// Environment of a TestHelperProcessClient child.
const (
	helperURLEnv = "WXTOKEN_TEST_HELPER_URL"
	helperDirEnv = "WXTOKEN_TEST_HELPER_DIR"
	helperReady  = "READY"
	helperToken  = "TOKEN="
)

func TestProcessesShareFileStore(t *testing.T) {
	t.Parallel()
	srv := wxtest.NewServer()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	children := make([]*child, replicas)
	for i := range children {
		children[i] = startChild(ctx, t, srv.URL(), dir)
	}
	// Every child has its Client; let them all call Get at the same moment.
	for _, c := range children {
		c.waitFor(t, helperReady)
	}
	for _, c := range children {
		_, err := c.stdin.Write([]byte{'\n'})
		require.NoError(t, err)
		require.NoError(t, c.stdin.Close())
	}
	var got []string
	for i, c := range children {
		line := c.waitFor(t, helperToken)
		got = append(got, strings.TrimPrefix(line, helperToken))
		require.NoError(t, c.wait(), "child %d failed; its stderr:\n%s", i, c.stderr.String())
	}

	assert.Equal(t, 1, srv.TokenCalls(), "the processes must fetch once between them")
	requireAll(t, srv.CurrentToken(appID), got)
	st, err := wxtoken.NewFileStore(dir)
	require.NoError(t, err)
	stored, err := st.Load(ctx, appID)
	require.NoError(t, err)
	assert.Equal(t, got[0], stored.AccessToken)
}

// child is one run of the test binary as TestHelperProcessClient.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr *bytes.Buffer
}

func startChild(ctx context.Context, t *testing.T, baseURL, dir string) *child {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcessClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperURLEnv+"="+baseURL, helperDirEnv+"="+dir, "GORACE=atexit_sleep_ms=0")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c := &child{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout), stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		// A child still running here means the test failed early; end it.
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return c
}

// waitFor reads the child's output up to the first line starting with prefix.
func (c *child) waitFor(t *testing.T, prefix string) string {
	t.Helper()
	var seen []string
	for c.lines.Scan() {
		if line := c.lines.Text(); strings.HasPrefix(line, prefix) {
			return line
		}
		seen = append(seen, c.lines.Text())
	}
	require.FailNow(t, "child ended before printing "+prefix,
		"stdout:\n%s\nscan error: %v\nstderr:\n%s", strings.Join(seen, "\n"), c.lines.Err(), c.stderr.String())
	return ""
}

// wait drains the child's output and waits for it to exit.
func (c *child) wait() error {
	for c.lines.Scan() {
	}
	return c.cmd.Wait()
}

// TestHelperProcessClient is not a test of its own: TestProcessesShareFileStore
// runs the test binary again with only this test, as one of several processes
// sharing a FileStore folder. It prints READY once its Client exists, waits
// for a line on stdin, calls Get and prints the token.
func TestHelperProcessClient(t *testing.T) {
	baseURL, dir := os.Getenv(helperURLEnv), os.Getenv(helperDirEnv)
	if baseURL == "" || dir == "" {
		t.Skip("runs only as a child process of TestProcessesShareFileStore")
	}
	st, err := wxtoken.NewFileStore(dir)
	require.NoError(t, err)
	// Its own transport, so that no idle connection outlives the test (goleak).
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c, err := wxtoken.New(appID, secret, wxtoken.WithStore(st), wxtoken.WithBaseURL(baseURL),
		wxtoken.WithHTTPClient(&http.Client{Transport: tr, Timeout: 10 * time.Second}),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer c.Close()

	fmt.Println(helperReady)
	_, err = bufio.NewReader(os.Stdin).ReadString('\n')
	require.NoError(t, err, "waiting for the go signal")
	tok, err := c.Get(t.Context())
	require.NoError(t, err)
	fmt.Println(helperToken + tok)
}
