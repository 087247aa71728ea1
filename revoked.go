package wxtoken

import (
	"errors"
	"time"
)

// A Store may hold records under a Client's key that are not credentials: an
// Open Platform authorizer's tombstone (the account cancelled its
// authorization), or a refresh token restored without an access token. A
// Source recognises its own through an optional method
//
//	CheckStored(tok Token) error
//
// which the Client calls on every record it reads from the Store (a read
// before a fetch, the read under the lock, the store sync, the change feed, a
// refused save's re-read). Nil: tok is a credential, served as usual. An
// error: tok is never served. When that error matches ErrRevoked, tok says the
// credential was revoked: the Client drops the token it caches, unless that
// one was obtained after tok, and its callers get the error, without a fetch,
// until the Store holds a newer record that CheckStored accepts. Any other
// error leaves fetching as it is: Fetch gets tok in FetchRequest.Current (a
// restored refresh token is used that way). CheckStored must be cheap and do
// no I/O; its error, like a Fetch's, holds no secret.

// ErrRevoked is matched by the error of a Source's CheckStored for a stored
// record that revokes the credential (see the Source documentation): the
// Client hands that error to its callers instead of fetching.
var ErrRevoked = errors.New("wxtoken: the credential is revoked")

// checkStored returns src's verdict on tok, a record read from the Store:
// nil when src has no CheckStored or accepts it. A panic in it is an error,
// not a revocation: the record is not served and fetching goes on.
func (c *Client) checkStored(tok Token) (err error) {
	s, ok := c.src.(interface{ CheckStored(Token) error })
	if !ok || tok.AccessToken == "" {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = c.panicError("Source.CheckStored", p, tok.AccessToken, tok.Refresh)
		}
	}()
	return s.CheckStored(tok)
}

// revocation returns the error by which stored, read from the Store with
// loadErr, revokes the credential, or nil.
func (c *Client) revocation(stored Token, loadErr error) error {
	if loadErr != nil {
		return nil
	}
	if err := c.checkStored(stored); errors.Is(err, ErrRevoked) {
		return err
	}
	return nil
}

// noteRevoked drops the cached token when stored, read from the Store with
// loadErr, revokes the credential and the cached token is not newer than it,
// and returns the revocation's error (nil when there is none). Callers then
// find nothing cached and the next read of the Store hands them the error.
func (c *Client) noteRevoked(stored Token, loadErr error) error {
	err := c.revocation(stored, loadErr)
	if err == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return err
	}
	c.rememberRevocationLocked(stored.CreateTime, err)
	cur := c.cur.Load()
	if !cur.valid() || cur.tok.NewerThan(stored, time.Now()) {
		return err
	}
	c.cur.Store(emptyEntry)
	stopTimer(c.renewTimer)
	c.renewTimer = nil
	if c.rare != nil {
		stopTimer(c.rare.retryTimer)
		c.rare.retryTimer = nil
	}
	c.log.Warn("wxtoken: the store says the credential is revoked; the cached token is dropped",
		"appid", c.appID, "key", c.key, "token", fingerprint(cur.tok.AccessToken), "err", err)
	return err
}

// rememberRevocationLocked keeps err, the revocation of a record dated at,
// unless a newer one is kept already. Reads of the Store overlap (the change
// feed's, the sync wheel's, a caller's): one that read the record the
// revocation replaced may be applied after the revocation, and must not bring
// the revoked token back.
func (c *Client) rememberRevocationLocked(at time.Time, err error) {
	rare := c.rareLocked()
	if rare.revoked == nil || at.After(rare.revokedAt) {
		rare.revoked, rare.revokedAt = err, at
	}
}

// revokedBeforeLocked returns the remembered revocation when tok, a record
// read from the Store, is not newer than it: tok is then not served.
func (c *Client) revokedBeforeLocked(tok Token) error {
	if c.rare == nil || c.rare.revoked == nil || tok.CreateTime.After(c.rare.revokedAt) {
		return nil
	}
	return c.rare.revoked
}
