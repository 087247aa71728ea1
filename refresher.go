package wxtoken

import (
	"context"
	"errors"
	"time"
)

// The refresh-ahead machinery is made of timers rather than a goroutine that
// sleeps: between renewals a Client runs nothing at all. The stale timer (armed
// by publishLocked) starts the renewal, the retry timer repeats a failed one when
// the failure gate opens, and the sync timer picks up tokens other processes put
// in the shared Store.

// refresh makes sure one renewal of a stale or expired token runs.
func (c *Client) refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshLocked()
}

// refreshLocked starts a renewal unless one runs already, the cached token does
// not need one, or the failure gate is shut (the retry timer then comes back).
func (c *Client) refreshLocked() {
	if c.closed || c.inflight != nil {
		return
	}
	if e := c.cur.Load(); e.tok.AccessToken == "" || e.state == stateFresh {
		return
	}
	if c.gate.check(time.Now()) != nil {
		return
	}
	c.startLocked(request{})
}

// scheduleRetryLocked arms a renewal for when the failure gate opens again, so
// that a token that is stale, or expired while WeChat failed, is renewed even if
// nobody asks for it. Callers with no token at all drive their own retries.
func (c *Client) scheduleRetryLocked() {
	if !c.cfg.background || c.closed {
		return
	}
	if e := c.cur.Load(); e.tok.AccessToken == "" || e.state == stateFresh {
		return
	}
	stopTimer(c.retryTimer)
	c.retryTimer = time.AfterFunc(time.Until(c.gate.until), c.refresh)
}

// scheduleSyncLocked arms the next re-read of the Store.
func (c *Client) scheduleSyncLocked() {
	if c.cfg.storeSync <= 0 || c.closed {
		return
	}
	c.syncTimer = time.AfterFunc(c.cfg.storeSync, c.sync)
}

// sync adopts a token that another process or replica saved in the Store, so
// that this Client moves to it well inside WeChat's five-minute overlap without
// fetching one of its own. A Store found empty (Redis restarted, a file
// deleted) gets the cached token back, so that the next process to start does
// not fetch a token that supersedes it.
func (c *Client) sync() {
	if !c.enter() {
		return
	}
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.fetchTimeout)
	defer cancel()
	stored, err := c.load(ctx)
	if errors.Is(err, ErrNotFound) {
		c.restore(ctx)
	}
	tok, ok := c.adopt(stored, err, request{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok && !c.closed {
		c.publishLocked(tok)
	}
	c.scheduleSyncLocked()
}

// restore saves the cached token, if it is still valid, into an empty Store.
func (c *Client) restore(ctx context.Context) {
	e := c.cur.Load()
	if e.state >= stateExpired {
		return
	}
	if err := c.store.Save(ctx, c.key, e.tok); err != nil && !errors.Is(err, ErrNewerToken) {
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
