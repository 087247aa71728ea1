// Package redisstore keeps wxtoken tokens in Redis and serializes their
// fetches across processes and replicas.
//
// A Store works with any redis.UniversalClient: a standalone *redis.Client,
// a Sentinel-backed failover client or a *redis.ClusterClient. Give it to the
// wxtoken Client with wxtoken.WithStore; because the Store also implements
// wxtoken.Locker, replicas that share the Redis fetch each token once between
// them instead of invalidating each other's tokens.
//
// # Keys and values
//
// For the Client's key k and the prefix p (default "wxtoken:") a Store uses
//
//	p{k}       the token: the same JSON as wxtoken's cache file,
//	           {"access_token":"...","expires_in":7200,"createTime":"..."},
//	           with a Redis TTL equal to the token's remaining lifetime
//	p{k}:lock  the fetch lock: a random owner id, with the lease as TTL
//
// The braces are a Redis Cluster hash tag, so both keys of one k hash to the
// same slot (for any k that is not empty and does not start with "}", which
// includes every key the wxtoken Client uses). Keys hold an app id and a
// mode, never a secret.
//
// A value is a token only if it decodes and passes wxtoken.Token.Validate;
// anything else, including a value longer than MaxRecordLen (which is never
// transferred), is corrupt: Load reports it and Save replaces it.
//
// # When Redis fails
//
// Every call a Store makes to Redis (Load, Save, each attempt of Lock, the
// release of a lock, each renewal of its lease) returns within the Store's
// timeout (WithTimeout, default DefaultTimeout), or sooner when its context
// ends, whatever the go-redis client's own options say. What a failure costs,
// measured against a local redis-server with the default redis.Options:
//
//	Redis is               go-redis alone               through a Store
//	stopped (SIGSTOP)      5 s (new connection) to      1 s, then
//	                       10 s (pooled), i/o timeout   context.DeadlineExceeded
//	refused (port closed)  1.7 s, connection refused    1 s at most
//	TLS client against a   25.4 s (5 dials of 5 s)      1 s, then
//	plain server                                        context.DeadlineExceeded
//	slow                   its latency                  its latency, cut at 1 s
//
// (The Store's figures are for the default timeout; the calls are Load, Save
// and a Lock attempt, and the release of a lock against a stopped Redis.)
// A call the Store gave up on finishes in the background within go-redis's own
// timeouts; a Save may still land then, a lock attempt that succeeds too late is
// released. A lock key that someone set without a TTL is given the lease as TTL
// at the first attempt that sees it, so it delays fetches by one lease, as a
// holder that died would.
//
// For a wxtoken Client this means: while Redis is down, a replica that has a
// token keeps serving it from memory and retries its renewal later; a cold
// replica pays one timeout for its Load (a Store it cannot read is not locked
// either), and then fetches on its own, since without Redis it cannot learn
// that another replica is fetching: an outage longer than a fetch costs one
// token per cold replica, and the tokens fetched last win once Redis answers
// again.
//
// # Batches, renewals and the change feed
//
// A Store is a wxtoken.BatchLoader: LoadMany reads a batch of keys in one
// round trip (one script on a standalone or Sentinel-managed Redis, a
// pipeline of per-key reads on a Cluster, which go-redis splits per node),
// with Load's size limit and type check for each key. A wxtoken Registry
// re-reads its keys, and Registry.Preload warms them, in batches through it.
//
// A Store is a wxtoken.LockLoader: LockLoad takes the lock and reads the
// record in one script, and the lock's SaveUnlock saves (compare-and-set
// against the record read under the lock) and releases in one more, so that
// a background renewal costs two round trips.
//
// Every Save that writes publishes the key on the channel p + "changed"
// (for the default prefix "wxtoken:changed"), in the script that writes.
// With WithChangeFeed, a Store is also a working wxtoken.Watcher: one
// subscription per Store, shared by every Watch, resubscribed after a lost
// connection (then every watcher is told to resynchronize); a Client or
// Registry on it re-reads a key when it changes instead of every key
// periodically. PUBLISH reaches every node of a Cluster. The feed works on a
// *redis.Client (standalone, or the failover client of Sentinel) and a
// *redis.ClusterClient; on a *redis.Ring, whose shards do not share their
// messages, Watch reports errors.ErrUnsupported and the engine re-reads
// periodically.
//
// # Rolling deploys
//
// The keys and values are those of the previous release, unchanged: both
// releases read and write each other's records and honour each other's
// locks. What changes is only that Saves now also PUBLISH (the previous
// release's Saves do not), so enable WithChangeFeed once no replica of the
// previous release saves any more: until then a renewal saved by an old
// replica reaches the new ones only at their slow safety re-read (each key
// every 10 store-sync intervals), next resynchronization or renewal (the
// locked read finds it), not through the feed.
//
// A held lock's lease is renewed every lease/3 until it is released. When a
// renewal finds the lock gone or taken (its key lost in a failover), the
// renewals stop, but the holder is not told: its fetch goes on, unlocked. The
// window is one fetch; the Locker interface has no way to say more.
package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken"
)

const (
	// DefaultPrefix starts every key a Store writes unless WithPrefix says otherwise.
	DefaultPrefix = "wxtoken:"
	// DefaultLease is the lock lease Lock uses when it is given none: the same
	// as wxtoken.DefaultLockLease, which a Client always passes. The lease is
	// renewed while its holder lives, so it bounds only how long a holder
	// that died delays the others.
	DefaultLease = 15 * time.Second
	// DefaultTimeout bounds each call a Store makes to Redis unless WithTimeout
	// says otherwise. It is well inside wxtoken's fetch timeout, so that a Redis
	// that hangs costs a caller about a second, not the whole fetch.
	DefaultTimeout = time.Second
	// MaxRecordLen bounds the stored value Load and Save read: a record of a
	// token of wxtoken.MaxTokenLen bytes needs a few dozen more, so anything
	// longer is corrupt and is neither transferred nor decoded.
	MaxRecordLen = 64 << 10

	defaultRetryMin = 10 * time.Millisecond
	defaultRetryMax = 200 * time.Millisecond
)

var (
	_ wxtoken.Store       = (*Store)(nil)
	_ wxtoken.Locker      = (*Store)(nil)
	_ wxtoken.BatchLoader = (*Store)(nil)
	_ wxtoken.LockLoader  = (*Store)(nil)
	_ wxtoken.Watcher     = (*Store)(nil)
)

// Store is a wxtoken.Store and wxtoken.Locker on Redis. It is safe for
// concurrent use. It does not own the Redis client: close that yourself.
type Store struct {
	rdb      redis.UniversalClient
	prefix   string
	retryMin time.Duration
	retryMax time.Duration
	timeout  time.Duration
	slow     error            // the cause of a call that hit timeout
	now      func() time.Time // the clock of newest-wins and of TTLs
	read     *redis.Script
	swap     *redis.Script
	lock     *redis.Script
	renew    *redis.Script
	unlock   *redis.Script
	readMany *redis.Script
	lockRead *redis.Script
	saveUnl  *redis.Script
	inflight sync.WaitGroup // calls still running, including those given up on

	feedOn bool // WithChangeFeed
	feed   hub  // the one subscription every Watch shares
}

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the text every key starts with (default DefaultPrefix), so
// that several applications can share one Redis database.
func WithPrefix(prefix string) Option {
	return func(s *Store) { s.prefix = prefix }
}

// WithLockRetry sets how often Lock asks again while another process holds
// the lock: it waits about lo after the first refusal, doubling up to hi, with
// random jitter so that waiters do not ask in step. The defaults are 10 ms and
// 200 ms. Values that are not positive keep the defaults; hi below lo is
// raised to lo.
func WithLockRetry(lo, hi time.Duration) Option {
	return func(s *Store) {
		if lo > 0 {
			s.retryMin = lo
		}
		if hi > 0 {
			s.retryMax = hi
		}
		s.retryMax = max(s.retryMax, s.retryMin)
	}
}

// WithTimeout bounds each call the Store makes to Redis: a Load, a Save, each
// attempt of Lock (Lock itself waits for a holder until its context ends), the
// release of a lock and each renewal of its lease. A context with an earlier
// deadline bounds the call sooner. A call that runs out of time fails with an
// error matching context.DeadlineExceeded. The default is DefaultTimeout; a
// value that is not positive keeps it.
func WithTimeout(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// New returns a Store that keeps tokens in rdb, which must not be nil.
func New(rdb redis.UniversalClient, opts ...Option) *Store {
	if rdb == nil {
		panic("redisstore: New called with a nil client")
	}
	s := &Store{
		rdb:      rdb,
		prefix:   DefaultPrefix,
		retryMin: defaultRetryMin,
		retryMax: defaultRetryMax,
		timeout:  DefaultTimeout,
		now:      time.Now,
		read:     redis.NewScript(luaRead),
		swap:     redis.NewScript(luaSwap),
		lock:     redis.NewScript(luaLock),
		renew:    redis.NewScript(luaRenew),
		unlock:   redis.NewScript(luaUnlock),
		readMany: redis.NewScript(luaReadMany),
		lockRead: redis.NewScript(luaLockRead),
		saveUnl:  redis.NewScript(luaSaveUnlock),
	}
	for _, opt := range opts {
		opt(s)
	}
	s.slow = fmt.Errorf("redis did not answer within %v: %w", s.timeout, context.DeadlineExceeded)
	return s
}

// tokenKey wraps key in a hash tag so that its lock lands in the same Cluster slot.
func (s *Store) tokenKey(key string) string { return s.prefix + "{" + key + "}" }

func (s *Store) lockKey(key string) string { return s.tokenKey(key) + ":lock" }
