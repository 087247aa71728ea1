package wxtoken

// Regression tests for the fleet promise under attack: no quota drain, never
// stuck on a rejected token. Each test failed on the engine before the Store
// was read ahead of the gate and the lock, rejected tokens were remembered and
// their replacement backed off, and renewals were re-armed and rate-bounded.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

const businessURL = "https://api.weixin.qq.com/cgi-bin/message/custom/send"

// A business API that rejects every token, called every 5 s for a fake day
// through a Transport, costs a few dozen token fetches, not thousands, and
// every caller still gets WeChat's 40001 back at once.
func TestRejectingAPIDoesNotDrainTheQuota(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := countingTokens()
		up := newUpstream(t, s.responder)
		up.RegisterResponder(http.MethodPost, businessURL,
			httpmock.NewStringResponder(200, `{"errcode":40001,"errmsg":"invalid credential"}`))
		c := newTestClient(t, up)
		hc := NewHTTPClient(c, up)

		calls, rejected := 0, 0
		for end := time.Now().Add(24 * time.Hour); time.Now().Before(end); advance(5 * time.Second) {
			resp, err := hc.Post(businessURL, "application/json", strings.NewReader(`{}`))
			require.NoError(t, err)
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			calls++
			if strings.Contains(string(raw), "40001") {
				rejected++
			}
		}
		t.Logf("%d business calls, all rejected; %d token fetches in the day", calls, s.calls.Load())
		assert.Equal(t, calls, rejected, "callers get WeChat's answer")
		assert.LessOrEqual(t, s.calls.Load(), int64(50), "token fetches in a day")
		assert.Greater(t, s.calls.Load(), int64(5), "rejections still replace the token now and then")
	})
}

// failingSaves is a MemoryStore whose next Saves fail while fail is set.
type failingSaves struct {
	*MemoryStore
	fail atomic.Bool
}

func (s *failingSaves) Save(ctx context.Context, key string, tok Token) error {
	if s.fail.Load() {
		return errors.New("disk full")
	}
	return s.MemoryStore.Save(ctx, key, tok)
}

// After one failed Save the Store lags the cache, holding an older token that
// is still valid. A rejection of the cached token must fetch a new one, not
// end in ErrRejectedTooSoon by adopting the older token the rejected one
// superseded.
func TestInvalidateIsNotStuckOnAnOlderStoredToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := countingTokens()
		st := &failingSaves{MemoryStore: NewMemoryStore()}
		c := newTestClient(t, newUpstream(t, s.responder), WithStore(st))
		require.Equal(t, "token-1", mustGet(t, c))
		advance(time.Minute)

		st.fail.Store(true)
		tok, err := c.Invalidate(context.Background(), "token-1")
		require.NoError(t, err)
		require.Equal(t, "token-2", tok)
		c.waitIdle()
		st.fail.Store(false)
		advance(time.Minute)

		tok, err = c.Invalidate(context.Background(), "token-2")
		require.NoError(t, err, "the older token-1 in the Store is no cure for token-2")
		assert.Equal(t, "token-3", tok)
		assert.Equal(t, int64(3), s.calls.Load())
	})
}

// A rejected token dated ahead of the clock (a replica four minutes fast
// saved it) is replaced by one fetch, in the cache and in the Store.
func TestRejectedTokenDatedAheadIsReplacedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ahead := Token{AccessToken: "ahead", ExpiresIn: 7200, CreateTime: time.Now().Add(4 * time.Minute)}
		st := storeWith(t, ahead)
		s := countingTokens()
		c := newTestClient(t, newUpstream(t, s.responder), WithStore(st))
		require.Equal(t, "ahead", mustGet(t, c), "a token within the skew is served")
		require.Zero(t, s.calls.Load())

		tok, err := c.Invalidate(context.Background(), "ahead")
		require.NoError(t, err)
		assert.Equal(t, "token-1", tok)
		for range 20 {
			tok, err = c.Invalidate(context.Background(), "ahead")
			require.NoError(t, err)
			assert.Equal(t, "token-1", tok)
		}
		assert.Equal(t, int64(1), s.calls.Load(), "one fetch replaces it")
		c.waitIdle()
		stored, err := st.Load(context.Background(), testAppID)
		require.NoError(t, err)
		assert.Equal(t, "token-1", stored.AccessToken, "and the Store holds the replacement")
	})
}

// A token dated ahead is aged as if it were as old as the skew allows: one
// that WeChat has expired by now (the writer's clock ran four minutes fast) is
// not served as fresh, even with a one-minute renewal margin.
func TestTokenDatedAheadIsAgedByTheSkew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A stable token handed out now with 300 s left, saved by a replica
		// whose clock runs four minutes fast: WeChat expires it in 300 s.
		claimed := time.Now().Add(4 * time.Minute)
		st := storeWith(t, Token{AccessToken: "ahead", ExpiresIn: 300, CreateTime: claimed})
		s := countingTokens()
		c := newTestClient(t, newUpstream(t, s.responder), WithStore(st), WithRefreshBefore(time.Minute))
		require.Equal(t, "ahead", mustGet(t, c))
		advance(301 * time.Second) // past WeChat's expiry of the token
		assert.Equal(t, "token-1", mustGet(t, c), "the expired token is not served")
		assert.Equal(t, int64(1), s.calls.Load())
	})
}

// While the gate is shut after a permanent error (40164 on this host), a
// valid token that another replica put in the shared Store is served: only
// calling WeChat is gated.
func TestShutGateDoesNotHideTheStoredToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(int64) (*http.Response, error) { return apiErr(CodeIPNotWhitelisted) }}
		st := NewMemoryStore()
		c := newTestClient(t, newUpstream(t, s.responder), WithStore(st))
		_, err := c.Get(context.Background())
		require.True(t, IsPermanent(err), "got %v", err)

		advance(5 * time.Second) // inside the one-minute cool-down
		other := Token{AccessToken: "from-another-replica", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, st.Save(context.Background(), testAppID, other))
		assert.Equal(t, "from-another-replica", mustGet(t, c))
		assert.Equal(t, int64(1), s.calls.Load(), "WeChat is not called during the cool-down")
	})
}

// heldLocker is a MemoryStore whose Lock counts calls and, while hold is set,
// blocks until released.
type heldLocker struct {
	*MemoryStore
	locks   atomic.Int64
	hold    atomic.Bool
	waiting chan struct{}
	release chan struct{}
	failing atomic.Bool
}

func newHeldLocker() *heldLocker {
	return &heldLocker{MemoryStore: NewMemoryStore(), waiting: make(chan struct{}, 1), release: make(chan struct{})}
}

func (l *heldLocker) Lock(ctx context.Context, key string, lease time.Duration) (func(context.Context) error, error) {
	l.locks.Add(1)
	if l.failing.Load() {
		return nil, errors.New("CLUSTERDOWN the cluster is down")
	}
	if l.hold.Load() {
		l.waiting <- struct{}{}
		select {
		case <-l.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return func(context.Context) error { return nil }, nil
}

// A renewal that waited for the lock while store sync adopted another
// replica's token checks the cache after taking the lock, and does not fetch.
func TestRenewalAfterTheLockChecksTheCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := countingTokens()
		st := newHeldLocker()
		c := newTestClient(t, newUpstream(t, s.responder), WithStore(st), WithStoreSync(10*time.Second))
		require.Equal(t, "token-1", mustGet(t, c))

		st.hold.Store(true)
		advance(6869 * time.Second)
		advanceUntil(t, 40, func() bool { return len(st.waiting) == 1 }) // the renewal waits for the lock
		<-st.waiting
		other := Token{AccessToken: "from-another-replica", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, st.MemoryStore.Save(context.Background(), testAppID, other))
		advance(10 * time.Second) // store sync adopts it
		require.Equal(t, "from-another-replica", mustGet(t, c))

		close(st.release)
		synctest.Wait()
		assert.Equal(t, int64(1), s.calls.Load(), "no fetch after the lock: the cache has a fresh token")
		assert.Equal(t, "from-another-replica", mustGet(t, c))
	})
}

// Rejections inside the guard are refused without a lock round trip: what
// needs no lock is checked first.
func TestRejectionsInsideTheGuardTakeNoLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := countingTokens()
		st := newHeldLocker()
		c := newTestClient(t, newUpstream(t, s.responder), WithStore(st))
		require.Equal(t, "token-1", mustGet(t, c))
		locks := st.locks.Load()
		for range 1000 {
			_, err := c.Invalidate(context.Background(), "token-1")
			require.ErrorIs(t, err, ErrRejectedTooSoon)
		}
		assert.Equal(t, locks, st.locks.Load(), "no lock taken for a refused rejection")
		assert.Equal(t, "token-1", mustGet(t, c), "the token is still served")
	})
}

// Cold replicas with a valid token in the Store read it without taking the
// lock: locking is for fetching.
func TestColdReplicaReadsTheStoreWithoutTheLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newHeldLocker()
		tok := Token{AccessToken: "shared", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, st.MemoryStore.Save(context.Background(), testAppID, tok))
		s := countingTokens()
		for range 32 {
			c := newTestClient(t, newUpstream(t, s.responder), WithStore(st))
			assert.Equal(t, "shared", mustGet(t, c))
		}
		assert.Zero(t, st.locks.Load(), "lock round trips")
		assert.Zero(t, s.calls.Load())
	})
}

// A failure while the token is still fresh, followed by its stale timer
// firing while the gate is shut, still renews the token when the gate opens,
// without any caller asking: the postponed renewal is re-armed.
func TestRenewalPostponedByTheGateIsRearmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		s := &script{reply: func(n int64) (*http.Response, error) {
			if fail.Load() {
				return apiErr(CodeIPNotWhitelisted)
			}
			return okToken(n, 7200)
		}}
		c := newTestClient(t, newUpstream(t, s.responder))
		require.Equal(t, "token-1", mustGet(t, c))

		advance(6850 * time.Second)
		fail.Store(true)
		_, err := c.Invalidate(context.Background(), "token-1")
		require.True(t, IsPermanent(err), "got %v", err) // the gate shuts for a minute
		fail.Store(false)

		advance(150 * time.Second) // the stale timer fired while the gate was shut; it opened since
		assert.Equal(t, int64(3), s.calls.Load(), "the renewal ran when the gate opened")
		waits := c.Stats().Waits
		assert.Equal(t, "token-3", mustGet(t, c))
		assert.Equal(t, waits, c.Stats().Waits, "nobody waited")
	})
}

// An upstream that claims a one-second lifetime cannot make an idle Client
// fetch twice a second: background renewals stay at one a minute, and the
// implausible lifetime is logged.
func TestImplausibleLifetimeBoundsBackgroundRenewals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 1) }}
		logs := &logbuf.Buffer{}
		c := newTestClient(t, newUpstream(t, s.responder), WithLogger(logs.Logger(slog.LevelWarn)))
		mustGet(t, c)
		advance(10 * time.Second)
		assert.Equal(t, int64(1), s.calls.Load(), "fetches in 10 idle seconds")
		advance(10 * time.Minute)
		assert.LessOrEqual(t, s.calls.Load(), int64(12), "fetches in 10 idle minutes")
		assert.Contains(t, strings.Join(logs.Warnings(), "\n"), "expires_in=1")
	})
}

// WeChat's force-refresh limits are per account: replicas sharing a Store
// share one budget. A second replica's force within 30 s of the first one's is
// refused, and four replicas together force at most 20 times a day.
func TestForceRefreshBudgetIsSharedByTheFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &stableUpstream{}
		mt := httpmock.NewMockTransport()
		mt.RegisterResponder(http.MethodPost, "https://api.weixin.qq.com/cgi-bin/stable_token", up.responder)
		st := NewMemoryStore()
		var replicas []*Client
		for range 4 {
			replicas = append(replicas, newTestClient(t, upstream{mt}, WithStableToken(), WithStore(st)))
		}
		bad := mustGet(t, replicas[0])
		require.Equal(t, bad, mustGet(t, replicas[1]))
		advance(time.Minute)
		next, err := replicas[0].Invalidate(context.Background(), bad)
		require.NoError(t, err)
		replicas[0].waitIdle()
		require.Equal(t, int64(1), up.forced.Load())

		// Replica 1 learns of the rejection too, and takes replica 0's new
		// token from the Store; then WeChat rejects that one as well.
		got, err := replicas[1].Invalidate(context.Background(), bad)
		require.NoError(t, err)
		require.Equal(t, next, got)
		advance(DefaultRejectGuard)
		_, err = replicas[1].Invalidate(context.Background(), next)
		require.ErrorIs(t, err, ErrForceRefreshLimited, "booked by replica 0 moments ago")
		assert.Equal(t, int64(1), up.forced.Load())

		for end := time.Now().Add(24 * time.Hour); time.Now().Before(end); advance(5 * time.Minute) {
			for _, r := range replicas {
				tok, err := r.Get(context.Background())
				require.NoError(t, err)
				_, _ = r.Invalidate(context.Background(), tok)
				r.waitIdle()
			}
		}
		t.Logf("force refreshes in a day by 4 replicas: %d", up.forced.Load())
		assert.LessOrEqual(t, up.forced.Load(), int64(forcePerDay+1), "the first day's 20, plus the first one")
	})
}

// With a valid token cached, a renewal that cannot take the lock (a Redis
// failover) keeps serving it and tries again with backoff instead of fetching
// without the lock; a cold Client, with nothing to serve, does fetch, with a
// warning.
func TestRenewalWithoutTheLockKeepsServing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := countingTokens()
		st := newHeldLocker()
		logs := &logbuf.Buffer{}
		c := newTestClient(t, newUpstream(t, s.responder), WithStore(st), WithLogger(logs.Logger(slog.LevelWarn)))
		require.Equal(t, "token-1", mustGet(t, c))

		st.failing.Store(true)
		advance(6900 * time.Second) // past the renewal time
		advance(2 * time.Minute)    // retries keep failing
		assert.Equal(t, int64(1), s.calls.Load(), "no fetch without the lock while a valid token is cached")
		assert.Greater(t, st.locks.Load(), int64(3), "the lock is retried")
		assert.Equal(t, "token-1", mustGet(t, c))

		st.failing.Store(false)
		advance(2 * time.Minute)
		assert.Equal(t, int64(2), s.calls.Load(), "renewed once the lock works again")
		assert.Equal(t, "token-2", mustGet(t, c))

		st.failing.Store(true)
		cold := newTestClient(t, newUpstream(t, s.responder), WithStore(newHeldLocker()),
			WithLogger(logs.Logger(slog.LevelWarn)))
		cold.store.(*heldLocker).failing.Store(true)
		assert.Equal(t, "token-3", mustGet(t, cold), "nothing valid to serve: fetched without the lock")
		assert.Contains(t, strings.Join(logs.Warnings(), "\n"), "fetching without its lock")
	})
}

// A Client that renews concurrently with many rejections still fetches once.
func TestConcurrentRejectionsOfAnOldTokenFetchOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := countingTokens()
		c := newTestClient(t, newUpstream(t, s.responder))
		require.Equal(t, "token-1", mustGet(t, c))
		advance(time.Hour)
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
	})
}
