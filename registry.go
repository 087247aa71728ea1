package wxtoken

import (
	"context"
	"errors"
	"fmt"

	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds the credentials of many accounts in one process: a platform
// with thousands of authorized accounts, a central token server. Credentials
// are created on first use from the Source that lookup returns for their key,
// and every one gets the whole engine (lock-free Get, one fetch per key across
// replicas, refresh ahead, the failure gate, Invalidate) at a per-key cost of
// a few hundred bytes: the Store, logger, HTTP client (one idle connection
// pool), context and configuration are the Registry's, not the key's, and
// nothing runs per key between its renewals: one timer for the whole Registry
// re-reads each key's Store record every 4 minutes (WithStoreSync), the keys
// spread evenly over the interval.
//
// A Registry is safe for concurrent use.
type Registry struct {
	lookup func(ctx context.Context, key string) (Source, error)
	sh     *shared
	opts   []Option // for the keys whose Source asks for options of its own

	// snap is a read-only copy of the ready keys of entries, which Get reads
	// without a lock; it is rebuilt, under mu, a moment after entries change
	// and whenever they grew by a quarter, so that its upkeep is amortized
	// O(1) per key. A key missing from it, or whose Client was closed since,
	// is served from entries.
	snap atomic.Pointer[map[string]*Client]

	mu sync.Mutex // guards the fields below
	// entries maps a key to its *Client, or to a *regEntry while its lookup
	// runs or after it failed: a ready key costs its Client and nothing more.
	entries map[string]any
	// byStoreKey maps the store key of each ready Client whose store key is
	// not its Registry key (a Source's StoreKey) to it, for the change feed,
	// which names store keys.
	byStoreKey map[string]*Client
	changes    int         // to entries since snap was built
	rebuild    *time.Timer // rebuilds snap a moment after a change
	closed     bool
	sweep      *time.Timer

	wheel syncWheel
}

// syncWheel re-reads the Store for every key of a Registry with one timer:
// keys are spread over syncSlots slots, and each tick syncs one slot, so that
// each key is read once per store-sync interval and the reads are spread
// evenly, with nothing armed per key.
type syncWheel struct {
	mu    sync.Mutex
	slots [syncSlots][]*Client
	next  int // the slot the next tick syncs
	round int // how many times next went round, for the feed's safety re-read
	fill  int // the slot the next key joins: round robin, so slots differ by one key at most
	timer *time.Timer
}

// syncSlots is how many slots the store-sync interval is cut into: for the
// default 4 min, a tick every second.
const syncSlots = 240

// regEntry is a key of a Registry whose lookup runs, or failed: the failure
// is kept for a while. Once the lookup succeeds, the key maps to its Client.
type regEntry struct {
	ready  chan struct{} // closed when the lookup ended
	client *Client       // set before ready is closed, on success
	err    error         // set before ready is closed, on failure
	until  time.Time     // when a failed lookup may be tried again
}

// Registry defaults.
const (
	// DefaultRegistryStoreSync is how often a Registry re-reads a key's Store
	// record, unless WithStoreSync says otherwise.
	DefaultRegistryStoreSync = 4 * time.Minute
	// DefaultLookupRetry is how long a failed lookup is answered from memory
	// before it is tried again (WithLookupRetry).
	DefaultLookupRetry = 5 * time.Second
	// registryIdleConns bounds the idle connections the Registry's HTTP
	// client keeps per host: enough for a burst of renewals to reuse them,
	// so that warming thousands of keys does not leave thousands of sockets
	// in TIME_WAIT.
	registryIdleConns = 32
)

// NewRegistry returns a Registry whose keys' Sources come from lookup. lookup
// runs once per key at a time, under the Registry's context (not a caller's),
// bounded by the fetch timeout; its failures are kept for WithLookupRetry (5 s)
// and handed to every caller meanwhile, not retried per call. opts apply to
// every key; a Source may add options of its own (an optional method
// ClientOptions() []Option) and choose its store key (StoreKey() string; the
// Registry key by default). A key with options of its own, or whose Source's
// API origin differs from the Registry's base URL (WeCom's, in a Registry of
// Official Accounts), gets a copy of the configuration: a few hundred bytes
// more, still sharing the Registry's Store, logger, context and connections. The store sync defaults to every 4 min.
func NewRegistry(lookup func(ctx context.Context, key string) (Source, error), opts ...Option) (*Registry, error) {
	if lookup == nil {
		return nil, errors.New("wxtoken: NewRegistry: nil lookup")
	}
	cfg := defaultConfig()
	cfg.storeSync = DefaultRegistryStoreSync
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	if cfg.httpClient == nil {
		cfg.httpClient = registryHTTPClient()
	}
	r := &Registry{lookup: lookup, sh: newShared(cfg, nil), opts: opts, entries: map[string]any{},
		byStoreKey: map[string]*Client{}}
	r.snap.Store(&map[string]*Client{})
	warnCleartext(cfg.baseURL, r.sh.log)
	r.watchStore() // before the first tick, which reads r.sh.feed
	r.mu.Lock()
	r.scheduleSweepLocked()
	r.scheduleTickLocked()
	r.mu.Unlock()
	return r, nil
}

// addToWheel gives c a slot of the sync wheel, the slots taking keys in turn.
func (r *Registry) addToWheel(c *Client) {
	w := &r.wheel
	w.mu.Lock()
	defer w.mu.Unlock()
	w.slots[w.fill] = append(w.slots[w.fill], c)
	w.fill = (w.fill + 1) % syncSlots
}

// scheduleTickLocked arms the wheel's next tick, when store sync is on.
func (r *Registry) scheduleTickLocked() {
	if d := r.sh.cfg.storeSync; d > 0 && !r.closed {
		r.wheel.timer = time.AfterFunc(d/syncSlots, r.tick)
	}
}

// tick syncs the keys of the next slot, one after the other, then arms the
// next tick: a Store that is slow slows the wheel down rather than piling up
// reads. Keys closed since are dropped from the slot.
func (r *Registry) tick() {
	w := &r.wheel
	w.mu.Lock()
	slot := w.slots[w.next][:0]
	for _, c := range w.slots[w.next] {
		if !c.isClosed() {
			slot = append(slot, c)
		}
	}
	clear(w.slots[w.next][len(slot):])
	w.slots[w.next] = slot
	due := append([]*Client(nil), slot...)
	// Each slot's safety re-read comes every feedSafetyRounds rounds, the
	// slots taking turns so that the reads are spread evenly.
	safety := (w.round+w.next)%feedSafetyRounds == 0
	w.next = (w.next + 1) % syncSlots
	if w.next == 0 {
		w.round++
	}
	w.mu.Unlock()
	r.syncDue(due, safety)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scheduleTickLocked()
}

// registryHTTPClient is the HTTP client of a Registry given none: one
// connection pool for every key.
func registryHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = registryIdleConns
	return &http.Client{Timeout: DefaultHTTPTimeout, Transport: tr}
}

// Get returns the credential of key, creating its Client on first use. A
// fresh credential costs a map read and two atomic loads.
func (r *Registry) Get(ctx context.Context, key string) (string, error) {
	if c, ok := (*r.snap.Load())[key]; ok {
		c.touch()
		if tok, err := c.Get(ctx); err != ErrClosed {
			return tok, err
		}
		// Forgotten since: look it up again below.
	}
	c, err := r.client(ctx, key)
	if err != nil {
		return "", err
	}
	return c.Get(ctx)
}

// Invalidate reports that WeChat rejected bad, the credential of key, and
// returns the one to retry with (see Client.Invalidate).
func (r *Registry) Invalidate(ctx context.Context, key, bad string) (string, error) {
	c, err := r.client(ctx, key)
	if err != nil {
		return "", err
	}
	return c.Invalidate(ctx, bad)
}

// Client returns the Client of key, looking its Source up on first use. The
// Client is a handle on the Registry: its Close forgets the key. Since its
// holder may call it directly, where the Registry cannot see the use, a key
// handed out by Client is never evicted as idle (WithEvictIdle); Forget, or the
// handle's Close, still drops it.
func (r *Registry) Client(ctx context.Context, key string) (*Client, error) {
	c, err := r.client(ctx, key)
	if err == nil {
		c.pinned.Store(true)
	}
	return c, err
}

// client is Client without pinning the key.
func (r *Registry) client(ctx context.Context, key string) (*Client, error) {
	for {
		v, creator, err := r.entry(key)
		if err != nil {
			return nil, err
		}
		if c, ok := v.(*Client); ok {
			c.touch()
			return c, nil
		}
		e := v.(*regEntry)
		if creator {
			go r.create(key, e)
		}
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("wxtoken: waiting for the lookup of %q: %w", key, context.Cause(ctx))
		}
		if e.client != nil {
			e.client.touch()
			return e.client, nil
		}
		if time.Now().Before(e.until) {
			return nil, e.err
		}
		r.mu.Lock()
		if r.entries[key] == any(e) {
			delete(r.entries, key) // the failure is old: look up again
		}
		r.mu.Unlock()
	}
}

// entry returns what key maps to, a *Client or a *regEntry, making a
// *regEntry (and reporting that the caller must run the lookup) when there is
// nothing.
func (r *Registry) entry(key string) (any, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false, ErrClosed
	}
	if v, ok := r.entries[key]; ok {
		return v, false, nil
	}
	e := &regEntry{ready: make(chan struct{})}
	r.entries[key] = e
	r.sh.wg.Add(1)
	return e, true, nil
}

// create looks key up and fills e with its Client or the failure.
func (r *Registry) create(key string, e *regEntry) {
	defer r.sh.wg.Done()
	defer close(e.ready)
	c, err := r.newClient(key)
	if err != nil {
		e.err = fmt.Errorf("wxtoken: registry key %q: %w", key, err)
		e.until = time.Now().Add(r.sh.cfg.lookupRetry)
		// Dropped once it may be retried, so that lookups of keys nobody
		// has (a typo, a probe) do not pile up.
		time.AfterFunc(r.sh.cfg.lookupRetry, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.entries[key] == any(e) {
				delete(r.entries, key)
			}
		})
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.entries[key] != any(e) { // closed, or forgotten meanwhile
		c.stop()
		e.err, e.until = ErrClosed, time.Now()
		return
	}
	r.entries[key] = c
	if c.key != key {
		r.byStoreKey[c.key] = c
	}
	e.client = c
	r.changedLocked()
}

// changedLocked notes a change of entries: snap is rebuilt at once when the
// Registry grew by a quarter since, else a moment later, so that a burst of
// new keys costs few rebuilds and a lone new key reaches the fast path soon.
func (r *Registry) changedLocked() {
	r.changes++
	if r.changes > len(*r.snap.Load())/4+64 {
		r.rebuildLocked()
		return
	}
	if r.rebuild == nil && !r.closed {
		r.rebuild = time.AfterFunc(snapDelay, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.rebuild = nil
			if r.changes > 0 {
				r.rebuildLocked()
			}
		})
	}
}

// snapDelay is how long a changed key may wait for the lock-free path.
const snapDelay = 100 * time.Millisecond

// rebuildLocked makes snap the ready keys of entries.
func (r *Registry) rebuildLocked() {
	snap := make(map[string]*Client, len(r.entries))
	for k, v := range r.entries {
		if c, ok := v.(*Client); ok {
			snap[k] = c
		}
	}
	r.snap.Store(&snap)
	r.changes = 0
}

// newClient runs lookup for key and builds its Client.
func (r *Registry) newClient(key string) (*Client, error) {
	ctx, cancel := context.WithTimeout(r.sh.ctx, r.sh.cfg.fetchTimeout)
	defer cancel()
	src, err := callout(ctx, nil, "the Registry's lookup", func(ctx context.Context) (Source, error) {
		return r.lookup(ctx, key)
	}, nil)
	switch {
	case err != nil:
		return nil, err
	case src == nil:
		return nil, errors.New("lookup returned no Source")
	}
	storeKey := key
	if s, ok := src.(interface{ StoreKey() string }); ok && s.StoreKey() != "" {
		storeKey = s.StoreKey()
	}
	if err := checkKey(storeKey); err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	info := sourceInfo(src, storeKey)
	sh := r.sh
	opts, own := src.(interface{ ClientOptions() []Option })
	// A Source whose API lives elsewhere (WeCom's qyapi) needs its own base
	// URL and Transport origins, unless WithBaseURL set one for all keys.
	elsewhere := !r.sh.cfg.baseURLSet && strings.TrimRight(info.APIOrigin, "/") != r.sh.cfg.baseURL
	if own || elsewhere {
		// Settings of its own: this key gets a configuration of its own.
		all := append([]Option(nil), r.opts...)
		inherited := true // the Registry's Store: its batches and feed cover the key
		if own {
			keyOpts := opts.ClientOptions()
			inherited = newConfig(keyOpts).store == nil
			all = append(all, keyOpts...)
		}
		cfg := newConfig(all)
		if !cfg.baseURLSet {
			cfg.baseURL = info.APIOrigin
		}
		if cfg.httpClient == nil {
			cfg.httpClient = r.sh.cfg.httpClient
		}
		if cfg.store == nil {
			cfg.store = r.sh.store
		}
		if cfg.logger == nil {
			cfg.logger = r.sh.log
		}
		if err := cfg.normalize(); err != nil {
			return nil, err
		}
		sh = newShared(cfg, r.sh)
		sh.parentStore = inherited
	}
	c := newKeyClient(sh, r, storeKey, src, info)
	c.regKey = key
	c.used.Store(true) // just asked for: not idle at the next sweep
	r.addToWheel(c)
	return c, nil
}

// Forget drops key: its Client stops (calls waiting on it get ErrClosed) and
// the next use of key looks it up again, as for a merchant who left or whose
// secret changed. The credential stays in the Store.
func (r *Registry) Forget(key string) { r.forget(key, nil) }

// forget drops key, but only while it still maps to only when only is set:
// an old handle's Close must not drop the Client that replaced it.
func (r *Registry) forget(key string, only *Client) {
	r.mu.Lock()
	v, ok := r.entries[key]
	if ok && (only == nil || v == any(only)) {
		delete(r.entries, key)
		if c, ok := v.(*Client); ok && r.byStoreKey[c.key] == c {
			delete(r.byStoreKey, c.key)
		}
		r.changedLocked()
	}
	r.mu.Unlock()
	if only != nil {
		only.stop()
	} else if c, ok := v.(*Client); ok {
		c.stop()
	}
}

// Close stops every key and waits for the work under way. Later calls get
// ErrClosed. Close is idempotent and returns nil.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	stopTimer(r.sweep)
	stopTimer(r.wheel.timer)
	stopTimer(r.rebuild)
	entries := r.entries
	r.entries = map[string]any{}
	r.byStoreKey = map[string]*Client{}
	r.snap.Store(&map[string]*Client{})
	r.mu.Unlock()
	for _, v := range entries {
		if c, ok := v.(*Client); ok {
			c.stop()
		}
	}
	r.sh.endWork()
	// Runs that were under way may have ended after their key was stopped
	// but before the context was cancelled: nothing of theirs is left.
	return nil
}

// Len returns how many keys the Registry holds.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// touch marks c used since the last eviction sweep, at the cost of one atomic
// load when it already is.
func (c *Client) touch() {
	if !c.used.Load() {
		c.used.Store(true)
	}
}

// scheduleSweepLocked arms the next eviction sweep, when eviction is on.
func (r *Registry) scheduleSweepLocked() {
	if d := r.sh.cfg.evictIdle; d > 0 && !r.closed {
		r.sweep = time.AfterFunc(d/2, r.evictIdle)
	}
}

// evictIdle forgets the keys nobody used since the last sweep, and marks the
// others unused for the next one: a key is evicted after being unused for
// between WithEvictIdle/2 and WithEvictIdle.
func (r *Registry) evictIdle() {
	r.mu.Lock()
	var idle []string
	for k, v := range r.entries {
		if c, ok := v.(*Client); ok && !c.pinned.Load() && !c.used.Swap(false) {
			idle = append(idle, k)
		}
	}
	r.mu.Unlock()
	for _, k := range idle {
		r.Forget(k)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scheduleSweepLocked()
}

// isClosed reports whether c was closed (or forgotten by its Registry).
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
