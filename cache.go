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

// valid reports whether the entry holds a token that may still be served.
func (e *entry) valid() bool { return e.state < stateExpired }

// emptyEntry stands for "no token yet" and closedEntry for a closed Client.
// Neither is ever modified; with them, the read path needs no nil check.
var (
	emptyEntry  = &entry{state: stateExpired}
	closedEntry = &entry{state: stateClosed}
)

// call is one shared fetch. Its result is written before done is closed.
type call struct {
	done    chan struct{}
	tok     Token
	err     error
	settled bool // finish ran (guarded by running on the fetch's goroutine only)
}

// errSettleFailed is what waiters get if recording a fetch's outcome panicked.
var errSettleFailed = errors.New("wxtoken: the fetch ended in an internal panic; see the log")

// request says what a fetch is for. bad is the token a caller saw rejected
// (Invalidate), zero for a renewal: a token equal to it is never the answer.
type request struct {
	bad Token
}

// renewal reports whether the request renews a token nobody reported rejected.
func (r request) renewal() bool { return r.bad.AccessToken == "" }

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

// DefaultMinRenewInterval bounds how often renewals that nobody waits for may
// start (WithMinRenewInterval), whatever lifetime upstream claims: a token
// said to live one second must not make an idle Client fetch every half second.
const DefaultMinRenewInterval = time.Minute

// gatedStoreReread bounds how often callers with nothing to serve re-read the
// Store while the gate is shut: reading it is not calling WeChat, but a caller
// retrying in a tight loop must not turn into a loop of Store reads either.
const gatedStoreReread = time.Second

// gate remembers the last failure so that callers share it instead of each
// calling WeChat again: after a permanent error for a cool-down, after a
// retryable one for an exponential backoff. It guards calls to WeChat only:
// the Store is read whether the gate is open or shut.
type gate struct {
	shared   *sharedFailure // the failure as callers get it while the gate is shut
	failures int
}

// sharedFailure is a failure handed to every caller while the gate is shut.
type sharedFailure struct {
	err   error
	until time.Time
	text  string // formatted once, not for each caller that shares it
}

func (f *sharedFailure) Error() string { return f.text }
func (f *sharedFailure) Unwrap() error { return f.err }

// check returns the remembered failure while the gate is shut.
func (g *gate) check(now time.Time) error {
	if g.shared == nil || !now.Before(g.shared.until) {
		return nil
	}
	return g.shared
}

// until reports when the gate opens; zero when it is open.
func (g *gate) until() time.Time {
	if g.shared == nil {
		return time.Time{}
	}
	return g.shared.until
}

// record notes the outcome of an attempt made at now.
func (g *gate) record(err error, now time.Time) {
	if err == nil {
		*g = gate{}
		return
	}
	g.failures++
	var until time.Time
	if IsPermanent(err) {
		until = now.Add(doubled(cooldown, cooldownMax, g.failures))
	} else {
		d := doubled(backoffBase, backoffMax, g.failures)
		until = now.Add(d + rand.N(d/2+1))
	}
	g.shared = &sharedFailure{err: err, until: until, text: fmt.Sprintf(
		"%v (shared failure: WeChat is not called again before %s)", err, until.Format(time.RFC3339))}
}

// doubled returns base doubled for each failure after the first, at most limit.
func doubled(base, limit time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// deadlines returns when tok turns stale and when it expires, judged at now.
// The renewal margin is min(refreshBefore, ExpiresIn/2), widened by a random
// jitter of up to a tenth of it so that many clients do not renew in the same
// second. A token dated ahead of now is aged as if it were MaxClockSkew older
// than it claims (see effectiveCreate).
func deadlines(tok Token, refreshBefore time.Duration, jitter bool, now time.Time) (staleAt, expireAt time.Time) {
	expireAt = effectiveCreate(tok, now).Add(time.Duration(tok.ExpiresIn) * time.Second)
	margin := min(refreshBefore, time.Duration(tok.ExpiresIn)*time.Second/2)
	if jitter && margin >= 10 {
		margin += rand.N(margin / 10)
	}
	return expireAt.Add(-margin), expireAt
}

// effectiveCreate is when tok may have been obtained, for ageing it. A token
// dated after now was made on a host whose clock runs fast, by an unknown
// amount up to MaxClockSkew (beyond that it is never served): trusting its
// date could serve it after WeChat expired it, so it is taken to be as old as
// the skew allows.
func effectiveCreate(tok Token, now time.Time) time.Time {
	if tok.CreateTime.After(now) {
		return tok.CreateTime.Add(-MaxClockSkew)
	}
	return tok.CreateTime
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
	cached, cl, err := c.join(req)
	if cl == nil {
		return cached, err
	}
	c.stats.waits.Add(1)
	start := time.Now()
	var tok Token
	select {
	case <-cl.done:
		tok, err = cl.tok, cl.err
	case <-ctx.Done():
		err = fmt.Errorf("wxtoken: waiting for a token: %w", context.Cause(ctx))
	}
	c.observeSince(EventWait, start, err)
	return tok, err
}

// join returns the shared fetch to wait for, or, when there is nothing to wait
// for, the answer itself: the cached token, if a fetch that ended after the
// caller looked made it valid, or the shared failure while the gate is shut and
// the Store was read moments ago.
func (c *Client) join(req request) (Token, *call, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Token{}, nil, ErrClosed
	}
	if c.inflight != nil {
		return Token{}, c.inflight, nil
	}
	if e := c.cur.Load(); c.servesLocked(e, req) {
		return e.tok, nil, nil
	}
	now := time.Now()
	if err := c.gate.check(now); err != nil && now.UnixNano()-c.lastStart < int64(gatedStoreReread) &&
		!c.inputArrivedLocked(err) {
		return Token{}, nil, err
	}
	return Token{}, c.startLocked(req, now), nil
}

// servesLocked reports whether e answers req: valid, and neither the token
// req reports rejected nor the last one any caller reported rejected.
func (c *Client) servesLocked(e *entry, req request) bool {
	return e.valid() && e.tok.AccessToken != req.bad.AccessToken && e.tok.AccessToken != c.rejected
}

// startLocked starts the one shared fetch. The caller holds c.mu, has checked
// that the Client is open and that no fetch runs.
func (c *Client) startLocked(req request, now time.Time) *call {
	cl := &call{done: make(chan struct{})}
	c.inflight = cl
	c.lastStart = now.UnixNano()
	c.active++
	c.wg.Add(1)
	go c.run(cl, req)
	return cl
}

// ended notes that a shared fetch, with the save after it, is over.
func (c *Client) ended() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active--; c.active == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// waitIdle waits until no shared fetch, and no save after one, is under way.
// Tests use it to look at a Store that the waiters of a fetch do not wait for.
func (c *Client) waitIdle() {
	c.mu.Lock()
	if c.active == 0 {
		c.mu.Unlock()
		return
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	<-idle
}

// run carries out one shared fetch. Its waiters get the token as soon as there
// is one, before it is saved: a slow or failing Store delays nobody.
func (c *Client) run(cl *call, req request) {
	defer c.wg.Done()
	defer c.ended()
	// A panic in recording the outcome (a user's slog handler) has released
	// the waiters already (finish's deferred close); it must not crash the
	// process, and the logger that would report it may be what panicked.
	defer func() { _ = recover() }()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.fetchTimeout)
	defer cancel()
	delivered := false
	deliver := func(tok Token, fetched bool) Token {
		got := c.finish(cl, tok, fetched, nil)
		delivered = true
		return got
	}
	err := c.obtainSafely(ctx, req, deliver)
	switch {
	case !delivered && !cl.settled:
		c.finish(cl, Token{}, false, err)
	case !delivered:
		// finish itself panicked: its deferred close already released the waiters.
	case err != nil:
		c.log.Warn("wxtoken: after the token was handed out", "appid", c.appID, "err", err)
	}
}

// obtainSafely is obtain with a last net under it: user code is already called
// through callouts that recover, but a panic anywhere else must not crash the
// process either.
func (c *Client) obtainSafely(ctx context.Context, req request, deliver deliverFunc) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = c.panicError("obtaining a token", r)
		}
	}()
	return c.obtain(ctx, req, deliver)
}

// finish publishes the outcome of a shared fetch, hands it to its waiters and
// returns the token they got. fetched says whether WeChat issued tok (rather
// than the Store holding it), which alone opens the failure gate.
//
// The waiters are released whatever happens, even if recording panics (a
// user's Observer or slog handler may); they then get errSettleFailed.
func (c *Client) finish(cl *call, tok Token, fetched bool, err error) Token {
	cl.settled = true
	cl.err = errSettleFailed
	defer close(cl.done)
	var before *sharedFailure
	cl.tok, before, cl.err = c.settle(cl, tok, fetched, err)
	if cl.err == nil {
		c.log.Debug("wxtoken: token cached", "appid", c.appID, "token", fingerprint(cl.tok.AccessToken),
			"expires_at", cl.tok.ExpiresAt())
	}
	c.observeGate(before)
	return cl.tok
}

// observeGate reports a change of the failure gate since it held before.
func (c *Client) observeGate(before *sharedFailure) {
	if c.cfg.observer == nil {
		return
	}
	c.mu.Lock()
	after := c.gate.shared
	c.mu.Unlock()
	switch {
	case after == before:
	case after != nil:
		c.observe(Event{Kind: EventGateShut, Outcome: outcomeOf(after.err), Until: after.until, Err: after.err})
	default:
		c.observe(Event{Kind: EventGateOpen, Outcome: OutcomeOK})
	}
}

// settle records the outcome of a shared fetch and returns what its waiters
// get, and the gate's failure as it was before.
func (c *Client) settle(cl *call, tok Token, fetched bool, err error) (_ Token, gateBefore *sharedFailure, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gateBefore = c.gate.shared
	if c.inflight == cl {
		c.inflight = nil
	}
	now := time.Now()
	if err == nil && !fetched {
		if rev := c.revokedBeforeLocked(tok); rev != nil {
			// Read from the Store before a revocation applied since.
			tok, err = Token{}, rev
		}
	}
	switch {
	case c.closed:
		tok, err = Token{}, ErrClosed
	case err == nil:
		if fetched {
			c.gate.record(nil, now)
			c.lastIssued = now.UnixNano()
			if tok.Rejections > 0 {
				c.rareLocked().lastReplacement = replacement{AccessToken: tok.AccessToken, Rejections: tok.Rejections}
			}
		}
		tok = c.publishLocked(tok, now)
	case ownRefusal(err):
		// The Client's own guards, not WeChat failing: nothing to back off from.
	case errors.Is(err, errStoreUnavailable):
		// Not WeChat failing either, so the gate stays open (a caller left with
		// nothing valid must still be able to fetch), but the renewal backs off.
		rare := c.rareLocked()
		rare.storeFailures++
		d := doubled(backoffBase, backoffMax, rare.storeFailures)
		c.retryAtLocked(now.Add(d + rand.N(d/2+1)))
		return tok, gateBefore, err
	default:
		c.gate.record(err, now)
	}
	if err == nil {
		if c.rare != nil {
			c.rare.storeFailures = 0
		}
	} else {
		c.scheduleRetryLocked()
	}
	return tok, gateBefore, err
}

// reopenGate opens the failure gate at once: the quotas were just cleared, so
// the 45009 that shut it no longer holds.
func (c *Client) reopenGate() {
	c.mu.Lock()
	before := c.gate.shared
	c.gate = gate{}
	c.refreshLocked() // a renewal the gate postponed may run now
	c.mu.Unlock()
	c.observeGate(before)
}

// refusal marks one of this Client's own refusals to call WeChat (its shut
// gate, its rejection backoff, its force-refresh budget), as opposed to a
// failure of an attempt. It is checked by type at the top of the error only:
// a Source's error may wrap another Client's refusal (a ticket's token
// Client's shut gate), which for this Client is a failure to back off from.
type refusal struct{ error }

func (r *refusal) Unwrap() error { return r.error }

// refuse marks err, when not nil, as this Client's own refusal.
func refuse(err error) error {
	if err == nil {
		return nil
	}
	return &refusal{err}
}

// ownRefusal reports whether err is this Client's own refusal.
func ownRefusal(err error) bool {
	_, ok := err.(*refusal)
	return ok
}

// publishLocked makes tok the cached token unless the cache holds a newer valid
// one, arms the timers that will age it, and returns the token now cached. A
// token reported rejected is never published again, and never kept in
// preference to another valid token.
func (c *Client) publishLocked(tok Token, now time.Time) Token {
	cur := c.cur.Load()
	if c.servesLocked(cur, request{}) &&
		(tok.AccessToken == c.rejected || sameToken(cur.tok, tok) || cur.tok.NewerThan(tok, now)) {
		return cur.tok
	}
	if tok.AccessToken == c.rejected {
		// Nothing better to serve, and the issuer handed the rejected token
		// back as its current one (WeCom does while it is valid): it is
		// cached again, dated now, so that rejecting it again backs off.
		c.rejected = ""
	}
	staleAt, expireAt := deadlines(tok, c.cfg.refreshBefore, true, now)
	st := stateAt(now, staleAt, expireAt)
	c.cur.Store(&entry{tok: tok, state: st})
	c.armLocked(tok.AccessToken, staleAt.Sub(now), expireAt.Sub(now), st)
	if st == stateStale {
		c.refreshLocked()
	}
	return tok
}

func sameToken(a, b Token) bool {
	return a.AccessToken == b.AccessToken && a.CreateTime.Equal(b.CreateTime)
}

// armLocked replaces the timer that moves the cached token to stale and, once
// that happened, to expired: one timer per key at a time.
func (c *Client) armLocked(access string, toStale, toExpired time.Duration, st state) {
	stopTimer(c.renewTimer)
	c.renewTimer = nil
	switch st {
	case stateFresh:
		expireAt := time.Now().Add(toExpired)
		c.renewTimer = time.AfterFunc(toStale, func() {
			if c.advance(access, stateStale) {
				c.armExpiry(access, expireAt)
			}
		})
	case stateStale:
		c.renewTimer = time.AfterFunc(toExpired, func() { c.advance(access, stateExpired) })
	}
}

// armExpiry arms the timer that moves access, now stale, to expired at expireAt.
func (c *Client) armExpiry(access string, expireAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.cur.Load().tok.AccessToken != access {
		return
	}
	stopTimer(c.renewTimer)
	c.renewTimer = time.AfterFunc(time.Until(expireAt), func() { c.advance(access, stateExpired) })
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// advance moves the cached token to st, if it is still the token the timer was
// armed for, and starts the background refresh when it turns stale. It
// reports whether it moved the token.
func (c *Client) advance(access string, st state) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.cur.Load()
	if c.closed || e.tok.AccessToken != access || e.state >= st {
		return false
	}
	c.cur.Store(&entry{tok: e.tok, state: st})
	if c.cfg.background {
		c.refreshLocked()
	}
	return true
}
