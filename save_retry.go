package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A record that carries a refresh token (an Open Platform authorizer's) is the
// only copy of what obtains the next credential: when WeChat rotated the
// refresh token, the one the Store still holds may already be dead. So a
// failed Save of such a record is not merely logged, as for a plain token that
// the next fetch replaces: it is retried, with backoff, until it succeeds, the
// Store turns out to hold a newer record, or the Client is closed. Close waits
// for the retry and lets it make one last attempt, bounded by the store
// timeout.

// Backoff of the retried Save of a record with a refresh token.
const (
	saveRetryBase = time.Second
	saveRetryMax  = time.Minute
)

// saveFailed handles a Save of tok that failed with err (not ErrNewerToken).
func (c *Client) saveFailed(tok Token, err error) {
	if tok.Refresh == "" {
		c.log.Warn("wxtoken: saving the token failed; serving it from memory",
			"appid", c.appID, "key", c.key, "err", err)
		return
	}
	c.log.Error("wxtoken: saving a record with its refresh token failed; retrying until it is saved",
		"appid", c.appID, "key", c.key, "token", fingerprint(tok.AccessToken), "err", err)
	c.wg.Add(1)
	go c.retrySave(tok)
}

// retrySave saves tok again and again, with backoff, until the Store takes it
// or holds a newer record; once the Client is closed it tries one last time.
// It runs on the Client's WaitGroup, so Close waits for it.
func (c *Client) retrySave(tok Token) {
	defer c.wg.Done()
	defer func() {
		if p := recover(); p != nil { // a Store that panics is user code: log it, do not crash
			c.log.Error("wxtoken: the retried save panicked; the refresh token is not saved",
				"appid", c.appID, "key", c.key, "err", c.panicError("the retried Store.Save", p, tok.AccessToken, tok.Refresh))
		}
	}()
	for attempt := 1; ; attempt++ {
		closing := c.waitRetry(doubled(saveRetryBase, saveRetryMax, attempt))
		if !closing && c.supersedes(tok) {
			return // a newer record with its refresh token is being saved: it carries this one forward
		}
		err := c.saveStore(context.WithoutCancel(c.ctx), c.key, tok)
		switch {
		case err == nil:
			c.log.Info("wxtoken: the record with its refresh token is saved after a retry",
				"appid", c.appID, "key", c.key, "attempts", attempt+1)
			return
		case errors.Is(err, ErrNewerToken):
			return
		case closing:
			c.log.Error("wxtoken: closing with a record whose refresh token the Store never took; the next start recovers it",
				"appid", c.appID, "key", c.key, "err", err)
			return
		}
		c.log.Error("wxtoken: saving a record with its refresh token failed again; retrying",
			"appid", c.appID, "key", c.key, "attempt", attempt+1, "err", err)
	}
}

// waitRetry waits d, or until the Client closes; it reports the latter.
func (c *Client) waitRetry(d time.Duration) (closing bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-c.ctx.Done():
		return true
	}
}

// supersedes reports whether the Client has since obtained a record newer
// than tok that carries a refresh token: its own save (and retries) make
// tok's moot.
func (c *Client) supersedes(tok Token) bool {
	cur := c.cur.Load().tok
	return cur.Refresh != "" && cur.CreateTime.After(tok.CreateTime)
}

// Keep saves tok, a record obtained outside the Client's Source (such as an
// Open Platform authorizer's, from an authorization code), under the Client's
// key, and serves it when it is newer than the cached token. A Store holding
// a newer record keeps it (Keep returns nil then). A record with a refresh
// token that the Store does not take is not dropped: it is retried in the
// background, with backoff and logged at Error, until the Store takes it or
// holds a newer one, as the Client's own saves are; Close waits for that and
// lets it try once more. Keep returns the error of its first Save.
func (c *Client) Keep(ctx context.Context, tok Token) error {
	if err := tok.Validate(); err != nil {
		return err
	}
	if c.usable(tok, request{}, time.Now()) {
		c.mu.Lock()
		if !c.closed {
			c.publishLocked(tok, time.Now())
		}
		c.mu.Unlock()
	}
	err := c.saveStore(ctx, c.key, tok)
	if err == nil || errors.Is(err, ErrNewerToken) {
		return nil
	}
	if !c.enter() {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	defer c.wg.Done()
	c.saveFailed(tok, err)
	return err
}
