package wxtoken

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// A Store persists tokens between processes and restarts. Keys are chosen by the
// Client: they are made of an appid and a mode suffix, never of a secret.
//
// Implementations must be safe for concurrent use. Load returns an error that
// matches ErrNotFound (errors.Is) when the key holds no token. Save never replaces
// a stored token with one whose CreateTime is older: it then returns an error
// matching ErrNewerToken, and the caller should Load the newer token instead.
// "Newer" is Token.NewerThan: a stored token dated after the Store's clock does
// not count as newer.
type Store interface {
	Load(ctx context.Context, key string) (Token, error)
	Save(ctx context.Context, key string, tok Token) error
}

// A Locker is a Store that can also serialize fetches of one key across processes
// or replicas. When the Client's Store implements Locker, a fetch runs as: lock,
// read the store again (another process may have renewed the token meanwhile),
// fetch only if still needed, save, unlock.
//
// Lock blocks until it holds the lock or ctx ends. The lock must lapse by itself
// after lease, so that a holder that dies cannot block the others for longer;
// a lock that cannot outlive its holder (one within a process, or a file lock
// the operating system drops when the process dies) may ignore lease.
// The returned function releases the lock; it must be safe to call after the lease
// has lapsed, and must then leave a lock taken by somebody else alone.
type Locker interface {
	Lock(ctx context.Context, key string, lease time.Duration) (unlock func(context.Context) error, err error)
}

// MemoryStore is a Store that keeps tokens in the process's memory. It is safe for
// concurrent use and may be shared by several Clients of one process, which then
// fetch one key one at a time: MemoryStore is a Locker.
type MemoryStore struct {
	mu     sync.Mutex
	tokens map[string]Token
	locks  keyLocks
}

var (
	_ Store  = (*MemoryStore)(nil)
	_ Locker = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{tokens: make(map[string]Token)}
}

// Load returns the token saved under key, or an error matching ErrNotFound.
func (s *MemoryStore) Load(ctx context.Context, key string) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[key]
	if !ok {
		return Token{}, ErrNotFound
	}
	return tok, nil
}

// Save stores tok under key. It returns ErrNewerToken, and keeps the stored
// token, when that one is newer than tok (Token.NewerThan).
func (s *MemoryStore) Save(ctx context.Context, key string, tok Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.tokens[key]; ok && old.NewerThan(tok, time.Now()) {
		return ErrNewerToken
	}
	s.tokens[key] = tok
	return nil
}

// Lock takes the lock of key within this process, waiting until it is free or
// ctx ends; in the latter case the error matches ctx.Err(). Two holders exclude
// each other whichever Clients they belong to.
//
// lease is accepted for the Locker interface but not used: a holder in this
// process cannot die without taking every waiter with it, which is what a lease
// guards against; a holder that is alive but stuck keeps the lock.
//
// The returned unlock is idempotent and ignores its context; once called, it
// leaves alone the lock that somebody else may have taken since.
func (s *MemoryStore) Lock(ctx context.Context, key string, lease time.Duration) (unlock func(context.Context) error, err error) {
	release, err := s.locks.lock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("wxtoken: memory store: lock %s: %w", key, err)
	}
	return func(context.Context) error { release(); return nil }, nil
}

// keyLocks is a set of mutexes, one per key, whose waits a context can end.
// Entries exist only while the key is held or awaited, so the set does not grow
// with the number of keys ever used. The zero value is ready to use.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	sem  chan struct{} // holds one value while the key is locked
	refs int           // holders and waiters; guarded by keyLocks.mu
}

// lock takes key's mutex, or gives up when ctx ends. The returned release is
// idempotent. ctx is consulted only when the mutex is taken, so that an
// uncontended lock never calls ctx.Done.
func (l *keyLocks) lock(ctx context.Context, key string) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := l.ref(key)
	select {
	case k.sem <- struct{}{}:
	default:
		select {
		case k.sem <- struct{}{}:
		case <-ctx.Done():
			l.unref(key, k)
			return nil, ctx.Err()
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-k.sem
			l.unref(key, k)
		})
	}, nil
}

func (l *keyLocks) ref(key string) *keyLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locks == nil {
		l.locks = make(map[string]*keyLock)
	}
	k := l.locks[key]
	if k == nil {
		k = &keyLock{sem: make(chan struct{}, 1)}
		l.locks[key] = k
	}
	k.refs++
	return k
}

func (l *keyLocks) unref(key string, k *keyLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k.refs--; k.refs == 0 {
		delete(l.locks, key)
	}
}
