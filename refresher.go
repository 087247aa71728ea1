package wxtoken

import (
	"context"
	"errors"
	"time"
)

// The refresh-ahead machinery is made of timers rather than a goroutine that
// sleeps: between renewals a Client runs nothing at all. The stale timer (armed
// by publishLocked) starts the renewal, the retry timer starts one that had to
// wait (the failure gate was shut, or the last renewal was moments ago), and the
// sync timer picks up tokens other processes put in the shared Store.

// refresh makes sure one renewal of a stale or expired token runs.
func (c *Client) refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshLocked()
}

// refreshLocked starts a renewal unless one runs already or the cached token
// does not need one. A renewal that may not start now (the failure gate is
// shut, or the last token was issued less than the renewal floor ago) is
// postponed, never dropped: the retry timer comes back when it may.
func (c *Client) refreshLocked() {
	if c.closed || c.inflight != nil {
		return
	}
	if e := c.cur.Load(); e.tok.AccessToken == "" || e.state == stateFresh {
		return
	}
	now := time.Now()
	if at := c.renewableAtLocked(); now.Before(at) {
		c.retryAtLocked(at)
		return
	}
	c.startLocked(request{}, now)
}

// renewableAtLocked is the earliest moment a renewal nobody waits for may start.
func (c *Client) renewableAtLocked() time.Time {
	at := c.gate.until()
	if next := time.Unix(0, c.lastIssued).Add(c.cfg.minRenew); c.lastIssued != 0 && next.After(at) {
		at = next
	}
	return at
}

// scheduleRetryLocked arms a renewal for when it may start again, so that a
// token that is stale, or expired while WeChat failed, is renewed even if
// nobody asks for it. A fresh token needs none: its stale timer comes first,
// and refreshLocked postpones that one if it must. Callers with no token at all
// drive their own retries.
func (c *Client) scheduleRetryLocked() {
	if e := c.cur.Load(); e.tok.AccessToken == "" || e.state == stateFresh {
		return
	}
	c.retryAtLocked(c.renewableAtLocked())
}

// retryAtLocked (re)arms the retry timer to renew at at, and never sooner
// than backoffBase from now: whatever went wrong, a retry is not a hot loop.
func (c *Client) retryAtLocked(at time.Time) {
	if floor := time.Now().Add(backoffBase); at.Before(floor) {
		at = floor
	}
	if !c.cfg.background || c.closed || (c.rare != nil && c.rare.retryTimer != nil && c.rare.retryAt.Equal(at)) {
		return // already armed for then: stale readers call this on every Get
	}
	rare := c.rareLocked()
	stopTimer(rare.retryTimer)
	rare.retryAt = at
	rare.retryTimer = time.AfterFunc(time.Until(at), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if rare.retryAt.Equal(at) {
			rare.retryTimer = nil
		}
		c.refreshLocked()
	})
}

// scheduleSyncLocked (re)arms the next re-read of the Store of a lone
// Client: every store-sync interval, or feedSafetyRounds times that while the
// Store's change feed is up (it tells of the changes; this is the safety
// re-read). One timer at most: the feed's re-reads call it too.
func (c *Client) scheduleSyncLocked() {
	if c.cfg.storeSync <= 0 || c.closed || c.registry != nil {
		return // a Registry's keys are synced by its wheel
	}
	every := c.cfg.storeSync
	if c.feed != nil && c.feed.up.Load() {
		every *= feedSafetyRounds
	}
	stopTimer(c.syncTimer)
	c.syncTimer = time.AfterFunc(every, c.sync)
}

// sync adopts a token that another process or replica saved in the Store, so
// that this Client moves to it well inside WeChat's five-minute overlap without
// fetching one of its own. A Store found empty (Redis restarted, a file
// deleted) gets the cached token back, so that the next process to start does
// not fetch a token that supersedes it.
func (c *Client) sync() { c.syncStore() }

// syncStore is sync, reporting false when the read failed (an empty Store is
// no failure), so that the change feed can read again later.
func (c *Client) syncStore() bool {
	if !c.enter() {
		return true
	}
	defer c.wg.Done()
	stored, err := c.load(c.ctx)
	c.applySync(stored, err)
	return err == nil || errors.Is(err, ErrNotFound)
}

// applySync is sync's work on what a read of the Store returned, however it
// was read (a Load, or a batch of LoadMany); the caller has entered.
func (c *Client) applySync(stored Token, err error) {
	if errors.Is(err, ErrNotFound) {
		c.restore(c.ctx)
	}
	_ = c.noteRevoked(stored, err) // callers get the revocation at their next Get
	tok, ok := c.adopt(stored, err, request{})
	c.mu.Lock()
	defer c.mu.Unlock()
	// Checked again under the lock: a revocation applied since adopt read
	// the cache outranks this read.
	if ok && !c.closed && c.revokedBeforeLocked(tok) == nil {
		c.publishLocked(tok, time.Now())
	}
	c.scheduleSyncLocked()
}

// restore saves the cached token, if it is still valid, into an empty Store.
func (c *Client) restore(ctx context.Context) {
	e := c.cur.Load()
	if !e.valid() {
		return
	}
	if err := c.saveStore(ctx, c.key, e.tok); err != nil && !errors.Is(err, ErrNewerToken) {
		c.log.Warn("wxtoken: putting the cached token back into the empty store failed",
			"appid", c.appID, "key", c.key, "err", err)
	}
}

// enter registers background work with Close, or reports that the Client is
// closed and the work must not start.
func (c *Client) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}
