package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// unlockTimeout bounds the release of a cross-process lock; the lock's lease
// bounds the harm of a release that fails.
const unlockTimeout = 5 * time.Second

// Stable-token force refreshes: WeChat allows one per 30 s and 20 a day.
const (
	forceInterval = 30 * time.Second
	forcePerDay   = 20
)

// obtain produces a token for req: under the Store's lock where it has one, it
// reads the Store again (another process may have renewed the token), and only
// if that holds nothing usable it asks WeChat and saves the answer.
func (c *Client) obtain(ctx context.Context, req request) (Token, error) {
	if c.locker != nil {
		unlock, err := c.locker.Lock(ctx, c.key, c.cfg.lockLease)
		switch {
		case err == nil:
			defer c.release(unlock)
		case ctx.Err() != nil:
			return Token{}, fmt.Errorf("wxtoken: waiting for the store lock: %w", err)
		default:
			c.log.Warn("wxtoken: store lock unavailable; fetching without it",
				"appid", c.appID, "err", err)
		}
	}
	if tok, ok := c.reload(ctx, req); ok {
		return tok, nil
	}
	if err := c.guard(req); err != nil {
		return Token{}, err
	}
	tok, err := c.fetchNew(ctx, req)
	if err != nil {
		return Token{}, err
	}
	return c.save(ctx, tok, req), nil
}

func (c *Client) release(unlock func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	if err := unlock(ctx); err != nil {
		c.log.Warn("wxtoken: releasing the store lock failed; it lapses with its lease",
			"appid", c.appID, "err", err)
	}
}

// reload returns the Store's token when it serves req better than the cache.
func (c *Client) reload(ctx context.Context, req request) (Token, bool) {
	tok, err := c.load(ctx)
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
	tok, err := c.store.Load(ctx, c.key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.log.Warn("wxtoken: reading the store failed; treating it as empty",
			"appid", c.appID, "key", c.key, "err", err)
	}
	return tok, err
}

// usable reports whether a stored token may answer req: it must be neither the
// rejected one nor the cached one nor older than it, and it must be fresh, or at
// least unexpired when the cache has nothing valid to serve meanwhile.
func (c *Client) usable(tok Token, req request, now time.Time) bool {
	if tok.Validate() != nil || tok.AccessToken == req.bad.AccessToken || tok.DatedAhead(now) {
		return false
	}
	cur := c.cur.Load()
	haveValid := cur.state < stateExpired && cur.tok.AccessToken != req.bad.AccessToken
	if haveValid && (tok.AccessToken == cur.tok.AccessToken || cur.tok.CreateTime.After(tok.CreateTime)) {
		return false // nothing the cache does not already have
	}
	staleAt, expireAt := deadlines(tok, c.cfg.refreshBefore, false)
	return now.Before(staleAt) || (!haveValid && now.Before(expireAt))
}

// guard refuses to replace a rejected token that was obtained moments ago: a
// business API that rejects every token must not drive a fetch loop.
func (c *Client) guard(req request) error {
	if req.bad.CreateTime.IsZero() {
		return nil
	}
	// A negative age means a clock was wrong when the token was made: no reason
	// to trust it, nor to keep it.
	if age := time.Since(req.bad.CreateTime); age >= 0 && age < c.cfg.rejectGuard {
		return fmt.Errorf("%w (token %s is %s old; the guard is %s)", ErrRejectedTooSoon,
			fingerprint(req.bad.AccessToken), age.Round(time.Millisecond), c.cfg.rejectGuard)
	}
	return nil
}

// fetchNew asks WeChat for a token. In stable mode, normal mode comes first; a
// force refresh follows only when WeChat hands back the very token rejected.
func (c *Client) fetchNew(ctx context.Context, req request) (Token, error) {
	tok, err := c.fetchCounted(ctx, false)
	if err != nil || !c.cfg.stable || req.bad.AccessToken == "" || tok.AccessToken != req.bad.AccessToken {
		return tok, err
	}
	if err := c.allowForce(time.Now()); err != nil {
		return Token{}, err
	}
	c.stats.forceRefreshes.Add(1)
	return c.fetchCounted(ctx, true)
}

func (c *Client) fetchCounted(ctx context.Context, force bool) (Token, error) {
	c.stats.fetches.Add(1)
	tok, err := c.fetcher.fetch(ctx, force)
	if err != nil {
		c.stats.fetchFailures.Add(1)
		c.log.Warn("wxtoken: fetching a token failed", "appid", c.appID, "err", err,
			"retryable", IsRetryable(err))
		return Token{}, err
	}
	c.log.Info("wxtoken: fetched a new token", "appid", c.appID,
		"token", fingerprint(tok.AccessToken), "expires_in", tok.ExpiresIn, "force", force)
	return tok, nil
}

// allowForce books a force refresh at now if WeChat's limits allow one.
func (c *Client) allowForce(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	recent := c.forces[:0]
	for _, t := range c.forces {
		if now.Sub(t) < 24*time.Hour {
			recent = append(recent, t)
		}
	}
	c.forces = recent
	if n := len(recent); n >= forcePerDay {
		return fmt.Errorf("%w: %d force refreshes in the last 24 h", ErrForceRefreshLimited, n)
	} else if n > 0 && now.Sub(recent[n-1]) < forceInterval {
		return fmt.Errorf("%w: the last one was %s ago, WeChat requires %s",
			ErrForceRefreshLimited, now.Sub(recent[n-1]).Round(time.Second), forceInterval)
	}
	c.forces = append(c.forces, now)
	return nil
}

// save persists tok. A Store that holds a newer token keeps it, and that one is
// served instead; a Store that fails is logged and the token served from memory.
func (c *Client) save(ctx context.Context, tok Token, req request) Token {
	err := c.store.Save(ctx, c.key, tok)
	switch {
	case err == nil:
	case errors.Is(err, ErrNewerToken):
		if newer, ok := c.reload(ctx, req); ok {
			return newer
		}
	default:
		c.log.Warn("wxtoken: saving the token failed; serving it from memory",
			"appid", c.appID, "key", c.key, "err", err)
	}
	return tok
}
