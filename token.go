package wxtoken

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Token is one access_token as WeChat issued it. Its JSON form is the cache file
// format: {"createTime":"2020-12-11T03:05:48.123Z","access_token":"...","expires_in":7200}.
type Token struct {
	AccessToken string    `json:"access_token"`
	ExpiresIn   int64     `json:"expires_in"` // seconds, as WeChat returned them
	CreateTime  time.Time `json:"createTime"` // when it was obtained

	// Rejections counts the tokens in a row before this one that a business
	// API rejected soon after they were obtained; zero for a token obtained
	// by a normal renewal (and then left out of the JSON). The Client spaces
	// out the replacement of rejected tokens by it (see WithRejectGuard), and
	// Stores keep it with the token so that every replica spaces them alike.
	Rejections int `json:"rejections,omitempty"`

	// Refresh is a refresh token that comes with the credential, such as an
	// Open Platform authorizer's authorizer_refresh_token: what obtains the
	// next one. A record with Refresh never lapses from a Store (no TTL), and
	// the Refresh a Source returns replaces the stored one in the same Save;
	// a Source that returns none keeps the stored one.
	Refresh string `json:"refresh_token,omitempty"`
}

// ExpiresAt reports when WeChat stops accepting the token.
func (t Token) ExpiresAt() time.Time {
	return t.CreateTime.Add(time.Duration(t.ExpiresIn) * time.Second)
}

// MaxClockSkew is how far ahead of the local clock a token's CreateTime may
// lie. A token dated further ahead was saved by a host whose clock was wrong.
const MaxClockSkew = 5 * time.Minute

// DatedAhead reports whether t claims to have been created more than
// MaxClockSkew after now. Such a token is never served, and a Store must not
// keep it in preference to a correctly dated one: its lifetime cannot be trusted,
// and treating it as the newest would pin it in place until the clock caught up.
func (t Token) DatedAhead(now time.Time) bool {
	return t.CreateTime.After(now.Add(MaxClockSkew))
}

// NewerThan reports whether a Store holding t keeps it when offered u at now
// (the newest-wins rule): t must have been created after u, and not after now.
// A record dated after the Store's clock was written by a host whose clock runs
// fast; its CreateTime cannot be compared with a correctly dated one, and
// keeping it would pin it in place, even after WeChat rejected it.
func (t Token) NewerThan(u Token, now time.Time) bool {
	return t.CreateTime.After(u.CreateTime) && !t.CreateTime.After(now)
}

// maxExpiresIn bounds the lifetimes a Token may claim. WeChat promises "within
// 7200 s"; a day leaves room for change while still catching a corrupt value
// that would otherwise schedule a refresh decades away.
const maxExpiresIn = 24 * 60 * 60

// MaxTokenLen bounds the length of a token a Token may hold. WeChat documents
// access_token as up to 512 characters; four times that leaves room for other
// credentials while refusing a value that is plainly not a token.
const MaxTokenLen = 2048

// Validate reports whether t can be used at all: it must have a token of at
// most MaxTokenLen printable ASCII characters (no space, no control character,
// nothing outside ASCII), a positive lifetime of at most a day, and a creation
// time. It says nothing about expiry. The decoders of WeChat's answers and every
// Store use it, so that a malformed record is corrupt rather than a token, and a
// hostile upstream cannot smuggle newlines or terminal escapes into a token.
func (t Token) Validate() error {
	switch {
	case t.AccessToken == "":
		return fmt.Errorf("%w: empty access_token", ErrInvalidToken)
	case len(t.AccessToken) > MaxTokenLen:
		return fmt.Errorf("%w: access_token is %d bytes long, the limit is %d",
			ErrInvalidToken, len(t.AccessToken), MaxTokenLen)
	case !printable(t.AccessToken):
		return fmt.Errorf("%w: access_token has a byte outside printable ASCII", ErrInvalidToken)
	case len(t.Refresh) > MaxTokenLen || (t.Refresh != "" && !printable(t.Refresh)):
		return fmt.Errorf("%w: refresh_token is over %d bytes or not printable ASCII", ErrInvalidToken, MaxTokenLen)
	case t.ExpiresIn <= 0:
		return fmt.Errorf("%w: expires_in %d is not positive", ErrInvalidToken, t.ExpiresIn)
	case t.ExpiresIn > maxExpiresIn:
		return fmt.Errorf("%w: expires_in %d exceeds %d", ErrInvalidToken, t.ExpiresIn, maxExpiresIn)
	case t.CreateTime.IsZero():
		return fmt.Errorf("%w: no createTime", ErrInvalidToken)
	}
	return nil
}

// printable reports whether s consists of visible ASCII characters only.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// Client obtains, caches, persists and renews the access_token of one WeChat
// Official Account. It is safe for concurrent use; create one per appid and share
// it. A fresh token is returned by Get without locking, reading the clock, I/O or
// allocation; renewal happens in the background before the token expires.
type Client struct {
	cur atomic.Pointer[entry] // never nil: emptyEntry until a token is cached

	// shared is what Clients of one Registry have in common (a lone Client
	// has its own): configuration, Store, logger, HTTP client, the context
	// that Close cancels and the WaitGroup it waits for. Per key there is
	// only what follows.
	*shared
	registry *Registry   // nil for a lone Client
	regKey   string      // the Registry's key for this Client (its store key may differ)
	used     atomic.Bool // a Registry's key: used since the last eviction sweep
	pinned   atomic.Bool // a Registry's key handed out by Registry.Client: never evicted

	appID string
	key   string
	src   Source
	info  *SourceInfo // what src tells about itself, defaults filled in

	mu         sync.Mutex // guards the fields below and every publication to cur
	closed     bool
	inflight   *call
	active     int           // shared fetches under way, with the saves after them
	idle       chan struct{} // closed when active drops to zero (waitIdle)
	lastStart  int64         // when the last shared fetch started, in Unix nanoseconds
	lastIssued int64         // when WeChat last issued a token to this Client; 0: never
	gate       gate
	// renewTimer moves the cached token to stale, then to expired; syncTimer
	// re-reads the Store (a lone Client's; a Registry's wheel does it for its
	// keys).
	renewTimer *time.Timer
	syncTimer  *time.Timer

	// rejected is the last token a caller reported rejected: it is never
	// again the answer, nor adopted from the Store, nor kept in preference
	// to another valid token.
	rejected string
	// rare holds what most keys never need (a postponed renewal, failures,
	// force refreshes, replaced rejections): allocated on first use, so that
	// thousands of healthy keys do not pay for it.
	rare *rareState

	stats stats
}

// rareState is the part of a Client's state that only trouble brings.
type rareState struct {
	retryTimer *time.Timer // starts a postponed renewal
	retryAt    time.Time   // when retryTimer fires
	// storeFailures counts renewals in a row given up because the Store could
	// not be read or locked, for their backoff.
	storeFailures int
	forces        []time.Time // stable-token force refreshes of the last day, as far as known here
	// lastReplacement is the last token fetched to replace a rejected one,
	// with its Rejections, for Stores that do not keep that field.
	lastReplacement replacement
	// revoked is the error of the newest record read from the Store that
	// revoked the credential, dated revokedAt: a record read no later than
	// it is not served, however late a slow read hands it over.
	revoked   error
	revokedAt time.Time
}

// rareLocked returns c's rare state, allocating it on first use.
func (c *Client) rareLocked() *rareState {
	if c.rare == nil {
		c.rare = &rareState{}
	}
	return c.rare
}

// replacement is a token fetched to replace a rejected one.
type replacement struct {
	AccessToken string
	Rejections  int
}

// shared is the state every Client of one Registry shares.
type shared struct {
	cfg    config
	store  Store
	locker Locker       // nil when the store cannot lock
	hc     *http.Client // the HTTP client Sources get: never follows a redirect
	log    *slog.Logger

	ctx    context.Context // cancelled by Close; parent of every shared fetch
	cancel context.CancelFunc
	wg     *sync.WaitGroup // background work that Close waits for

	saves *saveQueue // saves to try again; a Registry's keys share one

	feed *storeFeed // the Store's change feed, when it is a Watcher; nil else
	// parentStore: a Registry key's configuration of its own that kept the
	// Registry's Store, so that the Registry's batches and feed cover it.
	parentStore bool
}

// newShared settles cfg's Store, logger and HTTP client. Its context and
// WaitGroup are parent's when parent is not nil (a Registry key with options
// of its own), so that the Registry's Close still ends and awaits its work.
func newShared(cfg config, parent *shared) *shared {
	sh := &shared{cfg: cfg, log: cfg.logger, store: cfg.store, hc: redirectSafe(cfg.httpClient)}
	if sh.log == nil {
		sh.log = defaultLogger()
	}
	if sh.store == nil {
		sh.store = defaultStore(sh.log)
	}
	sh.locker, _ = sh.store.(Locker)
	if parent != nil {
		sh.ctx, sh.cancel, sh.wg, sh.saves = parent.ctx, parent.cancel, parent.wg, parent.saves
	} else {
		sh.ctx, sh.cancel = context.WithCancel(context.Background())
		sh.wg = new(sync.WaitGroup)
		sh.saves = newSaveQueue()
	}
	return sh
}

// New returns a Client for the Official Account appID with the secret appSecret.
// It does no I/O: the token is loaded or fetched on first use. An empty appID or
// secret, or an invalid option value, is an error; so is a store key (see
// WithStoreKey) that FileStore would refuse, whatever the Store: the error then
// matches ErrInvalidKey.
//
// New is NewClient with the Official Account's Source (plain or, with
// WithStableToken, stable) under the key appID (appID + ".stable"). Mini
// Programs use the same endpoints: New works for them unchanged.
func New(appID, appSecret string, opts ...Option) (*Client, error) {
	if err := checkCredentials(appID, appSecret); err != nil {
		return nil, err
	}
	cfg := newConfig(opts)
	return newClient(defaultKey(appID, cfg.stable), newOfficialSource(appID, appSecret, cfg.stable), cfg)
}

// NewClient returns a Client for the credential src obtains, kept under key in
// the Store (WithStoreKey overrides it). Everything the Client does for the
// access_token it does for any Source: the lock-free Get, one fetch at a time
// per key across the processes sharing the Store, refresh ahead, the failure
// gate, store sync, Invalidate and the rejection backoff. Like New it does no
// I/O; the key must pass the rule WithStoreKey states (ErrInvalidKey).
func NewClient(key string, src Source, opts ...Option) (*Client, error) {
	if src == nil {
		return nil, errors.New("wxtoken: NewClient: nil Source")
	}
	return newClient(key, src, newConfig(opts))
}

// newConfig applies opts to the defaults.
func newConfig(opts []Option) config {
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg
}

func newClient(key string, src Source, cfg config) (*Client, error) {
	if cfg.key != "" {
		key = cfg.key
	}
	// Every Store gets keys a FileStore could use, checked before any I/O, so
	// that a bad key fails here rather than on each Load, Save and Lock.
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("wxtoken: store key: %w", err)
	}
	info := sourceInfo(src, key)
	if !cfg.baseURLSet {
		cfg.baseURL = info.APIOrigin
	}
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	sh := newShared(cfg, nil)
	warnCleartext(cfg.baseURL, sh.log)
	if _, ok := sh.store.(Watcher); ok && cfg.storeSync > 0 {
		// Before the sync timer is armed, which reads it.
		sh.feed = newStoreFeed(func(k string) bool { return k == key })
	}
	c := newKeyClient(sh, nil, key, src, info)
	c.watchStore()
	return c, nil
}

// newKeyClient returns the Client of one key on sh, with its store sync armed.
func newKeyClient(sh *shared, r *Registry, key string, src Source, info SourceInfo) *Client {
	c := &Client{shared: sh, registry: r, appID: info.AppID, key: key, src: src, info: &info}
	c.cur.Store(emptyEntry)
	c.mu.Lock()
	c.scheduleSyncLocked()
	c.mu.Unlock()
	return c
}

// Get returns a valid access_token. A fresh cached token is returned at once; a
// token close to expiry is returned at once too while one renewal runs in the
// background; only a missing or expired token makes the caller wait, for one
// fetch shared with every other caller. ctx bounds this caller's wait only.
func (c *Client) Get(ctx context.Context) (string, error) {
	if e := c.cur.Load(); e.state == stateFresh {
		return e.tok.AccessToken, nil
	}
	return c.getSlow(ctx)
}

// getSlow keeps everything but the one atomic load out of Get.
func (c *Client) getSlow(ctx context.Context) (string, error) {
	tok, err := c.slow(ctx)
	return tok.AccessToken, err
}

// Token is Get returning the whole Token, with its lifetime.
func (c *Client) Token(ctx context.Context) (Token, error) {
	if e := c.cur.Load(); e.state == stateFresh {
		return e.tok, nil
	}
	return c.slow(ctx)
}

func (c *Client) slow(ctx context.Context) (Token, error) {
	switch e := c.cur.Load(); e.state {
	case stateFresh:
		return e.tok, nil
	case stateStale:
		c.refresh()
		return e.tok, nil
	case stateClosed:
		return Token{}, ErrClosed
	}
	return c.await(ctx, request{})
}

// Invalidate reports that WeChat rejected the token bad (errcode 40001, 40014 or
// 42001) and returns the token to retry with. When the cache, or the store that
// other processes share, already holds a different valid token, that one is
// returned without a fetch; otherwise one fetch is shared by every caller that
// reported bad. Neither bad nor the Store's copy of it is ever the answer,
// whatever its CreateTime claims.
//
// A rejected token is replaced only once it is older than the reject guard,
// doubled for every token in a row that was rejected that young, up to an hour
// (see WithRejectGuard); until then the error matches ErrRejectedTooSoon, no
// lock or Store is consulted, and Get keeps serving the token (one API's
// rejection does not prove it dead for every API). In stable-token mode a
// force refresh is used only when WeChat hands back bad itself, under the
// Store's lock, within WeChat's limits booked in the Store for the whole fleet
// (ErrForceRefreshLimited).
func (c *Client) Invalidate(ctx context.Context, bad string) (string, error) {
	tok, cached, err := c.invalidate(ctx, bad)
	if c.cfg.observer != nil {
		outcome := outcomeOf(err)
		if cached {
			outcome = OutcomeCached
		}
		c.observe(Event{Kind: EventInvalidate, Outcome: outcome, Err: err})
	}
	return tok, err
}

// invalidate is Invalidate; cached reports an answer the cache had at hand.
func (c *Client) invalidate(ctx context.Context, bad string) (tok string, cached bool, err error) {
	// A fetch already under way for another reason may still end with bad; then
	// one more, made for this rejection, settles it. Each round judges bad
	// afresh: the issuer may have handed it back, dated now, and then the
	// rejection backoff applies to it.
	for round := range 2 {
		req, answer, err, answered := c.reject(bad)
		if answered {
			return answer, round == 0 && err == nil, err
		}
		tok, err := c.await(ctx, req)
		if err != nil || tok.AccessToken != bad {
			return tok.AccessToken, false, err
		}
	}
	return "", false, fmt.Errorf("%w (token %s)", ErrRejectedTooSoon, fingerprint(bad))
}

// Close stops the background renewal and waits for work under way to end,
// saves included; tokens whose save failed get one last try, bounded by the
// save timeout (WithSaveTimeout). Callers waiting for a fetch get ErrClosed,
// and so does every later call. Close is idempotent and always returns nil.
//
// A Client obtained from a Registry is a handle on it: its Close forgets the
// key (Registry.Forget), and the Registry's Close stops everything.
func (c *Client) Close() error {
	if c.registry != nil {
		c.registry.forget(c.regKey, c)
		return nil
	}
	if !c.stop() {
		return nil
	}
	c.endWork()
	return nil
}

// stop closes the Client's key: no more timers, ErrClosed from now on. It
// reports whether the Client was open.
func (c *Client) stop() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed = true
	c.cur.Store(closedEntry)
	stopTimer(c.renewTimer)
	stopTimer(c.syncTimer)
	if c.rare != nil {
		stopTimer(c.rare.retryTimer)
	}
	return true
}

// Key returns the Client's store key: an account and a mode, never a secret.
func (c *Client) Key() string { return c.key }

// BaseURL returns the origin the Client calls WeChat at (WithBaseURL, or its
// Source's default), without a trailing slash: tests against wxtest build
// business URLs from it.
func (c *Client) BaseURL() string { return c.cfg.baseURL }

// Stats counts what the Client has done since New.
type Stats struct {
	Fetches        int64 // requests sent to WeChat's token endpoint
	FetchFailures  int64 // of those, the ones that gave no token
	StoreLoads     int64 // tokens taken from the Store instead of WeChat
	ForceRefreshes int64 // stable-token requests with force_refresh
	Waits          int64 // calls that had to wait for a fetch: no valid token was cached
}

type stats struct {
	fetches, fetchFailures, storeLoads, forceRefreshes, waits atomic.Int64
}

// Stats returns the Client's counters, for metrics and tests.
func (c *Client) Stats() Stats {
	return Stats{
		Fetches:        c.stats.fetches.Load(),
		FetchFailures:  c.stats.fetchFailures.Load(),
		StoreLoads:     c.stats.storeLoads.Load(),
		ForceRefreshes: c.stats.forceRefreshes.Load(),
		Waits:          c.stats.waits.Load(),
	}
}

// fingerprint names a token in logs and errors without revealing it.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:4])
}

func defaultKey(appID string, stable bool) string {
	if stable {
		return appID + ".stable"
	}
	return appID
}

func defaultStore(log *slog.Logger) Store {
	dir, err := os.UserCacheDir()
	if err == nil {
		var fs *FileStore
		if fs, err = NewFileStore(filepath.Join(dir, "wxtoken")); err == nil {
			return fs
		}
	}
	log.Warn("wxtoken: no cache folder; tokens are kept in memory only and fetched again after a restart",
		"err", err)
	return NewMemoryStore()
}

func checkCredentials(appID, secret string) error {
	switch {
	case appID == "":
		return errors.New("wxtoken: empty appID")
	case secret == "":
		return errors.New("wxtoken: empty app secret")
	case len(appID) > 64 || strings.IndexFunc(appID, notKeyRune) >= 0:
		return fmt.Errorf("wxtoken: appID %q has characters outside [A-Za-z0-9_-]", appID)
	case strings.IndexFunc(secret, unicode.IsControl) >= 0 || strings.ContainsRune(secret, ' '):
		return errors.New("wxtoken: app secret contains spaces or control characters")
	}
	return nil
}

func notKeyRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
}

// normalize validates the options and settles what follows from them: the base
// URL without a trailing slash, the Transport's API origins, no store sync
// without background work.
func (cfg *config) normalize() error {
	u, err := url.Parse(cfg.baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("wxtoken: base URL %q is not an http(s) URL", cfg.baseURL)
	}
	cfg.baseURL = strings.TrimRight(cfg.baseURL, "/")
	if cfg.origins, err = apiOrigins(cfg.baseURL, cfg.apiOrigins); err != nil {
		return err
	}
	switch {
	case cfg.refreshBefore < 0:
		return errors.New("wxtoken: negative refresh margin")
	case cfg.fetchTimeout <= 0:
		return errors.New("wxtoken: fetch timeout must be positive")
	case cfg.lockLease <= 0:
		return errors.New("wxtoken: lock lease must be positive")
	case cfg.storeSync < 0, cfg.rejectGuard < 0:
		return errors.New("wxtoken: negative store sync interval or reject guard")
	case cfg.storeTimeout <= 0, cfg.saveTimeout <= 0:
		return errors.New("wxtoken: store and save timeouts must be positive")
	case cfg.minRenew < 0, cfg.lookupRetry < 0, cfg.evictIdle < 0:
		return errors.New("wxtoken: negative renewal floor, lookup retry or eviction time")
	}
	if !cfg.background {
		cfg.storeSync = 0
	}
	return nil
}
