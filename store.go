package wxtoken

import (
	"context"
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
// after lease, so that a holder that dies cannot block the others for longer.
// The returned function releases the lock; it must be safe to call after the lease
// has lapsed, and must then leave a lock taken by somebody else alone.
type Locker interface {
	Lock(ctx context.Context, key string, lease time.Duration) (unlock func(context.Context) error, err error)
}

// MemoryStore is a Store that keeps tokens in the process's memory. It is safe for
// concurrent use and may be shared by several Clients of one process.
type MemoryStore struct {
	mu     sync.Mutex
	tokens map[string]Token
}

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
