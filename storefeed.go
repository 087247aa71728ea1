package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// How the engine uses the optional Store capabilities of store_caps.go for
// its store sync. A plain Store is re-read per key, every store-sync interval.
// A BatchLoader is re-read in batches: a Registry's wheel reads each slot
// with LoadMany, Preload warms many keys at once. A Watcher's change feed
// replaces the periodic re-read while it is up: a change re-reads the key it
// names, a resynchronization after the feed was interrupted re-reads every
// key, in batches where the Store can. A re-read that fails is tried again
// after a backoff (feedRetryMin doubling up to the store-sync interval). While
// the feed is up, a slow safety re-read still reads each key every
// feedSafetyRounds store-sync intervals: it covers a feed that claims to be up
// but hears nothing, replicas of a previous release that do not publish, and
// records deleted without an announcement. Feed or not, what a read finds is
// applied as sync applies it (applySync): a newer valid token is adopted, an
// empty Store gets the cached token back.

const (
	// storeBatch bounds the keys of one LoadMany: a few hundred records
	// make one reply of some tens of kilobytes, and one slow batch delays
	// no more keys than that.
	storeBatch = 500
	// maxPendingChanges bounds the keys a feed remembers between two
	// passes of its goroutine; past it, the pass re-reads every key.
	maxPendingChanges = 1 << 16
	// preloadLookups bounds the lookups Preload runs at once.
	preloadLookups = 64
	// feedSafetyRounds is how many store-sync intervals apart the safety
	// re-read reads each key while the feed is up: 40 min at a Registry's
	// default 4 min, for 100,000 keys 6 LoadMany calls a minute.
	feedSafetyRounds = 10
	// feedRetryMin is the first wait before the feed re-reads keys whose
	// re-read failed; it doubles up to the store-sync interval.
	feedRetryMin = time.Second
)

// storeFeed gathers what a Watcher reports until the goroutine that watches
// re-reads it: bursts of changes of one key cost one read, and notify, which
// the Store calls, never waits on a read.
type storeFeed struct {
	up    atomic.Bool // Watch succeeded: periodic re-reads are off
	holds func(key string) bool

	// rereads counts the keys re-read because the feed named them or
	// resynchronized, for tests.
	rereads atomic.Int64

	mu      sync.Mutex
	pending map[string]struct{}
	resync  bool
	wake    chan struct{} // holds a value while there is something to read
}

func newStoreFeed(holds func(key string) bool) *storeFeed {
	return &storeFeed{holds: holds, pending: map[string]struct{}{}, wake: make(chan struct{}, 1)}
}

// notify is the Watcher's callback. A change of a key nobody here holds is
// dropped at the cost of a map lookup.
func (f *storeFeed) notify(ch StoreChange) {
	if !ch.Resync && !f.holds(ch.Key) {
		return
	}
	f.mu.Lock()
	switch {
	case ch.Resync, len(f.pending) >= maxPendingChanges:
		f.resync = true
		clear(f.pending)
	case !f.resync:
		f.pending[ch.Key] = struct{}{}
	}
	f.mu.Unlock()
	f.wakeUp()
}

// requeue puts back keys whose re-read failed, for the next pass; the
// caller wakes the feed after its backoff.
func (f *storeFeed) requeue(keys []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.resync {
		return // the next pass reads every key anyway
	}
	for _, k := range keys {
		if len(f.pending) >= maxPendingChanges {
			f.resync = true
			clear(f.pending)
			return
		}
		f.pending[k] = struct{}{}
	}
}

// wakeUp makes the feed's goroutine take another pass.
func (f *storeFeed) wakeUp() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// take returns what there is to re-read, and forgets it.
func (f *storeFeed) take() (keys []string, all bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	all, f.resync = f.resync, false
	for k := range f.pending {
		keys = append(keys, k)
	}
	clear(f.pending)
	return keys, all
}

// runFeed watches w for sh's keys until sh's context ends, and hands what the
// feed reports to reread (all: every key), on this one goroutine; onUp runs
// once the feed is established. The keys whose re-read failed, which reread
// returns, are read again after a backoff. A Watch that fails leaves the periodic
// re-reads on and is tried again every store-sync interval, logged once; a
// Store whose feed is off (errors.ErrUnsupported) is not asked again. The
// caller has added this goroutine to sh.wg.
func (sh *shared) runFeed(w Watcher, f *storeFeed, reread func(keys []string, all bool) (failed []string), onUp func()) {
	defer sh.wg.Done()
	for warned := false; ; {
		err := sh.watch(w, f)
		if err == nil {
			break
		}
		if sh.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errors.ErrUnsupported) {
			sh.log.Debug("wxtoken: the store has no change feed; re-reading it periodically", "err", err)
			return
		}
		if !warned {
			sh.log.Warn("wxtoken: the store's change feed did not start; re-reading the store periodically until it does",
				"err", err)
			warned = true
		}
		if !sleepCtx(sh.ctx, sh.cfg.storeSync) {
			return
		}
	}
	f.up.Store(true)
	onUp()
	// What changed before the feed was up and after the last periodic read.
	f.notify(StoreChange{Resync: true})
	var backoff time.Duration
	for {
		select {
		case <-sh.ctx.Done():
			return
		case <-f.wake:
		}
		failed := reread(f.take())
		if len(failed) == 0 {
			backoff = 0
			continue
		}
		// Never at once: a Store that fails fast must not make a hot loop.
		backoff = nextFeedBackoff(backoff, sh.cfg.storeSync)
		f.requeue(failed)
		if !sleepCtx(sh.ctx, backoff) {
			return
		}
		f.wakeUp()
	}
}

// nextFeedBackoff returns the wait after a failed pass that followed one of
// prev: feedRetryMin, then twice the last, at most limit.
func nextFeedBackoff(prev, limit time.Duration) time.Duration {
	if prev <= 0 {
		return min(feedRetryMin, limit)
	}
	return min(2*prev, limit)
}

// watch starts w's feed for f. Watch is user code: a panic is an error, and
// a Watch that ignores its context does not keep Close waiting.
func (sh *shared) watch(w Watcher, f *storeFeed) error {
	_, err := callout(sh.ctx, nil, "Store.Watch", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, w.Watch(ctx, f.notify)
	}, nil)
	return err
}

// sleepCtx waits for d, or until ctx ends, reporting false then.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// watchStore starts the change feed of a lone Client that newClient gave
// one (its Store is a Watcher, its store sync is on): one goroutine, which
// re-reads the key when the feed names it, and again after a backoff when
// that read failed; once the feed is up, the sync timer runs at
// feedSafetyRounds times the interval, the safety re-read.
func (c *Client) watchStore() {
	if c.feed == nil {
		return
	}
	w := c.store.(Watcher)
	c.wg.Add(1)
	go c.runFeed(w, c.feed, func([]string, bool) []string {
		c.feed.rereads.Add(1)
		if !c.syncStore() {
			return []string{c.key}
		}
		return nil
	}, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.scheduleSyncLocked() // at the safety interval from now on
	})
}

// watchStore starts the Registry's change feed when its Store is a Watcher:
// one Watch and one goroutine for every key.
func (r *Registry) watchStore() {
	w, ok := r.sh.store.(Watcher)
	if !ok || r.sh.cfg.storeSync <= 0 {
		return
	}
	r.sh.feed = newStoreFeed(func(key string) bool { return r.fed(key) != nil })
	r.sh.wg.Add(1)
	go r.sh.runFeed(w, r.sh.feed, r.reread, func() {})
}

// fed returns the Client whose Store record the feed's key is, when the
// feed covers it. The feed names store keys: most are the Registry key, a
// Source's StoreKey is looked up in byStoreKey. A Client of snap that was
// forgotten since (snap lags entries by up to snapDelay) is passed over for
// the one that replaced it, which would miss the change otherwise.
func (r *Registry) fed(key string) *Client {
	if c := (*r.snap.Load())[key]; c != nil && c.key == key && c.cur.Load() != closedEntry && r.feedCovers(c) {
		return c
	}
	r.mu.Lock()
	c, _ := r.entries[key].(*Client) // not yet in snap: created moments ago
	if c == nil || c.key != key {
		c = r.byStoreKey[key]
	}
	r.mu.Unlock()
	if c != nil && r.feedCovers(c) {
		return c
	}
	return nil
}

// feedCovers reports whether c keeps its record in the Registry's Store, so
// that the Registry's feed tells of its changes and its batches read it.
func (r *Registry) feedCovers(c *Client) bool {
	return c.shared == r.sh || c.shared.parentStore
}

// reread re-reads the keys the feed named, or every key it covers, and
// returns the keys whose read failed.
func (r *Registry) reread(keys []string, all bool) []string {
	var due []*Client
	if all {
		due = r.wheelClients(r.feedCovers)
	} else {
		for _, k := range keys {
			if c := r.fed(k); c != nil {
				due = append(due, c)
			}
		}
	}
	r.sh.feed.rereads.Add(int64(len(due)))
	return storeKeys(r.syncMany(r.sh.ctx, due))
}

// storeKeys returns the store keys of clients.
func storeKeys(clients []*Client) []string {
	if len(clients) == 0 {
		return nil
	}
	keys := make([]string, len(clients))
	for i, c := range clients {
		keys[i] = c.key
	}
	return keys
}

// wheelClients returns the Clients of the wheel for which keep holds.
func (r *Registry) wheelClients(keep func(*Client) bool) []*Client {
	w := &r.wheel
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*Client
	for _, slot := range w.slots {
		for _, c := range slot {
			if keep(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// syncDue re-reads the keys of a wheel slot whose turn has come: those the
// change feed covers only while it is down or when safety says that the slot's
// safety re-read is due, those of the Registry's Store in batches where it is
// a BatchLoader, the others one by one. While the feed is up, the keys whose
// read failed are handed to it, to be read again after its backoff.
func (r *Registry) syncDue(due []*Client, safety bool) {
	feedUp := r.sh.feed != nil && r.sh.feed.up.Load()
	batch := due[:0:0]
	for _, c := range due {
		switch {
		case feedUp && r.feedCovers(c) && !safety:
		case r.feedCovers(c):
			batch = append(batch, c)
		default:
			c.sync() // a configuration, maybe a Store, of its own
		}
	}
	failed := r.syncMany(r.sh.ctx, batch)
	if feedUp && len(failed) > 0 {
		r.sh.feed.requeue(storeKeys(failed))
		r.sh.feed.wakeUp()
	}
}

// syncMany re-reads clients, which use the Registry's Store: in batches of
// LoadMany when it is a BatchLoader, else one Load each. It returns the
// clients whose read failed (an empty record is no failure).
func (r *Registry) syncMany(ctx context.Context, clients []*Client) (failed []*Client) {
	bl, ok := r.sh.store.(BatchLoader)
	if !ok {
		for _, c := range clients {
			if !c.syncStore() {
				failed = append(failed, c)
			}
		}
		return failed
	}
	for len(clients) > 0 {
		n := min(len(clients), storeBatch)
		failed = append(failed, r.syncBatch(ctx, bl, clients[:n])...)
		clients = clients[n:]
	}
	return failed
}

// syncBatch reads the records of clients with one LoadMany and applies each,
// and returns the clients whose read failed. A batch that fails is logged and
// applies nothing: the cached tokens stay served.
func (r *Registry) syncBatch(ctx context.Context, bl BatchLoader, clients []*Client) (failed []*Client) {
	keys := make([]string, len(clients))
	for i, c := range clients {
		keys[i] = c.key
	}
	ctx, cancel := context.WithTimeout(ctx, r.sh.cfg.storeTimeout)
	res, err := callout(ctx, nil, "BatchLoader.LoadMany", func(ctx context.Context) ([]LoadResult, error) {
		return bl.LoadMany(ctx, keys)
	}, nil)
	cancel()
	if err == nil && len(res) != len(keys) {
		err = fmt.Errorf("wxtoken: BatchLoader.LoadMany returned %d results for %d keys", len(res), len(keys))
	}
	if err != nil {
		r.sh.log.Warn("wxtoken: reading the store failed; serving the cached tokens and reading again later",
			"keys", len(keys), "err", err)
		return clients
	}
	for i, c := range clients {
		if !c.enter() {
			continue
		}
		if e := res[i].Err; e != nil && !errors.Is(e, ErrNotFound) {
			c.log.Warn("wxtoken: reading the store failed; treating it as empty",
				"appid", c.appID, "key", c.key, "err", e)
			failed = append(failed, c)
		}
		c.applySync(res[i].Token, res[i].Err)
		c.wg.Done()
	}
	return failed
}

// Preload makes the Registry hold keys, as a first Get of each would, and
// reads their tokens from the Store in batches: a Store that is a
// BatchLoader (redisstore, for one) is read with one LoadMany per 500 keys
// instead of one Load per key, so that a replica that starts with many keys
// serves them from a warm Store after a few hundred round trips. Lookups run
// a few at a time. Preload fetches nothing: a key whose Store holds no usable
// token fetches on first use, as without Preload. Keys the Registry holds
// with a valid token already are left alone.
//
// It returns the lookups that failed, joined (errors.Join), or ctx's error if
// ctx ended first; keys preloaded before that stay preloaded.
func (r *Registry) Preload(ctx context.Context, keys []string) error {
	var errs []error
	for len(keys) > 0 {
		n := min(len(keys), storeBatch)
		clients, err := r.lookupMany(ctx, keys[:n])
		if errors.Is(err, ErrClosed) {
			return ErrClosed
		}
		errs = append(errs, err)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wxtoken: preload: %w", err)
		}
		var own []*Client
		cold := clients[:0]
		for _, c := range clients {
			switch {
			case c.cur.Load().valid():
			case !r.feedCovers(c):
				own = append(own, c)
			default:
				cold = append(cold, c)
			}
		}
		r.syncMany(ctx, cold)
		for _, c := range own {
			c.sync()
		}
		keys = keys[n:]
	}
	return errors.Join(errs...)
}

// lookupMany returns the Clients of keys, creating them as needed, a few at a
// time, and the failures joined.
func (r *Registry) lookupMany(ctx context.Context, keys []string) ([]*Client, error) {
	var (
		mu      sync.Mutex
		clients = make([]*Client, 0, len(keys))
		errs    []error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, preloadLookups)
	)
	for _, k := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := r.client(ctx, k)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			clients = append(clients, c)
		})
	}
	wg.Wait()
	return clients, errors.Join(errs...)
}
