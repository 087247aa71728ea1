package wxtoken

import (
	"log/slog"
	"net/http"
	"time"
)

// DefaultBaseURL is the WeChat API origin used unless WithBaseURL says otherwise.
const DefaultBaseURL = "https://api.weixin.qq.com"

// Defaults of the options below.
const (
	DefaultRefreshBefore = 300 * time.Second
	DefaultFetchTimeout  = 30 * time.Second
	DefaultHTTPTimeout   = 10 * time.Second
	DefaultStoreSync     = time.Minute
	DefaultRejectGuard   = 10 * time.Second
	DefaultLockLease     = 15 * time.Second
	DefaultStoreTimeout  = time.Second
	DefaultSaveTimeout   = 5 * time.Second
)

// An Option configures a Client in New.
type Option func(*config)

type config struct {
	store         Store
	httpClient    *http.Client
	baseURL       string
	baseURLSet    bool // WithBaseURL was given: Sources get it, else use their own
	refreshBefore time.Duration
	stable        bool
	logger        *slog.Logger
	key           string
	background    bool
	fetchTimeout  time.Duration
	storeSync     time.Duration
	rejectGuard   time.Duration
	lockLease     time.Duration
	storeTimeout  time.Duration
	saveTimeout   time.Duration
	minRenew      time.Duration
	lookupRetry   time.Duration // Registry only
	evictIdle     time.Duration // Registry only
	observer      Observer
	apiOrigins    []string // WithAPIOrigins, as given
	origins       []string // set by normalize: where a Transport may send the token
}

func defaultConfig() config {
	return config{
		baseURL:       DefaultBaseURL,
		refreshBefore: DefaultRefreshBefore,
		background:    true,
		fetchTimeout:  DefaultFetchTimeout,
		storeSync:     DefaultStoreSync,
		rejectGuard:   DefaultRejectGuard,
		lockLease:     DefaultLockLease,
		storeTimeout:  DefaultStoreTimeout,
		saveTimeout:   DefaultSaveTimeout,
		minRenew:      DefaultMinRenewInterval,
		lookupRetry:   DefaultLookupRetry,
	}
}

// WithStore sets where tokens are persisted and shared. The default is a FileStore
// under os.UserCacheDir()/wxtoken, or a MemoryStore (with a warning in the log)
// where that folder cannot be had. A Store that also implements Locker makes
// every Client sharing it fetch one token at a time.
func WithStore(s Store) Option { return func(c *config) { c.store = s } }

// WithHTTPClient sets the client used to call WeChat. The default has a
// DefaultHTTPTimeout timeout; a client without a timeout is still bounded by the
// fetch timeout (WithFetchTimeout). The Client uses a copy of hc that never
// follows a redirect, whatever hc.CheckRedirect says: a redirect answered by a
// token endpoint is an error (*StatusError), since following it would send the
// secret to the host it names.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithBaseURL sets the WeChat API origin, such as a wxtest server's URL or a
// regional endpoint. The default is DefaultBaseURL. Its scheme and host are
// also where a Transport sends the access_token (see WithAPIOrigins). A plain
// http URL other than a loopback address is accepted with a warning in the
// log: the secret then crosses the network unencrypted.
func WithBaseURL(u string) Option {
	return func(c *config) { c.baseURL, c.baseURLSet = u, true }
}

// WithAPIOrigins names origins, such as "https://api.weixin.qq.com", to which a
// Transport may send the access_token besides the base URL's. Each is a scheme
// and host, with a port where it is not the scheme's default, and nothing else;
// New fails on anything more. A Transport refuses requests for every other
// origin (ErrForeignOrigin). Calls add to the list.
func WithAPIOrigins(origins ...string) Option {
	return func(c *config) { c.apiOrigins = append(c.apiOrigins, origins...) }
}

// WithRefreshBefore sets how long before expiry a token is renewed. The margin
// actually used is min(d, ExpiresIn/2), so a short-lived token is renewed around
// half its life. The default is DefaultRefreshBefore (300 s).
func WithRefreshBefore(d time.Duration) Option { return func(c *config) { c.refreshBefore = d } }

// WithStableToken makes the Client use POST /cgi-bin/stable_token instead of
// GET /cgi-bin/token. Stable tokens are kept under their own store key, since
// WeChat keeps the two kinds apart too.
func WithStableToken() Option { return func(c *config) { c.stable = true } }

// WithLogger sets where the Client logs renewals and failures. The default is
// slog.Default() at Warn and above only (failures and fallbacks; renewals are
// logged at Info), looked up at each line, so that a later slog.SetDefault is
// followed. Log lines never hold the app secret or a full token; tokens are
// named by a short fingerprint.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithStoreKey overrides the key under which the token is stored. The default is
// the appid for plain tokens and appid + ".stable" for stable tokens. It lets a
// FileStore read a file written by another program, such as "access_token".
func WithStoreKey(key string) Option { return func(c *config) { c.key = key } }

// WithBackgroundRefresh turns the refresh-ahead timers on (the default) or off.
// With them off, nothing runs between calls: a token that turns stale is renewed
// when a caller next asks for it (still returning the old token at once).
func WithBackgroundRefresh(on bool) Option { return func(c *config) { c.background = on } }

// WithFetchTimeout bounds one shared fetch: the cross-process lock, the store
// and the HTTP round trip together. Callers' own contexts bound only their own
// waits. The default is DefaultFetchTimeout.
func WithFetchTimeout(d time.Duration) Option { return func(c *config) { c.fetchTimeout = d } }

// WithStoreSync sets how often the Client re-reads its Store to pick up a token
// another process or replica renewed, so that it never serves a token superseded
// more than d ago (WeChat keeps a superseded token valid for five minutes).
// Zero turns it off. The default is DefaultStoreSync.
func WithStoreSync(d time.Duration) Option { return func(c *config) { c.storeSync = d } }

// WithRejectGuard sets how long after a token was obtained a rejection of it
// (Invalidate) is refused instead of causing another fetch, so that a business API
// that rejects every token cannot drive a fetch loop. Each token in a row that
// was rejected that young doubles the wait for the next one, up to an hour, so
// such an API costs a few dozen fetches a day for a whole fleet; a token that
// lives to its normal renewal starts the count afresh. Zero turns the guard off.
// The default is DefaultRejectGuard.
func WithRejectGuard(d time.Duration) Option { return func(c *config) { c.rejectGuard = d } }

// WithLockLease sets how long a cross-process lock taken through a Locker store
// lasts before it lapses by itself, which bounds how long a crashed holder can
// delay the others. The default is DefaultLockLease.
func WithLockLease(d time.Duration) Option { return func(c *config) { c.lockLease = d } }

// WithStoreTimeout bounds each Load of the Store, and each release of its
// lock, so that a Store that hangs (an unreachable Redis, a stopped server)
// costs a caller at most about that long before the Client falls back to what
// it has: a cold caller then fetches without the Store, a Client with a valid
// token keeps serving it and tries again later. Waiting for the lock itself is
// bounded by the fetch timeout, since another process may hold it for a whole
// fetch. The default is DefaultStoreTimeout.
func WithStoreTimeout(d time.Duration) Option { return func(c *config) { c.storeTimeout = d } }

// WithSaveTimeout bounds each attempt to save a token the Client obtained
// (Save, or a LockLoader's SaveUnlock). Saves run after the callers got the
// token, so a longer bound costs no caller any latency; it keeps the Store's
// lock held while the save lasts, so that another process waiting for the
// lock reads the saved token instead of fetching its own. A save that fails
// or outlasts d is not dropped: it is tried again in the background, with
// backoff, until the Store takes it, holds a newer token, a newer token of
// the Client supersedes it, or it expires (a record with a refresh token
// never expires so). Close waits for saves under way, then gives the pending
// ones one last try, each step for at most d. The default is
// DefaultSaveTimeout, a few times the slowest FileStore save measured with 64
// saves at once on a busy disk (about 2 s).
func WithSaveTimeout(d time.Duration) Option { return func(c *config) { c.saveTimeout = d } }

// WithObserver sets an Observer that is told of every fetch, Store call, lock
// wait, caller's wait, rejection and failure-gate change, for metrics and
// traces. The default is none.
func WithObserver(o Observer) Option { return func(c *config) { c.observer = o } }

// WithMinRenewInterval sets the least time between a token's issue and a
// renewal nobody waits for, whatever lifetime WeChat claims: an upstream that
// says a token lives one second cannot make an idle Client fetch twice a
// second. Callers with no valid token still get one fetch at once. Lower it
// only for tests and benchmarks with deliberately short-lived tokens. The
// default is DefaultMinRenewInterval (1 min).
func WithMinRenewInterval(d time.Duration) Option { return func(c *config) { c.minRenew = d } }

// WithLookupRetry sets, for a Registry, how long a failed lookup of a key is
// answered from memory before lookup runs for that key again, so that a
// database that is down is not asked once per call. The default is
// DefaultLookupRetry. Lone Clients ignore it.
func WithLookupRetry(d time.Duration) Option { return func(c *config) { c.lookupRetry = d } }

// WithEvictIdle makes a Registry forget keys nobody used for d (between d/2
// and d, checked by one sweep every d/2 for all keys) through its Get or
// Invalidate: the accounts of merchants who left stop being renewed. Their
// credentials stay in the Store. Keys handed out by Registry.Client are not
// evicted (their holders use them directly).
// Zero, the default, keeps every key. Lone Clients ignore it.
func WithEvictIdle(d time.Duration) Option { return func(c *config) { c.evictIdle = d } }
