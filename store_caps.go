package wxtoken

import (
	"context"
	"time"
)

// Optional Store capabilities. A Store keeps the Part 1 interface (Load, Save,
// and Lock for a Locker); a Store that can do more says so by implementing one
// of the interfaces below, which the engine detects by type assertion. None of
// them changes what a token is or which of two tokens wins: only how many
// round trips it takes to learn it.

// A BatchLoader is a Store that reads many keys in one pass: a Redis MGET, a
// single walk of a folder. A Registry re-reads its keys, and resynchronizes
// after a change feed was interrupted, in batches through it.
type BatchLoader interface {
	// LoadMany returns one result per key, in the order of keys: for each key
	// what Load would have returned (a token, or an error matching
	// ErrNotFound or ErrCorrupt). The error is for the batch as a whole (the
	// Store could not be read at all) and then there are no results. keys may
	// hold duplicates; the caller bounds its length.
	LoadMany(ctx context.Context, keys []string) ([]LoadResult, error)
}

// LoadResult is what a BatchLoader read for one key.
type LoadResult struct {
	Token Token
	Err   error // nil, or an error matching ErrNotFound or ErrCorrupt, as Load's
}

// A Watcher is a Store with a change feed: it tells of every Save of its keys,
// by this process or by any other sharing the Store. A Client or Registry whose
// Store is a Watcher re-reads a key when the feed names it instead of
// re-reading every key periodically.
type Watcher interface {
	// Watch starts the feed and returns once it is established, or with the
	// error that kept it from starting (the engine then re-reads periodically,
	// as for a plain Store). From then until ctx ends, notify is called, from
	// one goroutine at a time, once per change; it must return quickly. When
	// the feed was interrupted and may have missed changes, the Store
	// re-establishes it by itself and then calls notify with Resync set, so
	// that the watcher re-reads every key it holds. Once ctx ends the Store
	// stops the goroutines it started for this watcher.
	Watch(ctx context.Context, notify func(StoreChange)) error
}

// StoreChange is one notification of a Watcher's feed.
type StoreChange struct {
	// Key is the key that was saved; empty when Resync is set.
	Key string
	// Resync says that changes may have been missed (the feed was down):
	// every key should be read again.
	Resync bool
}

// A LockLoader is a Locker that reads the key's record in the same round trip
// as it takes the lock, and can save and release in one more: a renewal on it
// costs two round trips instead of four or more. A Client whose Store is a
// LockLoader uses it instead of Lock followed by Load.
type LockLoader interface {
	Locker
	// LockLoad takes the lock of key as Lock does (waiting while somebody
	// holds it, until ctx ends; lapsing after lease unless its holder lives)
	// and returns it with the record read while it was held: what Load would
	// have returned at that moment, the token or an error matching
	// ErrNotFound or ErrCorrupt. An error that keeps the lock from being
	// taken is returned as err, and then nothing is held.
	LockLoad(ctx context.Context, key string, lease time.Duration) (StoreLock, LoadResult, error)
}

// StoreLock is a lock a LockLoader holds for its caller.
type StoreLock interface {
	// Unlock releases the lock, with the rules of the function Lock
	// returns: it leaves alone a lock somebody else took after the lease
	// lapsed, and does nothing once the lock was released.
	Unlock(ctx context.Context) error
	// SaveUnlock saves tok under the lock's key, with Save's rules (it
	// never replaces a newer token: ErrNewerToken), and releases the lock,
	// in one round trip when the record is still the one LockLoad read. The
	// lock is released whatever the outcome of the save; when the release
	// itself fails, the lock lapses with its lease. After SaveUnlock,
	// Unlock does nothing.
	SaveUnlock(ctx context.Context, tok Token) error
}
