package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"sync/atomic"
	"time"
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
		ok, err := call(ctx, s, func(ctx context.Context) (bool, error) {
			n, err := s.lock.Run(ctx, s.rdb, []string{lk}, owner, lease.Milliseconds()).Int()
			return n == 1, err
		}, func(ok bool, err error) {
			if ok && err == nil {
				s.giveBack(lk, owner) // taken after Lock had given up: nobody will release it
			}
		})
		if err != nil {
			return nil, fmt.Errorf("redisstore: lock %q: %w", key, err)
		}
		if ok {
			return s.unlocker(key, owner, s.keepLease(lk, owner, lease, began)), nil
		}
		if err := wait(ctx, jitter(delay)); err != nil {
			return nil, fmt.Errorf("redisstore: lock %q: %w", key, err)
		}
		delay = min(2*delay, s.retryMax)
	}
}

// giveBack releases a lock whose taker has gone, on the goroutine of the
// attempt that took it; a failure leaves it to lapse with its lease.
func (s *Store) giveBack(lk, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	_ = s.unlock.Run(ctx, s.rdb, []string{lk}, owner).Err()
}

// unlocker returns the release function for a lock on key held by owner,
// whose lease k renews.
func (s *Store) unlocker(key, owner string, k *keeper) func(context.Context) error {
	var released atomic.Bool
	return func(ctx context.Context) error {
		if released.Load() {
			return nil
		}
		k.stop()
		_, err := call(ctx, s, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, s.unlock.Run(ctx, s.rdb, []string{s.lockKey(key)}, owner).Err()
		}, nil)
		if err != nil {
			return fmt.Errorf("redisstore: unlock %q: %w", key, err)
		}
		released.Store(true)
		return nil
	}
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
