package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
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
// nothing runs per key between its renewals except a Store re-read every 4
// minutes or so (WithStoreSync, ±10 %, spread over the keys).
//
// A Registry is safe for concurrent use.
type Registry struct {
	lookup func(ctx context.Context, key string) (Source, error)
	sh     *shared
	opts   []Option // for the keys whose Source asks for options of its own

	entries sync.Map // key → *regEntry

	mu     sync.Mutex // guards closed and the creation and removal of entries
	closed bool
	sweep  *time.Timer
}

// regEntry is one key of a Registry: its Client once looked up, or the
// failure of the last lookup, kept for a while.
type regEntry struct {
	client atomic.Pointer[Client]
	ready  chan struct{} // closed when the lookup ended
	err    error         // the lookup's failure, when client is nil
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
// Registry key by default). The store sync defaults to every 4 min (±10 %).
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
	r := &Registry{lookup: lookup, sh: newShared(cfg, nil), opts: opts}
	warnCleartext(cfg.baseURL, r.sh.log)
	r.mu.Lock()
	r.scheduleSweepLocked()
	r.mu.Unlock()
	return r, nil
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
	if v, ok := r.entries.Load(key); ok {
		if c := v.(*regEntry).client.Load(); c != nil {
			c.touch()
			if tok, err := c.Get(ctx); err != ErrClosed {
				return tok, err
			}
			// Forgotten since: look it up again below.
		}
	}
	c, err := r.Client(ctx, key)
	if err != nil {
		return "", err
	}
	return c.Get(ctx)
}

// Invalidate reports that WeChat rejected bad, the credential of key, and
// returns the one to retry with (see Client.Invalidate).
func (r *Registry) Invalidate(ctx context.Context, key, bad string) (string, error) {
	c, err := r.Client(ctx, key)
	if err != nil {
		return "", err
	}
	return c.Invalidate(ctx, bad)
}

// Client returns the Client of key, looking its Source up on first use. The
// Client is a handle on the Registry: its Close forgets the key.
func (r *Registry) Client(ctx context.Context, key string) (*Client, error) {
	for {
		e, creator, err := r.entry(key)
		if err != nil {
			return nil, err
		}
		if creator {
			go r.create(key, e)
		}
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("wxtoken: waiting for the lookup of %q: %w", key, context.Cause(ctx))
		}
		if c := e.client.Load(); c != nil {
			c.touch()
			return c, nil
		}
		if time.Now().Before(e.until) {
			return nil, e.err
		}
		r.entries.CompareAndDelete(key, e) // the failure is old: look up again
	}
}

// entry returns key's entry, making one (and reporting that the caller must
// fill it) when there is none.
func (r *Registry) entry(key string) (*regEntry, bool, error) {
	if v, ok := r.entries.Load(key); ok {
		return v.(*regEntry), false, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false, ErrClosed
	}
	v, loaded := r.entries.LoadOrStore(key, &regEntry{ready: make(chan struct{})})
	if !loaded {
		r.sh.wg.Add(1)
	}
	return v.(*regEntry), !loaded, nil
}

// create looks key up and fills e with its Client or the failure.
func (r *Registry) create(key string, e *regEntry) {
	defer r.sh.wg.Done()
	defer close(e.ready)
	c, err := r.newClient(key)
	if err != nil {
		e.err = fmt.Errorf("wxtoken: registry key %q: %w", key, err)
		e.until = time.Now().Add(r.sh.cfg.lookupRetry)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.stop()
		e.err, e.until = ErrClosed, time.Now().Add(time.Hour)
		return
	}
	e.client.Store(c)
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
	if s, ok := src.(interface{ ClientOptions() []Option }); ok {
		// Settings of its own: this key gets a configuration of its own.
		cfg := newConfig(append(append([]Option(nil), r.opts...), s.ClientOptions()...))
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
	}
	return newKeyClient(sh, r, storeKey, src, info), nil
}

// Forget drops key: its Client stops (calls waiting on it get ErrClosed) and
// the next use of key looks it up again, as for a merchant who left or whose
// secret changed. The credential stays in the Store.
func (r *Registry) Forget(key string) {
	v, ok := r.entries.LoadAndDelete(key)
	if !ok {
		return
	}
	if c := v.(*regEntry).client.Load(); c != nil {
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
	r.mu.Unlock()
	r.entries.Range(func(k, v any) bool {
		r.Forget(k.(string))
		return true
	})
	r.sh.cancel()
	r.sh.wg.Wait()
	// Runs that were under way may have ended after their key was stopped
	// but before the context was cancelled: nothing of theirs is left.
	return nil
}

// Len returns how many keys the Registry holds.
func (r *Registry) Len() int {
	n := 0
	r.entries.Range(func(any, any) bool { n++; return true })
	return n
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
	r.entries.Range(func(k, v any) bool {
		if c := v.(*regEntry).client.Load(); c != nil && !c.used.Swap(false) {
			r.Forget(k.(string))
		}
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scheduleSweepLocked()
}

// syncJitter spreads the store syncs of a Registry's keys: each key's first
// one comes at a random point of the interval, later ones ±10 % around it.
func syncJitter(d time.Duration, first bool) time.Duration {
	if first {
		return rand.N(d) + 1
	}
	return d - d/10 + rand.N(d/5+1)
}
