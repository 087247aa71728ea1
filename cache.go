package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// state is where a cached token stands. Timers, not readers, move an entry from
// one state to the next, so that the read path needs no clock.
type state uint8

const (
	stateFresh   state = iota // served as it is
	stateStale                // served, while one refresh runs
	stateExpired              // callers wait for a fetch
	stateClosed               // the Client is closed
)

// entry is an immutable snapshot published through Client.cur: a state change
// publishes a new entry, so that a reader needs one atomic load and nothing else.
type entry struct {
	tok   Token
	state state
}

// emptyEntry stands for "no token yet" and closedEntry for a closed Client.
// Neither is ever modified; with them, the read path needs no nil check.
var (
	emptyEntry  = &entry{state: stateExpired}
	closedEntry = &entry{state: stateClosed}
)

// call is one shared fetch. Its result is written before done is closed.
type call struct {
	done chan struct{}
	tok  Token
	err  error
}

// request says what a fetch is for. bad is the token a caller saw rejected
// (Invalidate), zero otherwise: a token equal to it is never the answer.
type request struct {
	bad Token
}

// gate remembers the last failure so that callers share it instead of each
// calling WeChat again: after a permanent error for a cool-down, after a
// retryable one for an exponential backoff.
type gate struct {
	shared   error // the failure as callers get it while the gate is shut
	until    time.Time
	failures int
}

// Backoff after retryable failures: base doubling to max, each delay stretched
// by up to half again at random so that clients spread out, never shortened, so
// the number of attempts in any window stays bounded. Permanent failures cool
// down for a minute, doubling while they repeat: a spent daily quota or a
// missing whitelist entry is not fixed within minutes, and every attempt until
// then is wasted on WeChat's side.
const (
	backoffBase = time.Second
	backoffMax  = time.Minute
	cooldown    = time.Minute
	cooldownMax = 10 * time.Minute
)

// check returns the remembered failure while the gate is shut.
func (g *gate) check(now time.Time) error {
	if g.shared == nil || !now.Before(g.until) {
		return nil
	}
	return g.shared
}

// record notes the outcome of an attempt made at now.
func (g *gate) record(err error, now time.Time) {
	if err == nil {
		*g = gate{}
		return
	}
	g.failures++
	if IsPermanent(err) {
		g.until = now.Add(doubled(cooldown, cooldownMax, g.failures))
	} else {
		d := doubled(backoffBase, backoffMax, g.failures)
		g.until = now.Add(d + rand.N(d/2+1))
	}
	// Formatted once here, not for each of the callers that will share it.
	g.shared = fmt.Errorf("%w (shared failure: WeChat is not called again before %s)",
		err, g.until.Format(time.RFC3339))
}

// doubled returns base doubled for each failure after the first, at most limit.
func doubled(base, limit time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// deadlines returns when tok turns stale and when it expires. The renewal margin
// is min(refreshBefore, ExpiresIn/2), widened by a random jitter of up to a tenth
// of it so that many clients do not renew in the same second.
func deadlines(tok Token, refreshBefore time.Duration, jitter bool) (staleAt, expireAt time.Time) {
	expireAt = tok.ExpiresAt()
	margin := min(refreshBefore, time.Duration(tok.ExpiresIn)*time.Second/2)
	if jitter && margin >= 10 {
		margin += rand.N(margin / 10)
	}
	return expireAt.Add(-margin), expireAt
}

func stateAt(now, staleAt, expireAt time.Time) state {
	switch {
	case now.Before(staleAt):
		return stateFresh
	case now.Before(expireAt):
		return stateStale
	}
	return stateExpired
}

// await joins the shared fetch, starting one if none runs, and waits for its
// result or for ctx, whichever comes first. ctx never cancels the fetch itself.
func (c *Client) await(ctx context.Context, req request) (Token, error) {
	tok, cl, err := c.join(req)
	if cl == nil {
		return tok, err
	}
	c.stats.waits.Add(1)
	select {
	case <-cl.done:
		return cl.tok, cl.err
	case <-ctx.Done():
		return Token{}, fmt.Errorf("wxtoken: waiting for a token: %w", context.Cause(ctx))
	}
}

// join returns the shared fetch to wait for, or, when there is nothing to wait
// for, the answer itself: the cached token, if a fetch that ended after the
// caller looked made it valid, or the reason no fetch may start.
func (c *Client) join(req request) (Token, *call, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Token{}, nil, ErrClosed
	}
	if c.inflight != nil {
		return Token{}, c.inflight, nil
	}
	if e := c.cur.Load(); e.state < stateExpired && e.tok.AccessToken != req.bad.AccessToken {
		return e.tok, nil, nil
	}
	if err := c.gate.check(time.Now()); err != nil {
		return Token{}, nil, err
	}
	return Token{}, c.startLocked(req), nil
}

// startLocked starts the one shared fetch. The caller holds c.mu, has checked
// that the Client is open and that no fetch runs.
func (c *Client) startLocked(req request) *call {
	cl := &call{done: make(chan struct{})}
	c.inflight = cl
	c.wg.Add(1)
	go c.run(cl, req)
	return cl
}

func (c *Client) run(cl *call, req request) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.fetchTimeout)
	defer cancel()
	tok, err := c.obtainSafely(ctx, req)
	c.finish(cl, tok, err)
}

// obtainSafely turns a panic anywhere in a fetch (a Store, a RoundTripper) into
// an error for every waiter instead of a crash of the process.
func (c *Client) obtainSafely(ctx context.Context, req request) (tok Token, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("wxtoken: panic while obtaining a token: %s",
				c.fetcher.redact(fmt.Sprint(r)))
		}
	}()
	return c.obtain(ctx, req)
}

// finish publishes the outcome of a shared fetch and hands it to its waiters.
func (c *Client) finish(cl *call, tok Token, err error) {
	c.mu.Lock()
	c.inflight = nil
	switch {
	case c.closed:
		tok, err = Token{}, ErrClosed
	case err == nil:
		c.gate.record(nil, time.Now())
		tok = c.publishLocked(tok)
	case errors.Is(err, ErrRejectedTooSoon), errors.Is(err, ErrForceRefreshLimited):
		// Our own guards, not WeChat failing: nothing to back off from.
	default:
		c.gate.record(err, time.Now())
		c.scheduleRetryLocked()
	}
	cl.tok, cl.err = tok, err
	c.mu.Unlock()
	close(cl.done)
}

// publishLocked makes tok the cached token unless the cache holds a newer valid
// one, arms the timers that will age it, and returns the token now cached.
func (c *Client) publishLocked(tok Token) Token {
	cur := c.cur.Load()
	if cur.state < stateExpired &&
		(sameToken(cur.tok, tok) || cur.tok.CreateTime.After(tok.CreateTime)) {
		return cur.tok
	}
	now := time.Now()
	staleAt, expireAt := deadlines(tok, c.cfg.refreshBefore, true)
	st := stateAt(now, staleAt, expireAt)
	c.cur.Store(&entry{tok: tok, state: st})
	c.armLocked(tok.AccessToken, staleAt.Sub(now), expireAt.Sub(now), st)
	c.log.Debug("wxtoken: token cached", "appid", c.appID, "token", fingerprint(tok.AccessToken),
		"expires_at", expireAt)
	if st == stateStale {
		c.refreshLocked()
	}
	return tok
}

func sameToken(a, b Token) bool {
	return a.AccessToken == b.AccessToken && a.CreateTime.Equal(b.CreateTime)
}

// armLocked replaces the timers that move the cached token to stale and expired.
func (c *Client) armLocked(access string, toStale, toExpired time.Duration, st state) {
	stopTimer(c.staleTimer)
	stopTimer(c.expireTimer)
	c.staleTimer, c.expireTimer = nil, nil
	if st == stateFresh {
		c.staleTimer = time.AfterFunc(toStale, func() { c.advance(access, stateStale) })
	}
	if st <= stateStale {
		c.expireTimer = time.AfterFunc(toExpired, func() { c.advance(access, stateExpired) })
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// advance moves the cached token to st, if it is still the token the timer was
// armed for, and starts the background refresh when it turns stale.
func (c *Client) advance(access string, st state) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.cur.Load()
	if c.closed || e.tok.AccessToken != access || e.state >= st {
		return
	}
	c.cur.Store(&entry{tok: e.tok, state: st})
	if c.cfg.background {
		c.refreshLocked()
	}
}
