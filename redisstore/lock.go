package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/wxtoken/wxtoken"
)

// Lock takes the fetch lock for key, waiting while another process holds it,
// until ctx ends; each attempt is bounded by the Store's timeout, and the
// first attempt that fails (Redis down or silent) ends Lock with its error.
// The lock lapses by itself after lease (DefaultLease when lease is not
// positive) unless it is renewed, so a holder that dies delays the others by
// at most lease.
//
// While the caller holds the lock, the Store extends its lease every lease/3,
// so the lock does not lapse however long the work it guards takes. The
// renewals stop when the returned function is called, when the lock turns out
// to be gone or owned by somebody else, and when they have failed for a whole
// lease (the lock has lapsed by then anyway). The caller must therefore call
// the returned function, even when its work failed.
//
// The returned function stops the renewals, waits for them to end, and
// releases the lock. It deletes the lock only while this caller still owns
// it, so calling it after the lease lapsed leaves a lock taken by somebody
// else alone (and returns nil). Calling it again after a successful release
// does nothing; after a failed one, the lock lapses with its lease.
func (s *Store) Lock(ctx context.Context, key string, lease time.Duration) (unlock func(context.Context) error, err error) {
	h, err := s.acquire(ctx, key, lease, false)
	if err != nil {
		return nil, err
	}
	return h.Unlock, nil
}

// LockLoad is Lock that also reads key's record in the script that takes the
// lock: one round trip where Lock and Load take two. The record is what Load
// would have returned while the lock was held. The returned lock's SaveUnlock
// saves and releases in one more round trip while the record is unchanged
// (the second half of a renewal); its Unlock is the function Lock returns.
func (s *Store) LockLoad(ctx context.Context, key string, lease time.Duration) (wxtoken.StoreLock, wxtoken.LoadResult, error) {
	h, err := s.acquire(ctx, key, lease, true)
	if err != nil {
		return nil, wxtoken.LoadResult{}, err
	}
	tok, err := h.rec.token()
	if err != nil {
		err = fmt.Errorf("redisstore: load %q: %w", key, err)
	}
	return h, wxtoken.LoadResult{Token: tok, Err: err}, nil
}

// acquire takes the lock of key for Lock and, with read, for LockLoad.
func (s *Store) acquire(ctx context.Context, key string, lease time.Duration, read bool) (*held, error) {
	if lease <= 0 {
		lease = DefaultLease
	}
	lease = max(lease, time.Millisecond) // the smallest TTL Redis knows
	owner, err := newOwner()
	if err != nil {
		return nil, fmt.Errorf("redisstore: lock %q: %w", key, err)
	}
	lk := s.lockKey(key)
	delay := s.retryMin
	for {
		began := time.Now()
		got, err := call(ctx, s, func(ctx context.Context) (attempt, error) {
			return s.tryLock(ctx, key, owner, lease, read)
		}, func(a attempt, err error) {
			if a.ok && err == nil {
				s.giveBack(lk, owner) // taken after Lock had given up: nobody will release it
			}
		})
		if err != nil {
			return nil, fmt.Errorf("redisstore: lock %q: %w", key, err)
		}
		if got.ok {
			return &held{s: s, key: key, owner: owner, rec: got.rec,
				k: s.keepLease(lk, owner, lease, began)}, nil
		}
		if err := wait(ctx, jitter(delay)); err != nil {
			return nil, fmt.Errorf("redisstore: lock %q: %w", key, err)
		}
		delay = min(2*delay, s.retryMax)
	}
}

// attempt is the outcome of one try at a lock.
type attempt struct {
	ok  bool   // the lock was taken
	rec record // with read, the record read under it
}

// tryLock makes one attempt at key's lock, reading its record too with read.
func (s *Store) tryLock(ctx context.Context, key, owner string, lease time.Duration, read bool) (attempt, error) {
	if !read {
		n, err := s.lock.Run(ctx, s.rdb, []string{s.lockKey(key)}, owner, lease.Milliseconds()).Int()
		return attempt{ok: n == 1}, err
	}
	vs, err := s.lockRead.Run(ctx, s.rdb, []string{s.lockKey(key), s.tokenKey(key)},
		owner, lease.Milliseconds(), MaxRecordLen).Slice()
	if err != nil {
		return attempt{}, err
	}
	if len(vs) == 0 || vs[0] != int64(1) {
		return attempt{}, nil
	}
	rec := record{found: true, wrongType: true} // a reply that makes no sense: corrupt, Save replaces it
	if len(vs) == 2 {
		if r, err := parseRecord(vs[1], nil); err == nil {
			rec = r
		}
	}
	return attempt{ok: true, rec: rec}, nil
}

// giveBack releases a lock whose taker has gone, on the goroutine of the
// attempt that took it; a failure leaves it to lapse with its lease.
func (s *Store) giveBack(lk, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	_ = s.unlock.Run(ctx, s.rdb, []string{lk}, owner).Err()
}

// held is a lock on key held by owner, whose lease k renews; rec is the
// record LockLoad read under it.
type held struct {
	s        *Store
	key      string
	owner    string
	k        *keeper
	rec      record
	released atomic.Bool
}

// Unlock stops the renewals and releases the lock, leaving alone a lock that
// somebody else took since. It does nothing after a successful release.
func (h *held) Unlock(ctx context.Context) error {
	if h.released.Load() {
		return nil
	}
	h.k.stop()
	s := h.s
	_, err := call(ctx, s, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, s.unlock.Run(ctx, s.rdb, []string{s.lockKey(h.key)}, h.owner).Err()
	}, nil)
	if err != nil {
		return fmt.Errorf("redisstore: unlock %q: %w", h.key, err)
	}
	h.released.Store(true)
	return nil
}

// SaveUnlock saves tok as Save does and releases the lock, in one script
// while the record is the one LockLoad read. When another writer changed it
// meanwhile (a process that saved without the lock), Save's compare-and-set
// decides while the lock is still held, and the lock is released after. The
// lock is released in every case, a failed save included, unless Redis cannot
// be reached (it then lapses with its lease); after SaveUnlock, Unlock does
// nothing.
func (h *held) SaveUnlock(ctx context.Context, tok wxtoken.Token) error {
	s := h.s
	if h.released.Swap(true) {
		return s.Save(ctx, h.key, tok)
	}
	h.k.stop()
	raw, ttl, encErr := s.encode(tok)
	_, err := call(ctx, s, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, h.saveUnlock(ctx, tok, raw, ttl, encErr)
	}, nil)
	if err != nil {
		return fmt.Errorf("redisstore: save %q: %w", h.key, err)
	}
	return nil
}

// saveUnlock is SaveUnlock's work on Redis.
func (h *held) saveUnlock(ctx context.Context, tok wxtoken.Token, raw string, ttl int64, encErr error) error {
	s := h.s
	tk, lk := s.tokenKey(h.key), s.lockKey(h.key)
	release := func() error { return s.unlock.Run(ctx, s.rdb, []string{lk}, h.owner).Err() }
	switch {
	case encErr != nil:
		return errors.Join(encErr, release())
	case h.rec.newerThan(tok, s.now()):
		return errors.Join(wxtoken.ErrNewerToken, release())
	}
	mode, want := h.rec.swapMode()
	wrote, err := s.saveUnl.Run(ctx, s.rdb, []string{tk, lk}, mode, want, raw, ttl, s.channel(), h.key, h.owner).Int()
	switch {
	case err != nil: // the script may have failed before its release
		return errors.Join(err, release())
	case wrote == 1:
		return nil
	}
	return errors.Join(s.save(ctx, h.key, tok, raw, ttl), release())
}

// keepLease starts renewing the lease of the lock lk held by owner, which was
// taken by an attempt that began at taken.
func (s *Store) keepLease(lk, owner string, lease time.Duration, taken time.Time) *keeper {
	every := renewEvery(lease)
	return startKeeper(lease, taken, func(ctx context.Context) (bool, error) {
		// A renewal that hangs must not use up the lease: the next one
		// tries again.
		ctx, cancel := context.WithTimeout(ctx, every)
		defer cancel()
		return call(ctx, s, func(ctx context.Context) (bool, error) {
			n, err := s.renew.Run(ctx, s.rdb, []string{lk}, owner, lease.Milliseconds()).Int()
			return n == 1, err
		}, nil)
	})
}

// newOwner returns a random id that tells this lock holder from all others.
func newOwner() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random lock owner: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// jitter returns a duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	return d/2 + mathrand.N(d/2+1)
}

// wait sleeps for d or until ctx ends, whichever comes first.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
