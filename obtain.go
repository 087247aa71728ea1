package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errStoreUnavailable is why a renewal gives up while a valid token is cached
// and the Store cannot be read or locked: fetching without the lock would let
// every replica fetch its own token and supersede the others' (during a Redis
// failover, hundreds of duplicates), while the cached token is still good. The
// renewal is retried with backoff.
var errStoreUnavailable = errors.New("wxtoken: the store is unavailable; keeping the cached token and renewing later")

// deliverFunc hands a token to the waiters of the shared fetch and returns the
// token the cache now holds. fetched says whether WeChat issued it just now.
type deliverFunc func(tok Token, fetched bool) Token

// obtain produces a token for req and delivers it. It reads the Store first
// (reading is not calling WeChat, and needs no lock), then, if WeChat may be
// called, takes the Store's lock, checks the cache and the Store again (another
// process, or this Client's store sync, may have renewed the token meanwhile),
// fetches, delivers, and saves the token before it unlocks.
func (c *Client) obtain(ctx context.Context, req request, deliver deliverFunc) error {
	var (
		stored  Token
		loadErr error
	)
	if !c.lockedReadSuffices(req) {
		stored, loadErr = c.load(ctx)
		if tok, ok := c.adopt(stored, loadErr, req); ok {
			deliver(tok, false)
			return nil
		}
		if err := c.noteRevoked(stored, loadErr); err != nil {
			return err
		}
		if loadErr == nil && req.bad.CreateTime.IsZero() && stored.AccessToken == req.bad.AccessToken {
			// The rejected token was not cached here (a cold replica, a restart)
			// but the Store knows its age and count: the backoff applies all the same.
			req.bad = stored
		}
		if err := c.mayCallWeChat(req); err != nil {
			return err
		}
	}
	storeDown := loadErr != nil && !errors.Is(loadErr, ErrNotFound) && !errors.Is(loadErr, ErrCorrupt)
	if storeDown && c.hasValid(req) {
		return fmt.Errorf("%w: %w", errStoreUnavailable, loadErr)
	}
	var lk *storeLock
	lockErr := loadErr
	if c.locker != nil && !storeDown {
		held, err := c.lockStore(ctx)
		switch {
		case err == nil:
			lk = held
			defer c.release(lk)
		case ctx.Err() != nil:
			return fmt.Errorf("wxtoken: waiting for the store lock: %w", err)
		case c.hasValid(req):
			return fmt.Errorf("%w: %w", errStoreUnavailable, err)
		}
		lockErr = err
	}
	if c.locker != nil && lk == nil {
		c.log.Warn("wxtoken: store unavailable and no valid token to serve; fetching without its lock",
			"appid", c.appID, "key", c.key, "err", lockErr)
	}
	current := stored
	if lk != nil {
		if tok, ok := c.cachedFor(req); ok {
			deliver(tok, false)
			return nil
		}
		stored, err := c.lockedRead(ctx, lk)
		if tok, ok := c.adopt(stored, err, req); ok {
			deliver(tok, false)
			return nil
		}
		if err := c.noteRevoked(stored, err); err != nil {
			return err
		}
		current = stored
	}
	tok, err := c.fetchNew(ctx, req, current, lk != nil || c.locker == nil)
	if err != nil {
		return err
	}
	if tok.Refresh == "" {
		tok.Refresh = current.Refresh // never lose a refresh token a Source did not replace
	}
	tok.Rejections = c.rejectionsAfter(req, time.Now())
	deliver(tok, true)
	c.save(tok, req, lk)
	return nil
}

// lockedReadSuffices reports whether obtain may skip its first, unlocked read
// of the Store: for a renewal nobody waits for (the cached token is still
// valid) on a LockLoader, whose lock comes with the record, while WeChat may
// be called. The read under the lock then finds what another replica saved,
// and the renewal costs the Store two round trips: lock and read, save and
// unlock. Otherwise the unlocked read comes first, as a cold replica and a
// shut failure gate need it (reading the Store is not calling WeChat).
func (c *Client) lockedReadSuffices(req request) bool {
	if _, ok := c.locker.(LockLoader); !ok || !req.renewal() || !c.hasValid(req) {
		return false
	}
	return c.mayCallWeChat(req) == nil
}

// lockedRead returns the Store's record read under lk: the one a LockLoader
// read with it, or a Load.
func (c *Client) lockedRead(ctx context.Context, lk *storeLock) (Token, error) {
	if lk.read == nil {
		return c.load(ctx)
	}
	tok, err := lk.read.Token, lk.read.Err
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.log.Warn("wxtoken: reading the store failed; treating it as empty",
			"appid", c.appID, "key", c.key, "err", err)
	}
	return tok, err
}

// mayCallWeChat returns the reason WeChat must not be called for req now: the
// failure gate is shut (other than by ErrAwaitingInput, whose Source calls
// WeChat for nothing), or req's rejected token is too young to be replaced.
func (c *Client) mayCallWeChat(req request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if err := c.gate.check(now); err != nil && !awaitingInput(err) {
		return refuse(err)
	}
	return refuse(c.checkRejectionLocked(req.bad, now))
}

// hasValid reports whether the cache holds a token that answers req.
func (c *Client) hasValid(req request) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servesLocked(c.cur.Load(), req)
}

// cachedFor returns the cached token if it settles req: for a renewal, a fresh
// one; for a rejection, any valid token other than the rejected one.
func (c *Client) cachedFor(req request) (Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.cur.Load()
	if !c.servesLocked(e, req) || (req.renewal() && e.state != stateFresh) {
		return Token{}, false
	}
	return e.tok, true
}

// release releases lk, unless SaveUnlock did.
func (c *Client) release(lk *storeLock) {
	if lk.saved {
		return
	}
	if err := c.unlockStore(lk.unlock); err != nil {
		c.log.Warn("wxtoken: releasing the store lock failed; it lapses with its lease",
			"appid", c.appID, "err", err)
	}
}

// reload returns the Store's token when it serves req better than the cache.
func (c *Client) reload(ctx context.Context, req request) (Token, bool) {
	tok, err := c.load(ctx)
	_ = c.noteRevoked(tok, err) // a save refused for a revocation: serve it no longer
	return c.adopt(tok, err, req)
}

// adopt returns tok, read from the Store with err, when it serves req better
// than the cache, and counts it.
func (c *Client) adopt(tok Token, err error, req request) (Token, bool) {
	if err != nil || !c.usable(tok, req, time.Now()) {
		return Token{}, false
	}
	if !sameToken(c.cur.Load().tok, tok) {
		c.stats.storeLoads.Add(1)
	}
	return tok, true
}

// load reads the Store, logging failures other than an empty store: a broken
// store is treated as an empty one, so that it never stops a fetch.
func (c *Client) load(ctx context.Context) (Token, error) {
	tok, err := c.loadStore(ctx, c.key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.log.Warn("wxtoken: reading the store failed; treating it as empty",
			"appid", c.appID, "key", c.key, "err", err)
	}
	return tok, err
}

// usable reports whether a stored token may answer req. It must be neither
// the token req reports rejected nor the last one any caller reported, nor
// older than the rejected one (which superseded it); it must be newer than a
// valid cached token; and it must be fresh, or at least unexpired when the
// cache has nothing valid to serve meanwhile. A record the Source's
// CheckStored refuses (a tombstone, a placeholder) is never usable, nor one
// not newer than the last revocation read (a slow read's older record).
func (c *Client) usable(tok Token, req request, now time.Time) bool {
	if tok.Validate() != nil || tok.DatedAhead(now) || tok.AccessToken == req.bad.AccessToken ||
		c.checkStored(tok) != nil {
		return false
	}
	if !req.bad.CreateTime.IsZero() && !tok.CreateTime.After(effectiveCreate(req.bad, now)) {
		return false
	}
	c.mu.Lock()
	cur := c.cur.Load()
	rejected := tok.AccessToken == c.rejected || c.revokedBeforeLocked(tok) != nil
	haveValid := c.servesLocked(cur, req)
	c.mu.Unlock()
	if rejected || (haveValid && (tok.AccessToken == cur.tok.AccessToken || cur.tok.NewerThan(tok, now))) {
		return false
	}
	staleAt, expireAt := deadlines(tok, c.cfg.refreshBefore, false, now)
	return now.Before(staleAt) || (!haveValid && now.Before(expireAt))
}

// fetchNew asks the Source for a credential, handing it current, the Store's
// record. For a Source that can force (stable_token), normal mode comes first;
// a force refresh follows only when WeChat hands back the very token rejected,
// mayForce holds (the Store's lock is held, where it has one: a force refresh
// kills the previous token at once, so two replicas must never both force),
// and the fleet's budget booked in the Store allows it.
func (c *Client) fetchNew(ctx context.Context, req request, current Token, mayForce bool) (Token, error) {
	fr := FetchRequest{Rejected: req.bad.AccessToken, Current: current}
	tok, err := c.fetchCounted(ctx, fr)
	if err != nil || c.info.ForcePerDay <= 0 || req.renewal() || tok.AccessToken != req.bad.AccessToken {
		return tok, err
	}
	if !mayForce {
		return Token{}, refuse(fmt.Errorf("%w: the store lock, which a force refresh needs, is unavailable",
			ErrForceRefreshLimited))
	}
	if err := c.bookForce(ctx, time.Now()); err != nil {
		return Token{}, refuse(err)
	}
	c.stats.forceRefreshes.Add(1)
	fr.Force = true
	return c.fetchCounted(ctx, fr)
}

func (c *Client) fetchCounted(ctx context.Context, req FetchRequest) (Token, error) {
	force := req.Force
	c.stats.fetches.Add(1)
	start := time.Now()
	tok, err := c.fetchUpstream(ctx, req)
	if c.cfg.observer != nil {
		c.observe(Event{Kind: EventFetch, Outcome: outcomeOf(err), Duration: time.Since(start), Force: force, Err: err})
	}
	if err != nil {
		c.stats.fetchFailures.Add(1)
		c.log.Warn("wxtoken: fetching a token failed", "appid", c.appID, "err", err,
			"retryable", IsRetryable(err))
		c.noteQuotaSpent(err)
		return Token{}, err
	}
	if tok.AccessToken == c.cur.Load().tok.AccessToken {
		c.log.Info("wxtoken: WeChat handed back the current token", "appid", c.appID,
			"token", fingerprint(tok.AccessToken), "expires_in", tok.ExpiresIn, "force", force)
	} else {
		c.log.Info("wxtoken: fetched a new token", "appid", c.appID,
			"token", fingerprint(tok.AccessToken), "expires_in", tok.ExpiresIn, "force", force)
	}
	// Below twice the renewal floor a token cannot be renewed ahead of expiry.
	if time.Duration(tok.ExpiresIn)*time.Second < 2*c.cfg.minRenew {
		c.log.Warn("wxtoken: WeChat claimed an implausibly short token lifetime; background renewals stay limited to one per renewal floor",
			"appid", c.appID, "expires_in", tok.ExpiresIn)
	}
	return tok, nil
}

// save persists tok, which the waiters already have, releasing lk with the
// same call when lk is a LockLoader's. A Store that holds a newer token keeps
// it, and the cache moves to that one; a Save that fails or outlasts the save
// timeout leaves tok served from memory and queued for another try.
func (c *Client) save(tok Token, req request, lk *storeLock) {
	// Not cancelled by Close, which waits for it: a process that closes its
	// Client right after its first Get (a command line tool) keeps the token.
	ctx := context.WithoutCancel(c.ctx)
	err := c.saveRecord(ctx, tok, lk)
	switch {
	case err == nil:
		c.saves.saved(c, tok)
	case errors.Is(err, ErrNewerToken):
		c.saves.saved(c, tok)
		c.adoptNewer(ctx, req)
	default:
		c.saveFailed(tok, err)
	}
}

// adoptNewer moves the cache to the newer token the Store kept instead of
// the one the Client saved, if it serves req.
func (c *Client) adoptNewer(ctx context.Context, req request) {
	newer, ok := c.reload(ctx, req)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.revokedBeforeLocked(newer) == nil {
		c.publishLocked(newer, time.Now())
	}
}
