package wxtoken

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInvalidateOfAReplacedTokenMakesNoFetch(t *testing.T) {
	s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
	c := newTestClient(t, newUpstream(t, s.responder), WithRejectGuard(0))
	require.Equal(t, "token-1", mustGet(t, c))
	tok, err := c.Invalidate(context.Background(), "token-1")
	require.NoError(t, err)
	require.Equal(t, "token-2", tok)

	tok, err = c.Invalidate(context.Background(), "token-1")
	require.NoError(t, err)
	assert.Equal(t, "token-2", tok)
	assert.Equal(t, int64(2), s.calls.Load(), "a token already replaced costs no fetch")
}

func TestConcurrentInvalidateMakesOneFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
		c := newTestClient(t, newUpstream(t, s.responder))
		require.Equal(t, "token-1", mustGet(t, c))
		advance(time.Minute) // past the reject guard

		var wg sync.WaitGroup
		for range 1000 {
			wg.Go(func() {
				tok, err := c.Invalidate(context.Background(), "token-1")
				assert.NoError(t, err)
				assert.Equal(t, "token-2", tok)
			})
		}
		wg.Wait()
		assert.Equal(t, int64(2), s.calls.Load())
		assert.Equal(t, "token-2", mustGet(t, c))
	})
}

func TestInvalidateRightAfterAFetchIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
		c := newTestClient(t, newUpstream(t, s.responder))
		require.Equal(t, "token-1", mustGet(t, c))
		advance(5 * time.Second)

		for range 100 { // a business API that rejects everything, hammered
			_, err := c.Invalidate(context.Background(), "token-1")
			require.ErrorIs(t, err, ErrRejectedTooSoon)
			assert.NotContains(t, err.Error(), "token-1", "only a fingerprint of the token")
			assert.Contains(t, err.Error(), fingerprint("token-1"))
		}
		assert.Equal(t, int64(1), s.calls.Load(), "no fetch loop")
		assert.Equal(t, "token-1", mustGet(t, c), "the token is kept")

		advance(DefaultRejectGuard)
		tok, err := c.Invalidate(context.Background(), "token-1")
		require.NoError(t, err)
		assert.Equal(t, "token-2", tok)
	})
}

func TestInvalidateAdoptsANewerTokenFromTheSharedStore(t *testing.T) {
	store := NewMemoryStore()
	a := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
	ca := newTestClient(t, newUpstream(t, a.responder), WithStore(store), WithRejectGuard(0))
	b := &script{reply: func(n int64) (*http.Response, error) { return okToken(100+n, 7200) }}
	cb := newTestClient(t, newUpstream(t, b.responder), WithStore(store), WithRejectGuard(0))

	require.Equal(t, "token-1", mustGet(t, ca))
	require.Equal(t, "token-1", mustGet(t, cb))
	_, err := ca.Invalidate(context.Background(), "token-1")
	require.NoError(t, err)

	tok, err := cb.Invalidate(context.Background(), "token-1")
	require.NoError(t, err)
	assert.Equal(t, "token-2", tok, "b takes a's new token from the store")
	assert.Zero(t, b.calls.Load())
}

func TestInvalidateWithNothingCachedFetches(t *testing.T) {
	s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
	c := newTestClient(t, newUpstream(t, s.responder))
	tok, err := c.Invalidate(context.Background(), "some-old-token")
	require.NoError(t, err)
	assert.Equal(t, "token-1", tok)
	assert.Equal(t, int64(1), s.calls.Load())
}

// stableUpstream answers stable_token, handing back the current token in normal
// mode unless told to rotate, and a new one on force_refresh.
type stableUpstream struct {
	mu      sync.Mutex
	current string
	n       int
	forced  atomic.Int64
	normal  atomic.Int64
	rotate  bool // normal mode hands out a new token
}

func (s *stableUpstream) responder(req *http.Request) (*http.Response, error) {
	raw, _ := io.ReadAll(req.Body)
	var body stableRequest
	if err := json.Unmarshal(raw, &body); err != nil {
		return apiErr(47001)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if body.ForceRefresh {
		s.forced.Add(1)
	} else {
		s.normal.Add(1)
	}
	if s.current == "" || body.ForceRefresh || s.rotate {
		s.n++
		s.current = "stable-" + string(rune('a'-1+s.n))
	}
	return httpmock.NewStringResponse(200, `{"access_token":"`+s.current+`","expires_in":7200}`), nil
}

func newStableClient(t *testing.T, s *stableUpstream) *Client {
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodPost, "https://api.weixin.qq.com/cgi-bin/stable_token", s.responder)
	return newTestClient(t, upstream{mt}, WithStableToken())
}

func TestStableInvalidateUsesNormalModeFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &stableUpstream{}
		c := newStableClient(t, s)
		require.Equal(t, "stable-a", mustGet(t, c))
		advance(time.Minute)
		s.mu.Lock()
		s.rotate = true // someone else force-refreshed: normal mode now has a new token
		s.mu.Unlock()
		tok, err := c.Invalidate(context.Background(), "stable-a")
		require.NoError(t, err)
		assert.Equal(t, "stable-b", tok)
		assert.Zero(t, s.forced.Load(), "no force refresh when normal mode has a new token")
	})
}

func TestStableInvalidateForcesAtMostOncePer30s(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &stableUpstream{}
		c := newStableClient(t, s)
		require.Equal(t, "stable-a", mustGet(t, c))
		advance(time.Minute)

		tok, err := c.Invalidate(context.Background(), "stable-a")
		require.NoError(t, err)
		assert.Equal(t, "stable-b", tok, "normal mode handed back the rejected token: forced")
		assert.Equal(t, int64(1), s.forced.Load())
		assert.Equal(t, int64(1), c.Stats().ForceRefreshes)

		advance(DefaultRejectGuard) // past the guard, within 30 s of the force
		_, err = c.Invalidate(context.Background(), "stable-b")
		require.ErrorIs(t, err, ErrForceRefreshLimited)
		assert.Equal(t, int64(1), s.forced.Load())
		assert.Equal(t, "stable-b", mustGet(t, c), "the token is kept")

		advance(30 * time.Second)
		tok, err = c.Invalidate(context.Background(), "stable-b")
		require.NoError(t, err)
		assert.Equal(t, "stable-c", tok)
		assert.Equal(t, int64(2), s.forced.Load())
	})
}

func TestStableForceRefreshDailyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &stableUpstream{}
		c := newStableClient(t, s)
		bad := mustGet(t, c)
		for range forcePerDay {
			advance(forceInterval)
			tok, err := c.Invalidate(context.Background(), bad)
			require.NoError(t, err)
			bad = tok
		}
		advance(forceInterval)
		_, err := c.Invalidate(context.Background(), bad)
		require.ErrorIs(t, err, ErrForceRefreshLimited)
		assert.Contains(t, err.Error(), "20 force refreshes in the last 24 h")
		assert.Equal(t, int64(forcePerDay), s.forced.Load())

		advance(24 * time.Hour)
		_, err = c.Invalidate(context.Background(), bad)
		require.NoError(t, err, "the day's allowance comes back")
	})
}
