package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
)

// These tests use go-redis's default options, as most users will: with them
// a command to a Redis that hangs waits 5 s and more whatever its context
// says, and a TLS client dialling a plain server 25 s. The bound must come
// from the Store. Wall-clock assertions are generous upper bounds; the
// assertions that matter are on the error.

// hangBound is what a call may take with the default timeout before a test
// calls it hung: the timeout plus room for a loaded machine.
const hangBound = DefaultTimeout + 500*time.Millisecond

// storeOp is one kind of Store call.
type storeOp struct {
	name string
	run  func(ctx context.Context, st *Store) error
}

func storeOps(tok wxtoken.Token) []storeOp {
	return []storeOp{
		{"load", func(ctx context.Context, st *Store) error { _, err := st.Load(ctx, "wxapp1"); return err }},
		{"save", func(ctx context.Context, st *Store) error { return st.Save(ctx, "wxapp1", tok) }},
		{"lock", func(ctx context.Context, st *Store) error {
			unlock, err := st.Lock(ctx, "wxapp1", time.Minute)
			if err == nil {
				_ = unlock(ctx)
			}
			return err
		}},
	}
}

// defaultClient returns a go-redis client with default options for addr.
func defaultClient(t *testing.T, opt *redis.Options) *redis.Client {
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// timed runs op with a context that has no deadline and reports how long it took.
func timed(t *testing.T, st *Store, op storeOp) (time.Duration, error) {
	began := time.Now()
	err := op.run(t.Context(), st)
	took := time.Since(began)
	t.Logf("%s took %v: %v", op.name, took.Round(time.Millisecond), err)
	return took, err
}

func TestCallsToAPausedRedisEndAtTheTimeout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := New(defaultClient(t, &redis.Options{Addr: srv.Addr()}))
	tok := tokenAt(time.Now(), secretToken)
	require.NoError(t, st.Save(t.Context(), "wxapp1", tok))
	unlock, err := st.Lock(t.Context(), "held", time.Minute)
	require.NoError(t, err)

	srv.Pause() // Stop, at the end of the test, ends a paused server too
	ops := append(storeOps(tok), storeOp{"unlock", func(ctx context.Context, _ *Store) error { return unlock(ctx) }})
	for _, op := range ops {
		took, err := timed(t, st, op)
		require.ErrorIs(t, err, context.DeadlineExceeded, op.name)
		assert.Contains(t, err.Error(), "redisstore: "+op.name)
		assert.Contains(t, err.Error(), "redis did not answer within 1s")
		assert.NotContains(t, err.Error(), secretToken)
		assert.Less(t, took, hangBound, op.name)
	}

	srv.Resume()
	st.inflight.Wait() // what was given up on ends once Redis answers
	got, err := st.Load(t.Context(), "wxapp1")
	require.NoError(t, err)
	assert.Equal(t, secretToken, got.AccessToken)
}

func TestCallsToAPlainRedisWithATLSClientEndAtTheTimeout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := New(defaultClient(t, &redis.Options{
		Addr:      srv.Addr(),
		TLSConfig: &tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS12},
	}))
	for _, op := range storeOps(tokenAt(time.Now(), secretToken)) {
		took, err := timed(t, st, op)
		require.ErrorIs(t, err, context.DeadlineExceeded, op.name)
		assert.Contains(t, err.Error(), "redisstore: "+op.name)
		assert.Less(t, took, hangBound, op.name)
	}
	st.inflight.Wait()
}

func TestCallsToARefusingRedisEndByTheTimeout(t *testing.T) {
	t.Parallel()
	redistest.Start(t) // skips, or fails under CI, without redis-server, like its siblings
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	st := New(defaultClient(t, &redis.Options{Addr: addr}))
	for _, op := range storeOps(tokenAt(time.Now(), secretToken)) {
		took, err := timed(t, st, op)
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED),
			"%s: want a refusal or the timeout, got %v", op.name, err)
		assert.Less(t, took, hangBound, op.name)
	}
	st.inflight.Wait()
}

// A caller's earlier deadline wins over the Store's timeout, and its
// cancellation ends a call at once.
func TestCallsEndWithTheCallersContext(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := New(defaultClient(t, &redis.Options{Addr: srv.Addr()}), WithTimeout(time.Hour))
	require.NoError(t, st.Save(t.Context(), "wxapp1", tokenAt(time.Now(), "tok-1")))
	srv.Pause()

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := st.Load(ctx, "wxapp1")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotContains(t, err.Error(), "within", "the caller's deadline came first")

	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	_, err = st.Load(ctx, "wxapp1")
	require.ErrorIs(t, err, context.Canceled)
	srv.Resume()
	st.inflight.Wait()
}

func TestWithTimeoutKeepsTheDefaultForNonPositive(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for d, want := range map[time.Duration]time.Duration{
		0: DefaultTimeout, -time.Second: DefaultTimeout, 250 * time.Millisecond: 250 * time.Millisecond,
	} {
		assert.Equal(t, want, New(rdb, WithTimeout(d)).timeout, "WithTimeout(%v)", d)
	}
}

// A panic inside the Redis client (a user's hook, say) becomes the call's
// error instead of ending the process from the Store's goroutine.
func TestPanicInTheClientIsAnError(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.NewClient(t)
	rdb.AddHook(panicHook{})
	st := New(rdb)
	_, err := st.Load(t.Context(), "wxapp1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the Redis client panicked")
	assert.NotContains(t, err.Error(), secretToken)
}

// panicHook panics in every command, with a value that quotes a secret.
type panicHook struct{}

func (panicHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (panicHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { panic("boom " + secretToken) }
}
func (panicHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
