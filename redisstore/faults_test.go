package redisstore

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/logbuf"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/wxtest"
)

// faultReplica returns a wxtoken Client of wxtest's default account that
// reaches the fake in process and shares st. Waits are bounded: a fetch gives
// up after 5 s and a lock lapses after 2 s.
func faultReplica(t *testing.T, fake *wxtest.Server, st *Store, opts ...wxtoken.Option) *wxtoken.Client {
	t.Helper()
	base := []wxtoken.Option{
		wxtoken.WithBaseURL(fake.URL()),
		wxtoken.WithHTTPClient(fake.Client()),
		wxtoken.WithStore(st),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)),
		wxtoken.WithFetchTimeout(5 * time.Second),
		wxtoken.WithLockLease(2 * time.Second),
	}
	c, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestFaultRedisRestartedMidRenewal restarts Redis (which persists nothing)
// while a renewal is inside WeChat, then keeps it down for a whole renewal,
// then brings it back: a token is served throughout, WeChat is called once per
// renewal, and once Redis is back the replicas share through it again.
func TestFaultRedisRestartedMidRenewal(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	st := New(rs.NewClient(t))
	fake := wxtest.NewHandler()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	logs := &logbuf.Buffer{}
	a := faultReplica(t, fake, st, wxtoken.WithLogger(logs.Logger(slog.LevelDebug)), wxtoken.WithRejectGuard(0),
		wxtoken.WithStoreSync(20*time.Millisecond))
	first, err := a.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, fake.TokenCalls())

	// 1. A renewal holds the lock and is inside WeChat when Redis restarts,
	// empty: its save reaches the new Redis.
	hold := fake.Hold(wxtest.PathToken)
	defer hold.Release()
	type result struct {
		tok string
		err error
	}
	renewed := make(chan result, 1)
	go func() {
		tok, err := a.Invalidate(ctx, first)
		renewed <- result{tok, err}
	}()
	select {
	case <-hold.Waiting():
	case <-ctx.Done():
		require.FailNow(t, "the renewal never reached WeChat")
	}
	rs.Stop()
	rs.Restart()
	hold.Release()
	r := <-renewed
	require.NoError(t, r.err)
	second := r.tok
	require.NotEqual(t, first, second)
	assert.Equal(t, second, fake.CurrentToken(wxtest.DefaultAppID))
	// The token is handed out before it is saved.
	require.Eventually(t, func() bool {
		stored, err := st.Load(ctx, wxtest.DefaultAppID)
		return err == nil && stored.AccessToken == second
	}, 5*time.Second, 5*time.Millisecond, "the save went to the restarted Redis")

	// 2. Redis is down for a whole renewal: no lock, no store, yet a token.
	rs.Stop()
	third, err := a.Invalidate(ctx, second)
	require.NoError(t, err)
	require.NotEqual(t, second, third)
	for range 100 {
		tok, err := a.Get(ctx)
		require.NoError(t, err)
		require.Equal(t, third, tok, "the token is served from memory")
	}
	assert.Equal(t, 3, fake.TokenCalls())
	// The save follows the answer: its warning comes a moment later.
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "saving the token failed; serving it from memory")
	}, 5*time.Second, 5*time.Millisecond)
	assert.Contains(t, logs.String(), "fetching without its lock")

	// 3. Redis is back, empty. The first replica's store sync puts its cached
	// token back, so that a replica starting now takes it instead of fetching
	// one that would supersede it; the next renewal saves and reaches every
	// replica through Redis.
	rs.Restart()
	require.Eventually(t, func() bool {
		tok, err := st.Load(ctx, wxtest.DefaultAppID)
		return err == nil && tok.AccessToken == third
	}, 5*time.Second, 10*time.Millisecond, "the cached token never went back into the restarted Redis")
	b := faultReplica(t, fake, New(rs.NewClient(t)), wxtoken.WithStoreSync(20*time.Millisecond))
	tok, err := b.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, third, tok)
	assert.Zero(t, b.Stats().Fetches)

	fourth, err := a.Invalidate(ctx, third)
	require.NoError(t, err)
	require.NotEqual(t, third, fourth)
	require.Eventually(t, func() bool {
		stored, err := st.Load(ctx, wxtest.DefaultAppID)
		return err == nil && stored.AccessToken == fourth
	}, 5*time.Second, 5*time.Millisecond, "the first renewal after the restart saves")
	require.Eventually(t, func() bool {
		tok, err := b.Get(ctx)
		return err == nil && tok == fourth
	}, 5*time.Second, 10*time.Millisecond, "the second replica never synced to the renewed token")
	assert.Zero(t, b.Stats().Fetches)

	c := faultReplica(t, fake, New(rs.NewClient(t)))
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			tok, err := c.Get(ctx)
			assert.NoError(t, err)
			assert.Equal(t, fourth, tok)
		})
	}
	wg.Wait()
	assert.Zero(t, c.Stats().Fetches)
	assert.Equal(t, 4, fake.TokenCalls(), "one fetch per renewal, none for the replicas")
	assert.Equal(t, wxtest.CodeOK, fake.CheckToken(fourth))

	all := logs.String()
	assert.NotContains(t, all, wxtest.DefaultSecret)
	for _, tok := range []string{first, second, third, fourth} {
		assert.NotContains(t, all, tok)
	}
}
