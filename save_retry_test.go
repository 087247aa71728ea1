package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

// rotatingSource issues tokens that carry a new refresh token each time, as an
// Open Platform authorizer with rotation does.
type rotatingSource struct {
	mu sync.Mutex
	n  int
}

func (s *rotatingSource) Fetch(ctx context.Context, req FetchRequest) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return Token{AccessToken: "access-" + strings.Repeat("x", s.n), ExpiresIn: 7200,
		Refresh: "refresh-" + strings.Repeat("r", s.n)}, nil
}

// flakySaves is a MemoryStore whose next saves fail.
type flakySaves struct {
	*MemoryStore
	mu    sync.Mutex
	fails int
	saves int
}

var errSaveDown = errors.New("store down")

func (s *flakySaves) Save(ctx context.Context, key string, tok Token) error {
	s.mu.Lock()
	s.saves++
	fail := s.fails > 0
	if fail {
		s.fails--
	}
	s.mu.Unlock()
	if fail {
		return errSaveDown
	}
	return s.MemoryStore.Save(ctx, key, tok)
}

func TestFailedSaveOfRefreshRecordIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &flakySaves{MemoryStore: NewMemoryStore(), fails: 3}
		logs := &logbuf.Buffer{}
		c, err := NewClient("acct.authorizer", &rotatingSource{}, WithStore(store), WithLogger(logs.Logger(slog.LevelInfo)))
		require.NoError(t, err)
		defer c.Close()

		tok, err := c.Token(t.Context())
		require.NoError(t, err)
		require.Equal(t, "refresh-r", tok.Refresh)
		_, err = store.Load(t.Context(), "acct.authorizer")
		require.ErrorIs(t, err, ErrNotFound, "the first save failed")

		// Fake time: three retries after 1 s, 2 s and 4 s, each stretched by up
		// to half again.
		time.Sleep(3 * (saveRetryBase + 2*saveRetryBase + 4*saveRetryBase) / 2)
		synctest.Wait()
		saved, err := store.Load(t.Context(), "acct.authorizer")
		require.NoError(t, err)
		assert.Equal(t, tok.Refresh, saved.Refresh, "the retried save stored the refresh token")
		assert.Equal(t, 4, store.saves, "one save and three retries")
		assert.Contains(t, logs.String(), "level=ERROR", "a lost save is an error")
	})
}

func TestCloseMakesOneLastSaveOfRefreshRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &flakySaves{MemoryStore: NewMemoryStore(), fails: 1}
		c, err := NewClient("acct.authorizer", &rotatingSource{}, WithStore(store), WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		tok, err := c.Token(t.Context())
		require.NoError(t, err)
		require.NoError(t, c.Close()) // before the first retry is due
		saved, err := store.Load(context.Background(), "acct.authorizer")
		require.NoError(t, err, "Close waited for a last attempt")
		assert.Equal(t, tok.Refresh, saved.Refresh)
	})
}

// timedSaves is a MemoryStore whose Saves take the times delays names, in
// fake time, and fail when they began while the store was down. A Save either honours its
// context (as FileStore does while it waits for its lock) or ignores it (as
// one inside an fsync does).
type timedSaves struct {
	*MemoryStore
	mu        sync.Mutex
	delays    []time.Duration // of the next Saves, in order; none left: at once
	ignoreCtx bool
	down      bool
	calls     []string // the token of every Save, in call order
}

func newTimedSaves() *timedSaves { return &timedSaves{MemoryStore: NewMemoryStore()} }

func (s *timedSaves) Save(ctx context.Context, key string, tok Token) error {
	s.mu.Lock()
	s.calls = append(s.calls, tok.AccessToken)
	var d time.Duration
	if len(s.delays) > 0 {
		d, s.delays = s.delays[0], s.delays[1:]
	}
	ignoreCtx, down := s.ignoreCtx, s.down // a Save fails if the store was down when it began
	s.mu.Unlock()
	if d > 0 && ignoreCtx {
		time.Sleep(d)
	} else if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if down {
		return errSaveDown
	}
	return s.MemoryStore.Save(ctx, key, tok)
}

func (s *timedSaves) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// callsSince returns the tokens of the Saves from the n-th on.
func (s *timedSaves) callsSince(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls[n:])
}

func (s *timedSaves) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// storedToken is the token the store holds under key, "" when none.
func storedToken(t *testing.T, s Store, key string) string {
	t.Helper()
	tok, err := s.Load(context.Background(), key)
	if errors.Is(err, ErrNotFound) {
		return ""
	}
	require.NoError(t, err)
	return tok.AccessToken
}

const saveKey = "wxsavekey"

// newSaveClient is a Client for saveKey on st, its tokens "wxsavekey-<n>".
func newSaveClient(t *testing.T, st Store, opts ...Option) (*Client, *atomic.Int64) {
	t.Helper()
	var fetches atomic.Int64
	c, err := NewClient(saveKey, &keyedSource{key: saveKey, fetches: &fetches, life: 7200},
		append([]Option{WithStore(st), WithLogger(quietLogger())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, &fetches
}

// A Save slower than the store timeout, but within the save timeout, lands
// at the first attempt: the Save's context is not cut at the store timeout.
func TestSaveSlowerThanTheStoreTimeoutLands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newTimedSaves()
		st.delays = []time.Duration{3 * DefaultStoreTimeout}
		c, _ := newSaveClient(t, st)
		start := time.Now()
		assert.Equal(t, saveKey+"-1", mustGet(t, c))
		assert.Zero(t, time.Since(start), "the caller did not wait for the save")
		c.waitIdle()
		assert.Equal(t, saveKey+"-1", storedToken(t, st, saveKey))
		assert.Equal(t, []string{saveKey + "-1"}, st.callsSince(0), "one Save, no retry")
	})
}

// A Save that outlasts the save timeout and fails on its context is tried
// again, and then lands.
func TestSaveOutlastingTheSaveTimeoutIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newTimedSaves()
		st.delays = []time.Duration{2 * DefaultSaveTimeout}
		c, _ := newSaveClient(t, st)
		assert.Equal(t, saveKey+"-1", mustGet(t, c))
		advance(DefaultSaveTimeout + time.Millisecond)
		assert.Empty(t, storedToken(t, st, saveKey), "the first Save gave up")
		advance(2 * saveRetryBase)
		assert.Equal(t, saveKey+"-1", storedToken(t, st, saveKey), "the retry saved it")
		assert.Equal(t, 2, st.callCount())
		assert.Zero(t, c.saves.size.Load(), "nothing left in the queue")
	})
}

// A Save abandoned at the save timeout that lands later is not repeated, and
// its late outcome is observed; one that fails later is tried again, never
// while it still runs.
func TestAbandonedSaveIsSettledByItsLateOutcome(t *testing.T) {
	t.Run("landed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTimedSaves()
			st.ignoreCtx, st.delays = true, []time.Duration{DefaultSaveTimeout + 2*time.Second}
			var mu sync.Mutex
			var outcomes []Outcome
			c, _ := newSaveClient(t, st, WithObserver(ObserverFunc(func(e Event) {
				if e.Kind == EventStoreSave {
					mu.Lock()
					outcomes = append(outcomes, e.Outcome)
					mu.Unlock()
				}
			})))
			mustGet(t, c)
			advance(10 * time.Minute)
			assert.Equal(t, saveKey+"-1", storedToken(t, st, saveKey))
			assert.Equal(t, 1, st.callCount(), "the late landing is not saved again")
			mu.Lock()
			assert.Equal(t, []Outcome{OutcomeCanceled, OutcomeOK}, outcomes, "the late outcome is observed")
			mu.Unlock()
		})
	})
	t.Run("failed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newTimedSaves()
			st.ignoreCtx, st.down = true, true
			st.delays = []time.Duration{DefaultSaveTimeout + 10*time.Second}
			c, _ := newSaveClient(t, st)
			mustGet(t, c)
			advance(DefaultSaveTimeout + 9*time.Second)
			assert.Equal(t, 1, st.callCount(), "no second Save while the first runs")
			st.setDown(false)
			advance(time.Second + 2*saveRetryBase)
			assert.Equal(t, 2, st.callCount(), "tried again once the first failed")
			assert.Equal(t, saveKey+"-1", storedToken(t, st, saveKey))
		})
	})
}

// While the Store fails every Save, newer tokens replace older ones in the
// queue: once it recovers, only the newest is saved.
func TestStoreDownSavesOnlyTheNewestTokenAfterRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newTimedSaves()
		st.down = true
		logs := &logbuf.Buffer{}
		c, _ := newSaveClient(t, st, WithRejectGuard(0), WithLogger(logs.Logger(slog.LevelDebug)),
			WithStoreSync(0)) // else each sync puts the cached token back: more Saves to count
		tok := mustGet(t, c)
		for range 2 {
			advance(time.Minute)
			next, err := c.Invalidate(t.Context(), tok)
			require.NoError(t, err)
			tok = next
		}
		require.Equal(t, saveKey+"-3", tok)
		advance(time.Minute)
		assert.Empty(t, storedToken(t, st, saveKey))
		outage := st.callCount()
		st.setDown(false)
		advance(2 * saveRetryMax) // past the longest backoff, jitter included
		assert.Equal(t, []string{saveKey + "-3"}, st.callsSince(outage), "only the newest token is saved")
		assert.Equal(t, saveKey+"-3", storedToken(t, st, saveKey))
		t.Logf("%d Saves during the 3 min outage, 1 after it", outage)
		assert.LessOrEqual(t, outage, 12, "the queue backs off")
		for i := 1; i <= 3; i++ {
			assert.NotContains(t, logs.String(), fmt.Sprintf("%s-%d", saveKey, i), "no full token in the log")
		}
	})
}

// Close gives a plain token whose save failed one last try.
func TestCloseMakesOneLastSaveOfAPlainToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &flakySaves{MemoryStore: NewMemoryStore(), fails: 1}
		c, _ := newSaveClient(t, store)
		tok := mustGet(t, c)
		require.NoError(t, c.Close()) // before the first retry is due
		assert.Equal(t, tok, storedToken(t, store.MemoryStore, saveKey))
		assert.Equal(t, 2, store.saves)
	})
}

// Close with a Store that hangs, ignoring its context, returns within the
// save timeout of the save under way (plus the last try's, at most).
func TestCloseIsBoundedWithAHungSave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := make(chan struct{})
		defer close(hang) // lets the abandoned call end with the test
		st := &trickyStore{MemoryStore: NewMemoryStore(), blockSave: hang}
		c, _ := newSaveClient(t, st)
		mustGet(t, c)
		start := time.Now()
		require.NoError(t, c.Close())
		assert.Equal(t, DefaultSaveTimeout, time.Since(start), "the save under way, in fake time")
	})
}

// saveQueueKeys is the size of the many-keys save test: 20,000 keys, 5,000
// under -short.
func saveQueueKeys() int {
	if testing.Short() {
		return 5_000
	}
	return 20_000
}

// A Store that fails every Save of a Registry of many keys costs one queue
// entry per key and a bounded number of goroutines and Save attempts, not a
// goroutine per key nor a Save per key per round; once it recovers every
// key's newest token is saved, each once.
func TestSaveQueueStaysBoundedWithManyKeys(t *testing.T) {
	n := saveQueueKeys()
	synctest.Test(t, func(t *testing.T) {
		st := newTimedSaves()
		st.down = true
		var fetches atomic.Int64
		baseGoroutines := runtime.NumGoroutine()
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
			return &keyedSource{key: key, fetches: &fetches, life: 7200}, nil
		}, WithStore(st), WithLogger(quietLogger()), WithStoreSync(0))
		require.NoError(t, err)
		defer r.Close()
		warm(t, r, n)
		synctest.Wait()
		require.Equal(t, int64(n), fetches.Load())
		require.Equal(t, n, st.callCount(), "one failed Save per key")

		peakGoroutines, pending := 0, int64(0)
		for range 10 {
			advance(time.Minute)
			peakGoroutines = max(peakGoroutines, runtime.NumGoroutine()-baseGoroutines)
			pending = r.sh.saves.size.Load()
		}
		retries := st.callCount() - n
		t.Logf("%d keys, 10 min with every Save failing: %d tokens queued, %d Save retries, %d goroutines more than before",
			n, pending, retries, peakGoroutines)
		assert.Equal(t, int64(n), pending, "every token waits in the queue")
		assert.LessOrEqual(t, peakGoroutines, 10, "no goroutine per key")
		// Rounds of saveRetryParallel, backing off 1 s doubling to 1 min.
		assert.LessOrEqual(t, retries, 20*saveRetryParallel, "no Save per key per round")

		st.setDown(false)
		before := st.callCount()
		advance(2 * saveRetryMax) // past the longest backoff, jitter included
		assert.Zero(t, r.sh.saves.size.Load(), "the queue is empty")
		assert.Equal(t, n, st.callCount()-before, "one Save per key after the recovery")
		lost := 0
		for i := range n {
			want, err := r.Get(t.Context(), scaleKey(i))
			require.NoError(t, err)
			if storedToken(t, st, scaleKey(i)) != want {
				lost++
			}
		}
		assert.Zero(t, lost, "keys whose newest token is not stored")
		assert.LessOrEqual(t, runtime.NumGoroutine()-baseGoroutines, 10, "the queue's goroutine ended")
	})
}
