package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// A token the Client obtained is saved unless a newer one supersedes it: the
// next process to start, and every other replica, would otherwise fetch one
// of their own, and each fetch invalidates the token before it (for a record
// with a refresh token, the one the Store still holds may be dead already).
// So a Save that fails, or outlasts the save timeout, is not merely logged:
// the token waits in the save queue, one per lone Client or Registry, and is
// tried again with backoff until the Store takes it, holds a newer token
// (ErrNewerToken), a newer token of the Client supersedes it, or it expires
// (a record with a refresh token does not expire so: it is kept until saved).
//
// The queue holds one token per Client, the newest, and one goroutine runs
// while it is not empty, trying a few saves at a time: a Store that is down
// for a whole Registry of 100,000 keys costs 100,000 small entries and a
// bounded number of goroutines, and its failures back the whole queue off,
// since they are the Store's, not the key's. A save abandoned at its timeout
// may still land: its key is not tried again until that call ended, and only
// if it failed. Close waits for the saves under way, then gives the pending
// ones one last try, bounded by the save timeout.

// Backoff of the save queue after a round of attempts that failed.
const (
	saveRetryBase = time.Second
	saveRetryMax  = time.Minute
)

// saveRetryParallel is how many saves the queue tries at once.
const saveRetryParallel = 8

// saveQueue holds the tokens whose save failed, until they are saved.
type saveQueue struct {
	size atomic.Int64 // len(pending), read without mu by saves that succeed

	mu      sync.Mutex
	pending map[*Client]*pendingSave
	ready   []*pendingSave // to try, oldest first; entries dropped meanwhile are skipped
	running bool           // the queue's goroutine runs
	closing bool           // Close began: no goroutine may start
	last    bool           // Close's last try runs: a save that fails is not tried again
	closed  bool           // Close's last try is over: nothing is taken any more
}

// pendingSave is a Client's token that awaits its save.
type pendingSave struct {
	c        *Client
	tok      Token
	inFlight int  // abandoned calls saving this key that have not ended yet
	queued   bool // in ready
	dropped  bool // saved or superseded: no longer in pending
}

func newSaveQueue() *saveQueue {
	return &saveQueue{pending: map[*Client]*pendingSave{}}
}

// saveFailed queues tok, whose save failed with err (not ErrNewerToken), for
// another try.
func (c *Client) saveFailed(tok Token, err error) {
	if !c.saves.add(c.shared, c, tok) {
		c.log.Error("wxtoken: closing with a token the store did not take; the next start fetches another",
			"appid", c.appID, "key", c.key, "token", fingerprint(tok.AccessToken), "err", err)
		return
	}
	if tok.Refresh != "" {
		c.log.Error("wxtoken: saving a record with its refresh token failed; retrying until it is saved",
			"appid", c.appID, "key", c.key, "token", fingerprint(tok.AccessToken), "err", err)
		return
	}
	c.log.Warn("wxtoken: saving the token failed; serving it from memory and retrying in the background",
		"appid", c.appID, "key", c.key, "token", fingerprint(tok.AccessToken), "err", err)
}

// add queues tok for c, unless c already has a newer one queued, and starts
// the queue's goroutine on sh if it is not running. It reports false once the
// queue is closed.
func (q *saveQueue) add(sh *shared, c *Client, tok Token) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	e := q.entryLocked(c, tok, true)
	q.readyLocked(e)
	q.startLocked(sh)
	return true
}

// entryLocked returns c's pending entry, made to hold tok unless it holds a
// newer token, or one as old when latest is false (tok is then not the
// Client's latest token but one whose call was abandoned).
func (q *saveQueue) entryLocked(c *Client, tok Token, latest bool) *pendingSave {
	e := q.pending[c]
	if e == nil {
		e = &pendingSave{c: c, tok: tok}
		q.pending[c] = e
		q.size.Add(1)
	}
	if tok.CreateTime.After(e.tok.CreateTime) || (latest && tok.CreateTime.Equal(e.tok.CreateTime)) {
		e.tok = tok
	}
	return e
}

// readyLocked puts e in line to be tried, unless it is already, or a call
// saving its key still runs.
func (q *saveQueue) readyLocked(e *pendingSave) {
	if e.queued || e.dropped || e.inFlight > 0 {
		return
	}
	e.queued = true
	q.ready = append(q.ready, e)
}

// startLocked starts the queue's goroutine if there is work and none runs.
func (q *saveQueue) startLocked(sh *shared) {
	if q.running || q.closing || len(q.ready) == 0 {
		return
	}
	q.running = true
	sh.wg.Add(1)
	go q.run(sh)
}

// dropLocked forgets e: saved, superseded or expired.
func (q *saveQueue) dropLocked(e *pendingSave) {
	if e.dropped {
		return
	}
	e.dropped = true
	delete(q.pending, e.c)
	q.size.Add(-1)
}

// saved notes that tok, c's token, is in the Store (or that the Store holds a
// newer one): an older token queued for c is moot.
func (q *saveQueue) saved(c *Client, tok Token) {
	if q.size.Load() == 0 {
		return // the common case: nothing queued, no lock taken
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.pending[c]; e != nil && !e.tok.CreateTime.After(tok.CreateTime) {
		q.dropLocked(e)
	}
}

// abandoned notes that a call saving tok for c outlasted the save timeout
// and still runs: c's key is not tried again before it ended.
func (q *saveQueue) abandoned(c *Client, tok Token) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.entryLocked(c, tok, false).inFlight++
}

// lateEnded takes the outcome of an abandoned call saving tok for c: landed,
// it settles the entry unless a newer token is queued; failed, the entry is
// tried again.
func (q *saveQueue) lateEnded(c *Client, tok Token, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.pending[c]
	if q.closed || e == nil {
		return // saved or superseded meanwhile
	}
	e.inFlight = max(e.inFlight-1, 0)
	if (err == nil || errors.Is(err, ErrNewerToken)) && !e.tok.CreateTime.After(tok.CreateTime) {
		q.dropLocked(e)
		return
	}
	q.readyLocked(e)
	q.startLocked(c.shared)
}

// take returns up to n entries to try, with the tokens to try them with, and
// stops the goroutine (running false) when there are none and stop is set.
func (q *saveQueue) take(n int, stop bool) ([]*pendingSave, []Token) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var batch []*pendingSave
	var toks []Token
	for len(q.ready) > 0 && len(batch) < n {
		e := q.ready[0]
		q.ready[0] = nil
		q.ready = q.ready[1:]
		e.queued = false
		if e.dropped || e.inFlight > 0 {
			continue
		}
		batch, toks = append(batch, e), append(toks, e.tok)
	}
	if len(q.ready) == 0 {
		q.ready = nil // let the backing array go once drained
	}
	if len(batch) == 0 && stop {
		q.running = false
	}
	return batch, toks
}

// run tries the queued saves, a few at a time, backing off after a round
// with a failure, until the queue is empty or Close begins.
func (q *saveQueue) run(sh *shared) {
	defer sh.wg.Done()
	failures := 1 // the save that filled the queue has just failed
	for {
		if failures > 0 {
			d := doubled(saveRetryBase, saveRetryMax, failures)
			if !sleepCtx(sh.ctx, d+rand.N(d/2+1)) {
				q.stopped()
				return
			}
		} else if sh.ctx.Err() != nil {
			q.stopped()
			return
		}
		batch, toks := q.take(saveRetryParallel, true)
		if len(batch) == 0 {
			return
		}
		if q.tryAll(context.Background(), batch, toks) > 0 {
			failures++
			sh.log.Warn("wxtoken: the store still fails saves; retrying them with backoff",
				"pending", q.size.Load(), "round", failures)
		} else {
			failures = 0
		}
	}
}

// stopped marks the goroutine gone: Close's last try takes over.
func (q *saveQueue) stopped() {
	q.mu.Lock()
	q.running = false
	q.mu.Unlock()
}

// tryAll tries batch at once and returns how many failed.
func (q *saveQueue) tryAll(ctx context.Context, batch []*pendingSave, toks []Token) int {
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	for i, e := range batch {
		wg.Go(func() {
			if !q.try(ctx, e.c, toks[i]) {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// try saves tok for c once more, unless it is moot, and reports whether the
// entry is settled (saved, superseded, expired) rather than failed again.
func (q *saveQueue) try(ctx context.Context, c *Client, tok Token) (settled bool) {
	defer func() {
		if p := recover(); p != nil { // user code is called through callouts; this is a last net
			c.log.Error("wxtoken: retrying a save panicked", "appid", c.appID, "key", c.key,
				"err", c.panicError("the retried save", p, tok.AccessToken, tok.Refresh))
			settled = false
		}
	}()
	switch {
	case c.supersedes(tok):
		q.saved(c, tok) // the newer token's own save carries the key forward
		return true
	case tok.Refresh == "" && !time.Now().Before(tok.ExpiresAt()):
		c.log.Warn("wxtoken: a token expired before the store took it; no longer saving it",
			"appid", c.appID, "key", c.key, "token", fingerprint(tok.AccessToken))
		q.saved(c, tok)
		return true
	}
	err := c.saveRecord(ctx, tok, nil)
	switch {
	case err == nil:
		q.saved(c, tok)
		c.log.Info("wxtoken: the token is saved after a retry", "appid", c.appID, "key", c.key,
			"token", fingerprint(tok.AccessToken), "refresh_token", tok.Refresh != "")
		return true
	case errors.Is(err, ErrNewerToken):
		q.saved(c, tok)
		c.adoptNewer(ctx, request{})
		return true
	}
	q.retry(c, tok)
	return false
}

// retry puts c's entry back in line after a failed try of tok.
func (q *saveQueue) retry(c *Client, tok Token) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.pending[c]; e != nil && !q.closed && !q.last {
		q.readyLocked(e)
	}
}

// supersedes reports whether the Client has since obtained a token newer than
// tok (one that also carries a refresh token when tok does): its own save
// makes tok's moot, and so does the Store it was read from.
func (c *Client) supersedes(tok Token) bool {
	cur := c.cur.Load().tok
	return cur.CreateTime.After(tok.CreateTime) && (tok.Refresh == "" || cur.Refresh != "")
}

// endWork is Close's: it cancels the shared context, waits for the work under
// way, saves included, and gives the saves still pending one last try.
func (sh *shared) endWork() {
	sh.saves.beginClose()
	sh.cancel()
	sh.wg.Wait()
	sh.saves.lastTry(sh)
}

// beginClose keeps the queue's goroutine from starting again: Close is about
// to wait for the WaitGroup it would join.
func (q *saveQueue) beginClose() {
	q.mu.Lock()
	q.closing = true
	q.mu.Unlock()
}

// lastTry tries every pending save once more, a few at a time, within one
// save timeout, stopping early at a round in which every save failed (the
// Store is down: the rest would fail too). What it leaves unsaved is logged.
func (q *saveQueue) lastTry(sh *shared) {
	ctx, cancel := context.WithTimeout(context.Background(), sh.cfg.saveTimeout)
	defer cancel()
	q.mu.Lock()
	q.last = true
	q.mu.Unlock()
	for ctx.Err() == nil {
		batch, toks := q.take(saveRetryParallel, false)
		if len(batch) == 0 || q.tryAll(ctx, batch, toks) == len(batch) {
			break
		}
	}
	q.mu.Lock()
	q.closed = true
	left, refresh := len(q.pending), 0
	for _, e := range q.pending {
		if e.tok.Refresh != "" {
			refresh++
		}
	}
	q.pending, q.ready = nil, nil
	q.size.Store(0)
	q.mu.Unlock()
	if left > 0 {
		sh.log.Error("wxtoken: closing with tokens the store did not take; the next start fetches them again",
			"tokens", left, "with_refresh_token", refresh)
	}
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
		if !c.closed && c.revokedBeforeLocked(tok) == nil {
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
