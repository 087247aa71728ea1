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
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken"
)

const (
	// DefaultPrefix starts every key a Store writes unless WithPrefix says otherwise.
	DefaultPrefix = "wxtoken:"
	// DefaultLease is the lock lease Lock uses when it is given none.
	DefaultLease = 30 * time.Second

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
	save     *redis.Script
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
		save:     redis.NewScript(luaSave),
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

// Load returns the token stored under key. The error matches
// wxtoken.ErrNotFound when there is none (Redis has also dropped it once it
// expired), and wxtoken.ErrCorrupt when the stored value is not a valid token;
// other errors come from Redis.
func (s *Store) Load(ctx context.Context, key string) (wxtoken.Token, error) {
	raw, err := s.rdb.Get(ctx, s.tokenKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return wxtoken.Token{}, fmt.Errorf("redisstore: load %q: %w", key, wxtoken.ErrNotFound)
	}
	if err != nil {
		return wxtoken.Token{}, fmt.Errorf("redisstore: load %q: %w", key, err)
	}
	tok, err := decodeToken(raw)
	if err != nil {
		return wxtoken.Token{}, fmt.Errorf("redisstore: load %q: %w", key, err)
	}
	return tok, nil
}

// decodeToken parses a stored record. Its errors match wxtoken.ErrCorrupt and
// never quote the record, which may hold a token.
func decodeToken(raw []byte) (wxtoken.Token, error) {
	var tok wxtoken.Token
	if err := json.Unmarshal(raw, &tok); err != nil {
		return wxtoken.Token{}, fmt.Errorf("%w: not a JSON token record", wxtoken.ErrCorrupt)
	}
	if err := tok.Validate(); err != nil {
		return wxtoken.Token{}, fmt.Errorf("%w: %v", wxtoken.ErrCorrupt, err)
	}
	return tok, nil
}

// Save stores tok under key with a Redis TTL equal to its remaining lifetime.
// It refuses, with an error matching wxtoken.ErrNewerToken, when key already
// holds a token with a later CreateTime; the check and the write are one
// atomic script. A token that fails Validate or has already expired is not
// written, and the error matches wxtoken.ErrInvalidToken.
func (s *Store) Save(ctx context.Context, key string, tok wxtoken.Token) error {
	if err := tok.Validate(); err != nil {
		return fmt.Errorf("redisstore: save %q: %w", key, err)
	}
	// Redis rejects a zero TTL and a negative one deletes the key: an
	// expired token has no business in the store anyway.
	ttl := time.Until(tok.ExpiresAt()).Milliseconds()
	if ttl <= 0 {
		return fmt.Errorf("redisstore: save %q: %w: already expired", key, wxtoken.ErrInvalidToken)
	}
	raw, err := json.Marshal(tok)
	if err != nil {
		return fmt.Errorf("redisstore: save %q: encode: %w", key, err)
	}
	ct := tok.CreateTime
	stored, err := s.save.Run(ctx, s.rdb, []string{s.tokenKey(key)},
		raw, ttl, ct.Unix(), fmt.Sprintf("%09d", ct.Nanosecond()),
		time.Now().Unix()).Int()
	if err != nil {
		return fmt.Errorf("redisstore: save %q: %w", key, err)
	}
	if stored == 0 {
		return fmt.Errorf("redisstore: save %q: %w", key, wxtoken.ErrNewerToken)
	}
	return nil
}

// Lock takes the fetch lock for key, waiting while another process holds it,
// until ctx ends. The lock lapses by itself after lease (DefaultLease when
// lease is not positive), so a holder that dies delays the others by at most
// lease; choose a lease longer than a fetch takes.
//
// The returned function releases the lock. It deletes the lock only while
// this caller still owns it, so calling it after the lease lapsed leaves a
// lock taken by somebody else alone (and returns nil). Calling it again after
// a successful release does nothing.
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
		ok, err := s.rdb.SetNX(ctx, lk, owner, lease).Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: lock %q: %w", key, err)
		}
		if ok {
			return s.unlocker(key, owner), nil
		}
		if err := wait(ctx, jitter(delay)); err != nil {
			return nil, fmt.Errorf("redisstore: lock %q: %w", key, err)
		}
		delay = min(2*delay, s.retryMax)
	}
}

// unlocker returns the release function for a lock on key held by owner.
func (s *Store) unlocker(key, owner string) func(context.Context) error {
	var released atomic.Bool
	return func(ctx context.Context) error {
		if released.Load() {
			return nil
		}
		if err := s.unlock.Run(ctx, s.rdb, []string{s.lockKey(key)}, owner).Err(); err != nil {
			return fmt.Errorf("redisstore: unlock %q: %w", key, err)
		}
		released.Store(true)
		return nil
	}
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
