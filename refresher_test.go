package wxtoken

import (
	"context"
	"encoding/json"
	"fmt"
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

// script answers the token endpoint from a function of the attempt number
// (1-based), counting attempts.
type script struct {
	calls atomic.Int64
	reply func(n int64) (*http.Response, error)
}

func (s *script) responder(req *http.Request) (*http.Response, error) {
	return s.reply(s.calls.Add(1))
}

func okToken(n int64, expiresIn int) (*http.Response, error) {
	return httpmock.NewStringResponse(200,
		fmt.Sprintf(`{"access_token":"token-%d","expires_in":%d}`, n, expiresIn)), nil
}

func apiErr(code int) (*http.Response, error) {
	return httpmock.NewStringResponse(200, fmt.Sprintf(`{"errcode":%d,"errmsg":"x"}`, code)), nil
}

// advance moves the bubble's fake clock by d and lets every goroutine settle.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// untilRenewal moves the clock to just before the earliest renewal of a 7200 s
// token (6870 s) and then a second at a time until the upstream sees call n, so
// that whatever the jitter, the test continues at the moment the renewal began.
func untilRenewal(t *testing.T, s *script, n int64) {
	t.Helper()
	advance(6869 * time.Second)
	advanceUntil(t, 40, func() bool { return s.calls.Load() >= n })
	require.Equal(t, n, s.calls.Load(), "the renewal started")
}

// advanceUntil moves the clock a second at a time, at most limit times, until
// done holds, and fails the test if it never does.
func advanceUntil(t *testing.T, limit int, done func() bool) {
	t.Helper()
	for i := 0; !done(); i++ {
		require.Less(t, i, limit, "the awaited state did not come")
		advance(time.Second)
	}
}

func mustGet(t *testing.T, c *Client) string {
	t.Helper()
	tok, err := c.Get(context.Background())
	require.NoError(t, err)
	return tok
}

func TestRenewsNearExpiryMinusMargin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
		c := newTestClient(t, newUpstream(t, s.responder))
		require.Equal(t, "token-1", mustGet(t, c))

		// The margin is 300 s plus a jitter of up to 30 s: renewal falls in [6870, 6900].
		advance(6869 * time.Second)
		assert.Equal(t, int64(1), s.calls.Load())
		assert.Equal(t, "token-1", mustGet(t, c))
		advance(32 * time.Second)
		assert.Equal(t, int64(2), s.calls.Load(), "one renewal, in the background")
		assert.Equal(t, "token-2", mustGet(t, c))

		// The second renewal comes at least 6870 s after the first, which came
		// no earlier than 6870 s: nothing more before 13740 s.
		advance(6830 * time.Second)
		assert.Equal(t, int64(2), s.calls.Load(), "the renewed token is renewed in its own time")
	})
}

func TestShortTokenRenewsAtHalfLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 345) }}
		c := newTestClient(t, newUpstream(t, s.responder))
		require.Equal(t, "token-1", mustGet(t, c))
		// margin = min(300, 345/2) = 172.5 s, plus up to 17 s: renewal in [155.5, 172.5].
		advance(155 * time.Second)
		assert.Equal(t, int64(1), s.calls.Load())
		advance(18 * time.Second)
		assert.Equal(t, int64(2), s.calls.Load())
	})
}

func TestGetDoesNotWaitForARenewalInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		s := &script{reply: func(n int64) (*http.Response, error) {
			if n == 2 {
				<-release
			}
			return okToken(n, 7200)
		}}
		c := newTestClient(t, newUpstream(t, s.responder))
		require.Equal(t, "token-1", mustGet(t, c))
		// Held for less than the fetch timeout: the renewal must still succeed.
		untilRenewal(t, s, 2)

		start := time.Now()
		for range 100 {
			assert.Equal(t, "token-1", mustGet(t, c))
		}
		assert.Zero(t, time.Since(start), "no Get waited")
		assert.Equal(t, int64(1), c.Stats().Waits, "only the cold start waited")
		close(release)
		synctest.Wait()
		assert.Equal(t, "token-2", mustGet(t, c))
	})
}

func TestRetryableFailureKeepsServingAndBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		s := &script{reply: func(n int64) (*http.Response, error) {
			if failing.Load() {
				return apiErr(CodeSystemBusy)
			}
			return okToken(n, 7200)
		}}
		c := newTestClient(t, newUpstream(t, s.responder))
		require.Equal(t, "token-1", mustGet(t, c))
		failing.Store(true)
		untilRenewal(t, s, 2) // the renewal starts, and fails
		// Backoff delays are 1, 2, 4, ... s stretched by up to half again:
		// attempts by 60 s after the first failure are at most 1+5 (1, 2, 4, 8, 16 s).
		for range 60 {
			advance(time.Second)
			assert.Equal(t, "token-1", mustGet(t, c), "the old token is served meanwhile")
		}
		attempts := s.calls.Load() - 1
		assert.GreaterOrEqual(t, attempts, int64(4))
		assert.LessOrEqual(t, attempts, int64(6))
		assert.Equal(t, attempts, c.Stats().FetchFailures)

		failing.Store(false)
		advance(2 * time.Minute)
		assert.NotEqual(t, "token-1", mustGet(t, c), "renewed once WeChat recovered")
	})
}

func TestFailingUpstreamIsNotHammered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(int64) (*http.Response, error) { return apiErr(CodeSystemBusy) }}
		c := newTestClient(t, newUpstream(t, s.responder))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		var failures atomic.Int64
		callers := 100
		if testing.Short() {
			callers = 10
		}
		for range callers {
			wg.Go(func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					if _, err := c.Get(ctx); err != nil && ctx.Err() == nil {
						failures.Add(1)
					}
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
				}
			})
		}
		wg.Wait()
		t.Logf("%d callers every 100 ms for 10 min: %d upstream attempts, %d failed calls",
			callers, s.calls.Load(), failures.Load())
		assert.LessOrEqual(t, s.calls.Load(), int64(20))
		assert.GreaterOrEqual(t, s.calls.Load(), int64(10), "retries continue at the capped pace")
		assert.Greater(t, failures.Load(), int64(1000), "callers got the shared failure")
	})
}

func TestPermanentErrorCoolsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(int64) (*http.Response, error) { return apiErr(CodeIPNotWhitelisted) }}
		c := newTestClient(t, newUpstream(t, s.responder))
		_, err := c.Get(context.Background())
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, CodeIPNotWhitelisted, apiErr.Code)

		for range 59 {
			advance(time.Second)
			_, err := c.Get(context.Background())
			require.ErrorAs(t, err, &apiErr, "the same error is shared during the cool-down")
			assert.Equal(t, CodeIPNotWhitelisted, apiErr.Code)
			assert.Contains(t, err.Error(), "not called again before")
		}
		assert.Equal(t, int64(1), s.calls.Load())
		advance(time.Second)
		_, err = c.Get(context.Background())
		require.Error(t, err)
		assert.Equal(t, int64(2), s.calls.Load(), "one attempt after the cool-down")

		// While the error repeats, the cool-down doubles: 2 min, then 4 min, ...
		advance(2*time.Minute - time.Second)
		_, err = c.Get(context.Background())
		require.Error(t, err)
		assert.Equal(t, int64(2), s.calls.Load())
		advance(time.Second)
		_, err = c.Get(context.Background())
		require.Error(t, err)
		assert.Equal(t, int64(3), s.calls.Load())
		for range 60 { // an hour later the cool-down has reached its 10-minute cap
			advance(time.Minute)
			_, _ = c.Get(context.Background())
		}
		assert.LessOrEqual(t, s.calls.Load(), int64(3+2+6), "4 and 8 min, then every 10 min")
	})
}

func TestPermanentFailureDuringRenewalKeepsTheValidToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(n int64) (*http.Response, error) {
			if n > 1 {
				return apiErr(CodeDailyQuota)
			}
			return okToken(n, 7200)
		}}
		c := newTestClient(t, newUpstream(t, s.responder))
		require.Equal(t, "token-1", mustGet(t, c))
		advance(6901 * time.Second)
		for range 4 {
			assert.Equal(t, "token-1", mustGet(t, c))
			advance(time.Minute)
		}
		// One attempt per cool-down minute, not one per caller.
		assert.LessOrEqual(t, s.calls.Load(), int64(1+5))
		advance(5 * time.Minute) // past expiry: now callers get the error
		_, err := c.Get(context.Background())
		assert.True(t, IsQuota(err), "got %v", err)
	})
}

func TestStaleTokenWithoutBackgroundRefreshIsRenewedByReaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
		c := newTestClient(t, newUpstream(t, s.responder), WithBackgroundRefresh(false))
		require.Equal(t, "token-1", mustGet(t, c))
		advance(7000 * time.Second)
		assert.Equal(t, int64(1), s.calls.Load(), "nothing runs between calls")
		assert.Equal(t, "token-1", mustGet(t, c), "the stale token is served at once")
		synctest.Wait()
		assert.Equal(t, int64(2), s.calls.Load())
		assert.Equal(t, "token-2", mustGet(t, c))
	})
}

func TestExpiredTokenMakesCallersWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
		c := newTestClient(t, newUpstream(t, s.responder), WithBackgroundRefresh(false))
		require.Equal(t, "token-1", mustGet(t, c))
		advance(7200 * time.Second)
		assert.Equal(t, "token-2", mustGet(t, c), "an expired token is never served")
	})
}

func TestStableTokenMode(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodPost, "https://api.weixin.qq.com/cgi-bin/stable_token",
		func(req *http.Request) (*http.Response, error) {
			assert.Equal(t, "application/json", req.Header.Get("Content-Type"))
			raw, _ := io.ReadAll(req.Body)
			var m map[string]any
			assert.NoError(t, json.Unmarshal(raw, &m))
			mu.Lock()
			bodies = append(bodies, m)
			mu.Unlock()
			return httpmock.NewStringResponse(200, `{"access_token":"stable-1","expires_in":7000}`), nil
		})
	store := NewMemoryStore()
	c := newTestClient(t, upstream{mt}, WithStableToken(), WithStore(store))
	tok, err := c.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "stable-1", tok.AccessToken)
	assert.Equal(t, int64(7000), tok.ExpiresIn)
	require.Len(t, bodies, 1)
	assert.Equal(t, map[string]any{
		"grant_type": "client_credential", "appid": testAppID, "secret": testSecret, "force_refresh": false,
	}, bodies[0])

	c.waitIdle() // the token is handed out before it is saved
	saved, err := store.Load(context.Background(), testAppID+".stable")
	require.NoError(t, err)
	assert.Equal(t, "stable-1", saved.AccessToken)
	_, err = store.Load(context.Background(), testAppID)
	assert.ErrorIs(t, err, ErrNotFound, "plain and stable tokens are kept apart")
}

func TestStoreSyncPicksUpAnotherReplicasToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		a := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
		ca := newTestClient(t, newUpstream(t, a.responder), WithStore(store))
		b := &script{reply: func(n int64) (*http.Response, error) { return okToken(100+n, 7200) }}
		cb := newTestClient(t, newUpstream(t, b.responder), WithStore(store))

		require.Equal(t, "token-1", mustGet(t, ca))
		require.Equal(t, "token-1", mustGet(t, cb), "b loads a's token from the store")
		advance(time.Hour)
		// a renews by hand, as if its own timers ran earlier.
		_, err := ca.Invalidate(context.Background(), "token-1")
		require.NoError(t, err)
		require.Equal(t, "token-2", mustGet(t, ca))
		advance(DefaultStoreSync)
		assert.Equal(t, "token-2", mustGet(t, cb), "b follows within one sync interval")
		assert.Zero(t, b.calls.Load(), "b never fetched")
	})
}

func TestStoreSyncPutsTheTokenBackIntoAnEmptyStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
		c := newTestClient(t, newUpstream(t, s.responder), WithStore(store))
		require.Equal(t, "token-1", mustGet(t, c))
		store.mu.Lock()
		clear(store.tokens) // the store lost everything, as a restarted Redis does
		store.mu.Unlock()

		advance(DefaultStoreSync)
		saved, err := store.Load(context.Background(), testAppID)
		require.NoError(t, err)
		assert.Equal(t, "token-1", saved.AccessToken)
		assert.Equal(t, int64(1), s.calls.Load())
	})
}
