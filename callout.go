package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Every call into user code (the Store, its Locker, the HTTP client and its
// RoundTripper) goes through callout: it runs on a goroutine of its own, with
// panics turned into errors, and the Client waits for it only as long as the
// context allows. So a Store that hangs past its context, or that blocks on a
// FIFO, delays the Client no longer than the timeout, and a callback that calls
// Client.Close returns instead of deadlocking (Close waits for the Client's own
// goroutines, and none of them is the callback's).

// callout runs f and returns its result, or ctx's error if ctx ends first.
// A result that arrives after the caller gave up is handed to abandoned, when
// set, so that a lock taken too late is released rather than held.
//
// scrub names tokens the call handles that a panic's value may quote and the
// Client may not know yet (a token being saved, the Store's refresh token).
func callout[T any](ctx context.Context, c *Client, what string, f func(context.Context) (T, error), abandoned func(T), scrub ...string) (T, error) {
	var after afterGivingUp[T]
	if abandoned != nil {
		after.late = func(v T, err error) {
			if err == nil {
				abandoned(v)
			}
		}
	}
	return calloutTracked(ctx, c, what, f, after, scrub...)
}

// afterGivingUp says what becomes of a call the caller gave up on: gaveUp
// runs as the caller gives up, before the call can end; late gets the call's
// result, success or failure, when it ends. Either may be nil.
type afterGivingUp[T any] struct {
	gaveUp func()
	late   func(T, error)
}

// calloutTracked is callout for a call whose fate matters after the caller
// gave up on it: a Save that may still land.
func calloutTracked[T any](ctx context.Context, c *Client, what string, f func(context.Context) (T, error), after afterGivingUp[T], scrub ...string) (T, error) {
	type result struct {
		v   T
		err error
	}
	var (
		mu     sync.Mutex
		gaveUp bool
		done   = make(chan result, 1)
	)
	go func() {
		var r result
		func() {
			defer func() {
				if p := recover(); p != nil {
					r.err = c.panicError(what, p, scrub...)
				}
			}()
			r.v, r.err = f(ctx)
		}()
		mu.Lock()
		late := gaveUp
		if !late {
			done <- r
		}
		mu.Unlock()
		if late && after.late != nil {
			after.late(r.v, r.err)
		}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case r := <-done:
		return r.v, r.err
	default:
		gaveUp = true
		if after.gaveUp != nil {
			after.gaveUp()
		}
	}
	var zero T
	return zero, fmt.Errorf("wxtoken: %s did not return in time: %w", what, context.Cause(ctx))
}

// panicError describes a panic in user code without the secret or any token
// the Client knows: a panicking Save prints the Token it was given.
func (c *Client) panicError(what string, p any, scrub ...string) error {
	if c == nil {
		// No Client yet (a Registry's lookup): nothing to scrub with, so the
		// value, which may hold a secret, is not quoted.
		return fmt.Errorf("wxtoken: panic in %s (its value is not shown: it may hold a secret)", what)
	}
	c.mu.Lock()
	cur := c.cur.Load().tok
	known := append([]string{cur.AccessToken, cur.Refresh, c.rejected}, scrub...)
	if c.rare != nil {
		known = append(known, c.rare.lastReplacement.AccessToken)
	}
	c.mu.Unlock()
	text := c.redact(fmt.Sprint(p), known...)
	err := fmt.Errorf("wxtoken: panic in %s: %s", what, text)
	c.log.Error("wxtoken: recovered from a panic", "appid", c.appID, "err", err)
	return err
}

// storeContext bounds one Store call by the store timeout.
func (c *Client) storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.storeTimeout)
}

func (c *Client) loadStore(ctx context.Context, key string) (Token, error) {
	ctx, cancel := c.storeContext(ctx)
	defer cancel()
	start := time.Now()
	tok, err := callout(ctx, c, "Store.Load", func(ctx context.Context) (Token, error) {
		return c.store.Load(ctx, key)
	}, nil)
	c.observeSince(EventStoreLoad, start, err)
	return tok, err
}

// saveStore saves tok under key within the store timeout: a record a caller
// waits for (a force-refresh booking) or one that a failure costs nothing
// (the cached token put back into an empty Store). A panic in Save scrubs tok
// from its text too: tok may not be cached yet.
func (c *Client) saveStore(ctx context.Context, key string, tok Token) error {
	ctx, cancel := c.storeContext(ctx)
	defer cancel()
	start := time.Now()
	_, err := callout(ctx, c, "Store.Save", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, c.store.Save(ctx, key, tok)
	}, nil, tok.AccessToken, tok.Refresh)
	err = redactSaved(err, tok)
	c.observeSince(EventStoreSave, start, err)
	return err
}

// saveRecord saves tok, the Client's own record, within the save timeout:
// with lk's SaveUnlock when lk is a LockLoader's lock (one call saves and
// releases it), else with Save. Nobody waits for it: the waiters have tok.
//
// A call that outlasts the timeout is abandoned, not forgotten: the save
// queue marks tok in flight until the call ends, and saves it again if the
// call failed, so that no two of the queue's saves of one key run at once
// and a Save that landed late is not repeated.
func (c *Client) saveRecord(ctx context.Context, tok Token, lk *storeLock) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.saveTimeout)
	defer cancel()
	what, save := "Store.Save", func(ctx context.Context) error { return c.store.Save(ctx, c.key, tok) }
	if lk != nil && lk.held != nil {
		lk.saved = true // released whatever the outcome; else it lapses with its lease
		what, save = "StoreLock.SaveUnlock", func(ctx context.Context) error { return lk.held.SaveUnlock(ctx, tok) }
	}
	start := time.Now()
	after := afterGivingUp[struct{}]{
		gaveUp: func() { c.saves.abandoned(c, tok) },
		late: func(_ struct{}, err error) {
			err = redactSaved(err, tok)
			c.observeSince(EventStoreSave, start, err) // the late outcome, with the whole duration
			c.saves.lateEnded(c, tok, err)
		},
	}
	_, err := calloutTracked(ctx, c, what, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, save(ctx)
	}, after, tok.AccessToken, tok.Refresh)
	err = redactSaved(err, tok)
	c.observeSince(EventStoreSave, start, err)
	return err
}

// redactSaved scrubs a failed save's error of the token it saved.
func redactSaved(err error, tok Token) error {
	if err == nil {
		return nil
	}
	return redactor{tokenRedaction(tok.AccessToken), tokenRedaction(tok.Refresh)}.err(err)
}

// storeLock is the Store's lock on the Client's key while it is held: taken
// by a Locker, or by a LockLoader, which read the record under it too and
// can save and release in one call.
type storeLock struct {
	unlock func(context.Context) error
	held   StoreLock   // a LockLoader's lock; nil for a plain Locker's
	read   *LoadResult // what the LockLoader read under the lock
	saved  bool        // released by SaveUnlock
}

// lockStore takes the Store's lock on the Client's key, waiting as long as ctx
// allows: another process may hold it for a whole fetch. A LockLoader's lock
// comes with the record it read.
func (c *Client) lockStore(ctx context.Context) (*storeLock, error) {
	start := time.Now()
	giveBack := func(lk *storeLock) {
		_ = c.unlockStore(lk.unlock) // taken after we gave up: nobody else will release it
	}
	var (
		lk  *storeLock
		err error
	)
	if ll, ok := c.locker.(LockLoader); ok {
		lk, err = callout(ctx, c, "LockLoader.LockLoad", func(ctx context.Context) (*storeLock, error) {
			held, rec, err := ll.LockLoad(ctx, c.key, c.cfg.lockLease)
			if err == nil && held == nil {
				err = errors.New("LockLoad returned no lock")
			}
			if err != nil {
				return nil, err
			}
			return &storeLock{unlock: held.Unlock, held: held, read: &rec}, nil
		}, giveBack)
	} else {
		lk, err = callout(ctx, c, "Locker.Lock", func(ctx context.Context) (*storeLock, error) {
			unlock, err := c.locker.Lock(ctx, c.key, c.cfg.lockLease)
			if err == nil && unlock == nil {
				err = errors.New("Lock returned no unlock function")
			}
			if err != nil {
				return nil, err
			}
			return &storeLock{unlock: unlock}, nil
		}, giveBack)
	}
	c.observeSince(EventLockWait, start, err)
	return lk, err
}

// unlockStore releases a lock within the store timeout, whatever ctx the
// fetch had left: the lease bounds the harm of a release that fails.
func (c *Client) unlockStore(unlock func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.storeTimeout)
	defer cancel()
	_, err := callout(ctx, c, "the store's unlock", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, unlock(ctx)
	}, nil)
	return err
}

// redact scrubs text of the Source's secrets and of tokens.
func (c *Client) redact(text string, tokens ...string) string {
	text = redactText(c.src, text)
	var r redactor
	for _, tok := range tokens {
		if tok != "" {
			r = append(r, tokenRedaction(tok))
		}
	}
	return r.text(text)
}

// fetchUpstream asks the Source for a credential; it and the HTTP client's
// RoundTripper are user code too.
func (c *Client) fetchUpstream(ctx context.Context, req FetchRequest) (Token, error) {
	req.HTTPClient = c.hc
	if c.cfg.baseURLSet {
		req.BaseURL = c.cfg.baseURL
	}
	started := time.Now()
	tok, err := callout(ctx, c, "Source.Fetch", func(ctx context.Context) (Token, error) {
		return c.src.Fetch(ctx, req)
	}, nil, req.Rejected, req.Current.AccessToken, req.Current.Refresh)
	if err == nil && tok.CreateTime.IsZero() {
		tok.CreateTime = started // a Source may leave the date to the Client
	}
	if err == nil {
		err = tok.Validate() // a Source of the user's own must not break the Client either
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrMalformedResponse, err)
		}
	}
	if err != nil {
		err = redactor{tokenRedaction(req.Rejected), tokenRedaction(req.Current.AccessToken),
			tokenRedaction(req.Current.Refresh)}.err(err)
	}
	return tok, err
}
