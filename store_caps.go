package wxtoken

import "context"

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
