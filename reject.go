package wxtoken

import (
	"fmt"
	"time"
)

// The rejection backoff keeps a business API that rejects every token (the
// wrong account, an API the account may not call) from draining the daily
// quota: a rejected token may be replaced only once it is older than a window
// that starts at the reject guard and doubles with every token in a row that
// was rejected soon after it was obtained, up to rejectBackoffMax. The count
// travels with the token (Token.Rejections) through the Store, so the whole
// fleet agrees on the window, and the fetch the backoff allows does not reset
// it: only a token that lives to its normal renewal starts the count afresh.
// Such an API then costs a few dozen fetches a day, while callers keep getting
// WeChat's rejection at once.

// rejectBackoffMax caps the window: about 24 fetches a day once reached.
const rejectBackoffMax = time.Hour

// maxRejections caps Token.Rejections; the window is at its cap long before.
const maxRejections = 32

// rejectWindowLocked returns how old bad must be before it may be replaced.
func (c *Client) rejectWindowLocked(bad Token) time.Duration {
	if c.cfg.rejectGuard <= 0 {
		return 0
	}
	return doubled(c.cfg.rejectGuard, max(rejectBackoffMax, c.cfg.rejectGuard), c.rejectionsOfLocked(bad)+1)
}

// rejectionsOfLocked is bad's rejection count, from its record or, for a
// Store that does not keep the field, from what this Client gave it.
func (c *Client) rejectionsOfLocked(bad Token) int {
	n := bad.Rejections
	if c.rare != nil && c.rare.lastReplacement.AccessToken == bad.AccessToken {
		n = max(n, c.rare.lastReplacement.Rejections)
	}
	return min(max(n, 0), maxRejections)
}

// checkRejectionLocked refuses to replace bad while it is younger than its
// window. A token whose age is unknown (not the cached one) is not refused:
// the Store is read first, and what it holds decides.
func (c *Client) checkRejectionLocked(bad Token, now time.Time) error {
	if bad.CreateTime.IsZero() {
		return nil
	}
	window := c.rejectWindowLocked(bad)
	created := effectiveCreate(bad, now)
	if age := now.Sub(created); age < window {
		return &RejectedTooSoonError{ReopensAt: created.Add(window),
			detail: fmt.Sprintf("token %s is %s old; after %d rejected tokens in a row it may be replaced at %s",
				fingerprint(bad.AccessToken), age.Round(time.Millisecond), c.rejectionsOfLocked(bad), window)}
	}
	return nil
}

// RejectedTooSoonError is Invalidate's refusal, matching ErrRejectedTooSoon,
// to replace a token younger than its rejection window: ReopensAt is when
// the token will be old enough, so that a caller (a server's Retry-After)
// knows when asking again can help. Its text names the token by a
// fingerprint only.
type RejectedTooSoonError struct {
	ReopensAt time.Time
	detail    string
}

// Error is ErrRejectedTooSoon's text, the token's fingerprint, age and window.
func (e *RejectedTooSoonError) Error() string {
	return ErrRejectedTooSoon.Error() + " (" + e.detail + ")"
}

// Unwrap returns ErrRejectedTooSoon.
func (e *RejectedTooSoonError) Unwrap() error { return ErrRejectedTooSoon }

// rejectionsAfter returns the rejection count of the token fetched for req:
// zero for a renewal and for a token that was rejected late in its life, one
// more than the rejected token's when that one was rejected soon after its
// window opened (an API that rejects every token).
func (c *Client) rejectionsAfter(req request, now time.Time) int {
	if req.renewal() || req.bad.CreateTime.IsZero() {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(effectiveCreate(req.bad, now)) >= 2*c.rejectWindowLocked(req.bad) {
		return 0
	}
	return min(c.rejectionsOfLocked(req.bad)+1, maxRejections)
}

// reject notes that WeChat rejected bad. It returns the request a fetch for it
// would make, or, when Invalidate is answered without one, the answer: the
// cached token if it is another valid one, or the reason bad may not be
// replaced yet. It reads neither the Store nor the lock.
func (c *Client) reject(bad string) (req request, answer string, err error, answered bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return request{}, "", ErrClosed, true
	}
	e := c.cur.Load()
	if e.valid() && e.tok.AccessToken != bad {
		return request{}, e.tok.AccessToken, nil, true
	}
	req = request{bad: Token{AccessToken: bad}}
	if e.tok.AccessToken == bad {
		req.bad = e.tok
	}
	c.rejected = bad
	if err := c.checkRejectionLocked(req.bad, time.Now()); err != nil {
		return request{}, "", refuse(err), true
	}
	return req, "", nil, false
}
