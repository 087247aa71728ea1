package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// batchStore is a MemoryStore that is also a BatchLoader, counting its reads.
type batchStore struct {
	*MemoryStore
	loads    atomic.Int64 // single Loads
	batches  atomic.Int64 // LoadMany calls
	keysRead atomic.Int64 // keys read by LoadMany
	maxBatch atomic.Int64
	fail     atomic.Bool // LoadMany fails as a whole
	// failReads is how many reads (a Load, a LoadMany) fail from now on;
	// reads counts them all.
	failReads atomic.Int32
	reads     atomic.Int64
}

// failRead reports whether this read is one of failReads.
func (s *batchStore) failRead() bool {
	s.reads.Add(1)
	for {
		n := s.failReads.Load()
		if n <= 0 {
			return false
		}
		if s.failReads.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func newBatchStore() *batchStore { return &batchStore{MemoryStore: NewMemoryStore()} }

func (s *batchStore) Load(ctx context.Context, key string) (Token, error) {
	s.loads.Add(1)
	if s.failRead() {
		return Token{}, errors.New("transient read failure")
	}
	return s.MemoryStore.Load(ctx, key)
}

func (s *batchStore) LoadMany(ctx context.Context, keys []string) ([]LoadResult, error) {
	s.batches.Add(1)
	s.keysRead.Add(int64(len(keys)))
	if n := int64(len(keys)); n > s.maxBatch.Load() {
		s.maxBatch.Store(n)
	}
	if s.fail.Load() || s.failRead() {
		return nil, errors.New("store down")
	}
	out := make([]LoadResult, len(keys))
	for i, k := range keys {
		out[i].Token, out[i].Err = s.MemoryStore.Load(ctx, k)
	}
	return out, nil
}

// feedStore is a batchStore with a change feed the test drives.
type feedStore struct {
	*batchStore
	watchErr error // what Watch returns; nil: it succeeds
	watches  atomic.Int64

	mu      sync.Mutex
	notify  []func(StoreChange)
	stopped atomic.Int64 // watchers whose context ended
}

func newFeedStore() *feedStore { return &feedStore{batchStore: newBatchStore()} }

func (s *feedStore) Watch(ctx context.Context, notify func(StoreChange)) error {
	s.watches.Add(1)
	if s.watchErr != nil {
		return s.watchErr
	}
	s.mu.Lock()
	s.notify = append(s.notify, notify)
	s.mu.Unlock()
	context.AfterFunc(ctx, func() { s.stopped.Add(1) })
	return nil
}

// Save announces the change to the watchers, as a Store with a feed does.
func (s *feedStore) Save(ctx context.Context, key string, tok Token) error {
	if err := s.MemoryStore.Save(ctx, key, tok); err != nil {
		return err
	}
	s.tell(StoreChange{Key: key})
	return nil
}

func (s *feedStore) tell(ch StoreChange) {
	s.mu.Lock()
	ns := slices.Clone(s.notify)
	s.mu.Unlock()
	for _, n := range ns {
		n(ch)
	}
}

func (s *feedStore) watchers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.notify)
}

// registryOn returns a Registry of keyedSources on st, counting fetches.
func registryOn(t *testing.T, st Store, fetches *atomic.Int64, opts ...Option) *Registry {
	t.Helper()
	r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
		return &keyedSource{key: key, fetches: fetches, life: 7200}, nil
	}, append([]Option{WithStore(st), WithLogger(quietLogger())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// A Registry on a BatchLoader re-reads its keys with LoadMany only, in
// batches of at most storeBatch, each key once per store-sync interval; it
// adopts a newer token another replica saved and puts its token back into a
// Store that lost it.
func TestRegistryWheelReadsInBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 2 * syncSlots * storeBatch / 100 // several keys a slot
		st := newBatchStore()
		var fetches atomic.Int64
		r := registryOn(t, st, &fetches)
		warm(t, r, n)
		synctest.Wait()
		loads := st.loads.Load() // the first Gets' reads
		time.Sleep(DefaultRegistryStoreSync)
		synctest.Wait()
		assert.Equal(t, loads, st.loads.Load(), "no single Load while idle")
		assert.InDelta(t, n, st.keysRead.Load(), float64(2*n/syncSlots+2), "each key read once in an interval")
		assert.LessOrEqual(t, st.batches.Load(), int64(syncSlots+1), "one LoadMany per tick")
		assert.LessOrEqual(t, st.maxBatch.Load(), int64(storeBatch))
		assert.Equal(t, int64(n), fetches.Load())

		// Another replica renews key 0; the Store loses key 1.
		k0, k1 := scaleKey(0), scaleKey(1)
		newer := Token{AccessToken: "from-another-replica", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, st.MemoryStore.Save(t.Context(), k0, newer))
		st.MemoryStore.mu.Lock()
		delete(st.MemoryStore.tokens, k1)
		st.MemoryStore.mu.Unlock()
		time.Sleep(DefaultRegistryStoreSync)
		synctest.Wait()
		got, err := r.Get(t.Context(), k0)
		require.NoError(t, err)
		assert.Equal(t, "from-another-replica", got)
		restored, err := st.MemoryStore.Load(t.Context(), k1)
		require.NoError(t, err, "the cached token is put back")
		cached, err := r.Get(t.Context(), k1)
		require.NoError(t, err)
		assert.Equal(t, cached, restored.AccessToken)
		assert.Equal(t, int64(n), fetches.Load(), "no fetch")
	})
}

// A LoadMany that fails is logged, costs nothing but the next pass, and
// never a fetch: the cached tokens stay served.
func TestRegistryWheelBatchFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newBatchStore()
		var fetches atomic.Int64
		logs := &logbuf.Buffer{}
		r := registryOn(t, st, &fetches, WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
		warm(t, r, 100)
		synctest.Wait()
		st.fail.Store(true)
		before := st.batches.Load()
		time.Sleep(DefaultRegistryStoreSync)
		synctest.Wait()
		assert.LessOrEqual(t, st.batches.Load()-before, int64(syncSlots+1), "no retry loop")
		assert.Contains(t, logs.String(), "reading the store failed")
		for i := range 100 {
			tok, err := r.Get(t.Context(), scaleKey(i))
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(tok, scaleKey(i)+"-"), "the cached token")
		}
		assert.Equal(t, int64(100), fetches.Load())
	})
}

// With a change feed up, an idle Registry reads only for the safety re-read:
// each key once every feedSafetyRounds intervals, in batches, never a single
// Load; a change of a key it holds re-reads that key alone (a burst of changes
// once); a change of a key it does not hold costs no read; a resync re-reads
// every key in batches. One Watch serves the whole Registry, and Close ends
// it.
func TestRegistryFeedReplacesPeriodicReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 1200
		st := newFeedStore()
		var fetches atomic.Int64
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
			return &keyedSource{key: key, fetches: &fetches, life: 7200}, nil
		}, WithStore(st), WithLogger(quietLogger()))
		require.NoError(t, err)
		warm(t, r, n)
		synctest.Wait()
		require.Equal(t, 1, st.watchers(), "one Watch for the Registry")
		loads, batches := st.loads.Load(), st.batches.Load()
		rereads := r.sh.feed.rereads.Load() // the first Gets' Saves, announced
		t.Logf("%d keys warmed: their own %d Saves, announced by the feed, cost %d re-reads in %d LoadMany calls and %d Loads",
			n, n, rereads, st.batches.Load(), st.loads.Load())
		assert.LessOrEqual(t, rereads, int64(n+n/100), "an own Save costs about one re-read")
		keys := st.keysRead.Load()
		idle := feedSafetyRounds * DefaultRegistryStoreSync
		time.Sleep(idle)
		synctest.Wait()
		assert.Equal(t, loads, st.loads.Load(), "no Load while idle")
		slot := float64(n/syncSlots + 1)
		assert.InDelta(t, n, st.keysRead.Load()-keys, 2*slot, "the safety re-read reads each key once in %v", idle)
		idleBatches := st.batches.Load() - batches
		assert.LessOrEqual(t, idleBatches, int64(syncSlots+1), "one LoadMany per safety tick at most")
		t.Logf("%d keys, feed up, %v idle: %d LoadMany calls (%.1f a minute), %d keys read",
			n, idle, idleBatches, float64(idleBatches)/idle.Minutes(), st.keysRead.Load()-keys)

		k := scaleKey(7)
		newer := Token{AccessToken: "renewed-elsewhere", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, st.MemoryStore.Save(t.Context(), k, newer))
		for range 50 {
			st.tell(StoreChange{Key: k})
		}
		st.tell(StoreChange{Key: "not-held-here"})
		synctest.Wait()
		got, err := r.Get(t.Context(), k)
		require.NoError(t, err)
		assert.Equal(t, "renewed-elsewhere", got)
		// The feed's goroutine may take a pass between two of the 50
		// notifications, rarely more than a few.
		assert.LessOrEqual(t, r.sh.feed.rereads.Load()-rereads, int64(10), "a burst of changes costs a few reads")
		assert.GreaterOrEqual(t, r.sh.feed.rereads.Load()-rereads, int64(1))

		batches = st.batches.Load()
		st.tell(StoreChange{Resync: true})
		synctest.Wait()
		assert.Equal(t, int64((n+storeBatch-1)/storeBatch), st.batches.Load()-batches, "a resync reads every key in batches")
		assert.Equal(t, int64(n), fetches.Load(), "no fetch")

		require.NoError(t, r.Close())
		synctest.Wait()
		assert.Equal(t, int64(1), st.stopped.Load(), "Close ends the Watch")
	})
}

// A Watch that fails leaves the wheel's periodic reads on, logs once at
// Warn, and is tried again each interval; a Store whose feed is off
// (errors.ErrUnsupported) is not asked again and logs nothing at Warn.
func TestRegistryFeedFallback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		warns   int
		retries bool
	}{
		{"failing", errors.New("pubsub refused"), 1, true},
		{"unsupported", errors.ErrUnsupported, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := newFeedStore()
				st.watchErr = tc.err
				logs := &logbuf.Buffer{}
				var fetches atomic.Int64
				r := registryOn(t, st, &fetches, WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
				warm(t, r, 480)
				synctest.Wait()
				keys := st.keysRead.Load()
				time.Sleep(3 * DefaultRegistryStoreSync)
				synctest.Wait()
				assert.InDelta(t, 3*480, st.keysRead.Load()-keys, 8, "periodic reads go on")
				assert.Equal(t, tc.warns, strings.Count(logs.String(), "change feed did not start"))
				if tc.retries {
					assert.Equal(t, int64(4), st.watches.Load(), "tried again every interval")
				} else {
					assert.Equal(t, int64(1), st.watches.Load())
				}
			})
		})
	}
}

// A lone Client on a Store with a feed slows its sync timer down to the
// safety re-read once the feed is up (feedSafetyRounds intervals), re-reads
// when its key changes, and ignores other keys.
func TestClientFeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFeedStore()
		var fetches atomic.Int64
		c, err := NewClient("wxfeed", &keyedSource{key: "wxfeed", fetches: &fetches, life: 7200},
			WithStore(st), WithLogger(quietLogger()))
		require.NoError(t, err)
		_, err = c.Get(t.Context())
		require.NoError(t, err)
		synctest.Wait()
		loads := st.loads.Load()
		time.Sleep(feedSafetyRounds*DefaultStoreSync - time.Second)
		synctest.Wait()
		assert.Equal(t, loads, st.loads.Load(), "no periodic read while the feed is up")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		assert.Equal(t, loads+1, st.loads.Load(), "the safety re-read")
		loads = st.loads.Load()

		st.tell(StoreChange{Key: "someone-else"})
		synctest.Wait()
		assert.Equal(t, loads, st.loads.Load())
		newer := Token{AccessToken: "renewed-elsewhere", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, st.Save(t.Context(), "wxfeed", newer))
		synctest.Wait()
		got, err := c.Get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "renewed-elsewhere", got)
		assert.Equal(t, int64(1), fetches.Load())
		require.NoError(t, c.Close())
		synctest.Wait()
		assert.Equal(t, int64(1), st.stopped.Load(), "Close ends the Watch")
	})
}

// lockLoadStore is a MemoryStore that is a LockLoader, counting its calls.
type lockLoadStore struct {
	*MemoryStore
	loads, lockLoads, saveUnlocks, saves, locks atomic.Int64
}

func (s *lockLoadStore) Load(ctx context.Context, key string) (Token, error) {
	s.loads.Add(1)
	return s.MemoryStore.Load(ctx, key)
}

func (s *lockLoadStore) Save(ctx context.Context, key string, tok Token) error {
	s.saves.Add(1)
	return s.MemoryStore.Save(ctx, key, tok)
}

func (s *lockLoadStore) Lock(ctx context.Context, key string, lease time.Duration) (func(context.Context) error, error) {
	s.locks.Add(1)
	return s.MemoryStore.Lock(ctx, key, lease)
}

func (s *lockLoadStore) LockLoad(ctx context.Context, key string, lease time.Duration) (StoreLock, LoadResult, error) {
	s.lockLoads.Add(1)
	unlock, err := s.MemoryStore.Lock(ctx, key, lease)
	if err != nil {
		return nil, LoadResult{}, err
	}
	tok, err := s.MemoryStore.Load(ctx, key)
	return &memLock{s: s, key: key, unlock: unlock}, LoadResult{Token: tok, Err: err}, nil
}

type memLock struct {
	s      *lockLoadStore
	key    string
	unlock func(context.Context) error
}

func (l *memLock) Unlock(ctx context.Context) error { return l.unlock(ctx) }

func (l *memLock) SaveUnlock(ctx context.Context, tok Token) error {
	l.s.saveUnlocks.Add(1)
	defer func() { _ = l.unlock(ctx) }()
	return l.s.MemoryStore.Save(ctx, l.key, tok)
}

// A background renewal on a LockLoader is LockLoad then SaveUnlock, with no
// other Store call; a renewal another replica did already is LockLoad then
// Unlock. A cold Get still reads the Store before it locks.
func TestRenewalOnLockLoader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &lockLoadStore{MemoryStore: NewMemoryStore()}
		var fetches atomic.Int64
		c, err := NewClient("wxll", &keyedSource{key: "wxll", fetches: &fetches, life: 7200},
			WithStore(st), WithStoreSync(0), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Get(t.Context())
		require.NoError(t, err)
		synctest.Wait()
		assert.Equal(t, int64(1), st.loads.Load(), "a cold Get reads first")
		assert.Equal(t, int64(1), st.lockLoads.Load())
		assert.Equal(t, int64(1), st.saveUnlocks.Load())

		time.Sleep(6900 * time.Second) // past the renewal point
		synctest.Wait()
		assert.Equal(t, int64(2), fetches.Load(), "renewed")
		assert.Equal(t, int64(1), st.loads.Load(), "no unlocked read for a renewal")
		assert.Equal(t, int64(2), st.lockLoads.Load())
		assert.Equal(t, int64(2), st.saveUnlocks.Load())
		assert.Zero(t, st.saves.Load()+st.locks.Load(), "no plain Save or Lock")
		got, err := st.MemoryStore.Load(t.Context(), "wxll")
		require.NoError(t, err)
		assert.Equal(t, "wxll-2", got.AccessToken)

		// Another replica renews first: the locked read finds it.
		time.Sleep(6800 * time.Second) // before the next renewal window
		require.NoError(t, st.MemoryStore.Save(t.Context(), "wxll",
			Token{AccessToken: "elsewhere", ExpiresIn: 7200, CreateTime: time.Now().Add(-6700 * time.Second)}))
		time.Sleep(100 * time.Second) // past the window; "elsewhere" is fresh until 170 s from now
		synctest.Wait()
		tok, err := c.Get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "elsewhere", tok)
		assert.Equal(t, int64(2), fetches.Load(), "no fetch: the locked read had it")
		assert.Equal(t, int64(3), st.lockLoads.Load())
		assert.Equal(t, int64(2), st.saveUnlocks.Load())
	})
}

// Preload holds every key after batched reads of a warm Store, fetching
// nothing; keys missing from the Store are left to their first Get.
func TestRegistryPreload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 1300
		st := newBatchStore()
		keys := make([]string, n)
		for i := range keys {
			keys[i] = scaleKey(i)
			if i%100 != 99 {
				require.NoError(t, st.MemoryStore.Save(t.Context(), keys[i],
					Token{AccessToken: keys[i] + "-stored", ExpiresIn: 7200, CreateTime: time.Now()}))
			}
		}
		var fetches atomic.Int64
		r := registryOn(t, st, &fetches)
		require.NoError(t, r.Preload(t.Context(), keys))
		assert.Equal(t, n, r.Len())
		assert.Equal(t, int64(3), st.batches.Load(), "batches of 500")
		assert.Zero(t, st.loads.Load())
		assert.Zero(t, fetches.Load())
		for i, k := range keys {
			tok, err := r.Get(t.Context(), k)
			require.NoError(t, err)
			if i%100 != 99 {
				assert.Equal(t, k+"-stored", tok)
			}
		}
		assert.Equal(t, int64(n/100), fetches.Load(), "only the keys the Store lacked")
	})
}

// Preload on a closed Registry fails at once with ErrClosed, not with one
// error per key.
func TestRegistryPreloadClosed(t *testing.T) {
	var fetches atomic.Int64
	r := registryOn(t, newBatchStore(), &fetches)
	require.NoError(t, r.Close())
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = scaleKey(i)
	}
	err := r.Preload(t.Context(), keys)
	assert.Equal(t, ErrClosed, err)
}

// storeKeyedSource is a keyedSource that keeps its record under a store key
// of its own, as an Open Platform authorizer does, and may ask for options.
type storeKeyedSource struct {
	keyedSource
	opts []Option
}

func (s *storeKeyedSource) StoreKey() string { return "platform.authorizer." + s.key }

func (s *storeKeyedSource) ClientOptions() []Option { return s.opts }

// Keys whose record lives under a store key of their own, or with options of
// their own on the Registry's Store, are covered by the Registry's feed and
// batches like any other: idle, they cost no read, and a change the feed
// names by store key is picked up.
func TestRegistryFeedCoversKeysWithAStoreKeyOfTheirOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 300
		st := newFeedStore()
		var fetches atomic.Int64
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
			src := &storeKeyedSource{keyedSource: keyedSource{key: key, fetches: &fetches, life: 7200}}
			if strings.HasSuffix(key, "7") {
				src.opts = []Option{WithRefreshBefore(4 * time.Minute)}
			}
			return src, nil
		}, WithStore(st), WithLogger(quietLogger()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = r.Close() })
		warm(t, r, n)
		synctest.Wait()
		loads, keys := st.loads.Load(), st.keysRead.Load()
		time.Sleep(feedSafetyRounds * DefaultRegistryStoreSync)
		synctest.Wait()
		assert.Equal(t, loads, st.loads.Load(), "no Load while idle")
		assert.InDelta(t, n, st.keysRead.Load()-keys, 2*(n/syncSlots+1), "only the safety re-read, in batches")

		for _, k := range []string{scaleKey(5), scaleKey(7)} {
			newer := Token{AccessToken: "renewed-elsewhere-" + k, ExpiresIn: 7200, CreateTime: time.Now()}
			require.NoError(t, st.Save(t.Context(), "platform.authorizer."+k, newer))
		}
		synctest.Wait()
		for _, k := range []string{scaleKey(5), scaleKey(7)} {
			got, err := r.Get(t.Context(), k)
			require.NoError(t, err)
			assert.Equal(t, "renewed-elsewhere-"+k, got, "the feed named the store key")
		}
		assert.Equal(t, int64(n), fetches.Load(), "no fetch")
	})
}

// newerToken is a token another replica saved in st for key, newer than any
// the test fetched before.
func newerToken(t *testing.T, st *feedStore, key, access string) Token {
	t.Helper()
	time.Sleep(time.Second) // newer than what was fetched at the start
	tok := Token{AccessToken: access, ExpiresIn: 7200, CreateTime: time.Now()}
	require.NoError(t, st.MemoryStore.Save(t.Context(), key, tok))
	return tok
}

// A change the feed names whose re-read fails is read again after a backoff
// of a second, doubling (1 s, 2 s, 4 s), never at once, until a read
// succeeds; it is not lost until the next renewal.
func TestRegistryFeedRetriesAFailedReread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFeedStore()
		var fetches atomic.Int64
		// A wheel tick every 15 s: none within the test's 8 s.
		r := registryOn(t, st, &fetches, WithStoreSync(time.Hour))
		k := scaleKey(1)
		_, err := r.Get(t.Context(), k)
		require.NoError(t, err)
		synctest.Wait()
		newer := newerToken(t, st, k, "renewed-elsewhere")

		st.failReads.Store(3)
		reads := st.reads.Load()
		st.tell(StoreChange{Key: k})
		synctest.Wait()
		assert.Equal(t, reads+1, st.reads.Load(), "one failed read, no retry at once")
		for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			time.Sleep(wait - time.Millisecond)
			synctest.Wait()
			assert.Equal(t, reads+int64(i+1), st.reads.Load(), "no retry before %v", wait)
			time.Sleep(time.Millisecond)
			synctest.Wait()
			assert.Equal(t, reads+int64(i+2), st.reads.Load(), "a retry after %v", wait)
		}
		got, err := r.Get(t.Context(), k)
		require.NoError(t, err)
		assert.Equal(t, newer.AccessToken, got)
		assert.Equal(t, int64(1), fetches.Load())
	})
}

// A resync whose batched read fails is tried again: a Store that came back
// empty (Redis answering -LOADING to reads at first) gets the cached tokens
// back a second later.
func TestRegistryFeedRetriesAFailedResync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 50
		st := newFeedStore()
		var fetches atomic.Int64
		r := registryOn(t, st, &fetches, WithStoreSync(10*time.Minute))
		warm(t, r, n)
		synctest.Wait()
		st.MemoryStore.mu.Lock()
		clear(st.MemoryStore.tokens)
		st.MemoryStore.mu.Unlock()

		st.failReads.Store(1)
		st.tell(StoreChange{Resync: true})
		synctest.Wait()
		time.Sleep(feedRetryMin)
		synctest.Wait()
		for i := range n {
			stored, err := st.MemoryStore.Load(t.Context(), scaleKey(i))
			require.NoError(t, err, "the cached token of key %d is put back", i)
			cached, err := r.Get(t.Context(), scaleKey(i))
			require.NoError(t, err)
			assert.Equal(t, cached, stored.AccessToken)
		}
		assert.Equal(t, int64(n), fetches.Load(), "no fetch")
	})
}

// A lone Client whose feed-driven re-read fails reads again after the
// backoff, for a change and for a resync alike.
func TestClientFeedRetriesAFailedReread(t *testing.T) {
	for _, ch := range []StoreChange{{Key: "wxfeed"}, {Resync: true}} {
		t.Run(fmt.Sprintf("resync=%v", ch.Resync), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := newFeedStore()
				var fetches atomic.Int64
				c, err := NewClient("wxfeed", &keyedSource{key: "wxfeed", fetches: &fetches, life: 7200},
					WithStore(st), WithStoreSync(10*time.Second), WithLogger(quietLogger()))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				_, err = c.Get(t.Context())
				require.NoError(t, err)
				synctest.Wait()
				newer := newerToken(t, st, "wxfeed", "renewed-elsewhere")
				st.failReads.Store(1)
				st.tell(ch)
				synctest.Wait()
				got, err := c.Get(t.Context())
				require.NoError(t, err)
				assert.NotEqual(t, newer.AccessToken, got, "the first read failed")
				time.Sleep(feedRetryMin)
				synctest.Wait()
				got, err = c.Get(t.Context())
				require.NoError(t, err)
				assert.Equal(t, newer.AccessToken, got)
				assert.Equal(t, int64(1), fetches.Load())
			})
		})
	}
}

// A change that arrives within snapDelay of a key being forgotten and looked
// up again reaches the new Client of the key, not the closed one snap still
// holds.
func TestRegistryFeedReachesAKeyLookedUpAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFeedStore()
		var fetches atomic.Int64
		r := registryOn(t, st, &fetches, WithStoreSync(10*time.Minute))
		k := scaleKey(1)
		_, err := r.Get(t.Context(), k)
		require.NoError(t, err)
		time.Sleep(time.Second) // snap holds k now
		synctest.Wait()
		require.NotNil(t, (*r.snap.Load())[k])
		r.Forget(k)
		_, err = r.Get(t.Context(), k) // a new Client, not yet in snap
		require.NoError(t, err)
		synctest.Wait()
		newer := Token{AccessToken: "renewed-elsewhere", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, st.MemoryStore.Save(t.Context(), k, newer))
		st.tell(StoreChange{Key: k})
		synctest.Wait()
		got, err := r.Get(t.Context(), k)
		require.NoError(t, err)
		assert.Equal(t, newer.AccessToken, got)
	})
}
