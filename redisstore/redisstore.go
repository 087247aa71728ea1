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

package redisstore

import (
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken"
)

const (
	// DefaultPrefix starts every key a Store writes unless WithPrefix says otherwise.
	DefaultPrefix = "wxtoken:"
	// DefaultLease is the lock lease Lock uses when it is given none.
	DefaultLease = 30 * time.Second
	// MaxRecordLen bounds the stored value Load and Save read: a record of a
	// token of wxtoken.MaxTokenLen bytes needs a few dozen more, so anything
	// longer is corrupt and is neither transferred nor decoded.
	MaxRecordLen = 64 << 10

	defaultRetryMin = 10 * time.Millisecond
	defaultRetryMax = 200 * time.Millisecond
)

var (
	_ wxtoken.Store  = (*Store)(nil)
	_ wxtoken.Locker = (*Store)(nil)
)

// Store is a wxtoken.Store and wxtoken.Locker on Redis. It is safe for
// concurrent use. It does not own the Redis client: close that yourself.
type Store struct {
	rdb      redis.UniversalClient
	prefix   string
	retryMin time.Duration
	retryMax time.Duration
	now      func() time.Time // the clock of newest-wins and of TTLs
	read     *redis.Script
	swap     *redis.Script
	unlock   *redis.Script
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
		now:      time.Now,
		read:     redis.NewScript(luaRead),
		swap:     redis.NewScript(luaSwap),
		unlock:   redis.NewScript(luaUnlock),
	}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// tokenKey wraps key in a hash tag so that its lock lands in the same Cluster slot.
func (s *Store) tokenKey(key string) string { return s.prefix + "{" + key + "}" }

func (s *Store) lockKey(key string) string { return s.tokenKey(key) + ":lock" }
