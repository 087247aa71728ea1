package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Records a revocableSource does not take for credentials.
const (
	revokedMark     = "-revoked-"
	placeholderMark = "-placeholder-"
)

// revocableSource issues tokens "key-N", counting fetches; it says a record
// whose AccessToken is revokedMark revokes the credential and one that is
// placeholderMark holds no credential.
type revocableSource struct {
	key     string
	fetches atomic.Int64
	current atomic.Pointer[Token] // the last FetchRequest.Current
}

func (s *revocableSource) Fetch(ctx context.Context, req FetchRequest) (Token, error) {
	s.current.Store(&req.Current)
	n := s.fetches.Add(1)
	return Token{AccessToken: fmt.Sprintf("%s-%d", s.key, n), ExpiresIn: 7200, CreateTime: time.Now()}, nil
}

var errTestRevoked = fmt.Errorf("%w: the account left", ErrRevoked)

func (s *revocableSource) CheckStored(tok Token) error {
	switch tok.AccessToken {
	case revokedMark:
		return errTestRevoked
	case placeholderMark:
		return errors.New("a refresh token without a credential")
	}
	return nil
}

func revokedRecord() Token {
	return Token{AccessToken: revokedMark, ExpiresIn: 7200, CreateTime: time.Now()}
}

// Without a change feed, a replica learns of a revocation another saved at
// its next store sync: from then on its callers get the Source's error, with
// no fetch, until a newer valid record arrives, which it then serves.
func TestRevokedRecordStopsServingAtStoreSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		src := &revocableSource{key: "acct"}
		opts := []Option{WithStore(store), WithLogger(quietLogger()), WithStoreSync(time.Minute)}
		c, err := NewClient("acct", src, opts...)
		require.NoError(t, err)
		defer c.Close()
		first, err := c.Get(t.Context())
		require.NoError(t, err)

		time.Sleep(10 * time.Second)
		require.NoError(t, store.Save(t.Context(), "acct", revokedRecord()))
		got, err := c.Get(t.Context())
		require.NoError(t, err, "before the sync the cached token is still served")
		assert.Equal(t, first, got)

		time.Sleep(time.Minute + 10*time.Second) // the store sync, ±10 %
		for range 3 {
			_, err = c.Get(t.Context())
			require.ErrorIs(t, err, ErrRevoked)
			require.ErrorIs(t, err, errTestRevoked)
			time.Sleep(2 * time.Second)
		}
		assert.EqualValues(t, 1, src.fetches.Load(), "a revoked credential is not fetched")

		newer := Token{AccessToken: "acct-restored", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, store.Save(t.Context(), "acct", newer))
		time.Sleep(2 * time.Second)
		got, err = c.Get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, newer.AccessToken, got)
		assert.EqualValues(t, 1, src.fetches.Load())
	})
}

// With a change feed, every key of a Registry learns of a revocation at once.
func TestRevokedRecordThroughChangeFeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFeedStore()
		src := &revocableSource{key: "acct"}
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) { return src, nil },
			WithStore(store), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer r.Close()
		_, err = r.Get(t.Context(), "acct")
		require.NoError(t, err)
		synctest.Wait() // the feed is up

		time.Sleep(time.Second)
		require.NoError(t, store.Save(t.Context(), "acct", revokedRecord()))
		synctest.Wait()
		_, err = r.Get(t.Context(), "acct")
		require.ErrorIs(t, err, errTestRevoked, "the feed told of it: no wait for a sync")
		assert.EqualValues(t, 1, src.fetches.Load())

		time.Sleep(2 * time.Second)
		newer := Token{AccessToken: "acct-again", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, store.Save(t.Context(), "acct", newer))
		synctest.Wait()
		got, err := r.Get(t.Context(), "acct")
		require.NoError(t, err)
		assert.Equal(t, newer.AccessToken, got)
		assert.EqualValues(t, 1, src.fetches.Load())
	})
}

// A cold Client finds a revocation in the Store: its callers get the error
// without a fetch, however long they keep asking.
func TestRevokedRecordOnColdStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		require.NoError(t, store.Save(t.Context(), "acct", revokedRecord()))
		src := &revocableSource{key: "acct"}
		c, err := NewClient("acct", src, WithStore(store), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer c.Close()
		for range 120 {
			_, err := c.Get(t.Context())
			require.ErrorIs(t, err, errTestRevoked)
			time.Sleep(30 * time.Second)
		}
		assert.Zero(t, src.fetches.Load())
	})
}

// A record that CheckStored refuses without revoking is never served, fresh
// as it claims to be, and the fetch gets it as Current.
func TestPlaceholderRecordIsNeverServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		ph := Token{AccessToken: placeholderMark, ExpiresIn: 7200, CreateTime: time.Now(), Refresh: "refresh-1"}
		require.NoError(t, store.Save(t.Context(), "acct", ph))
		src := &revocableSource{key: "acct"}
		c, err := NewClient("acct", src, WithStore(store), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer c.Close()
		got, err := c.Get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "acct-1", got)
		cur := src.current.Load()
		require.NotNil(t, cur, "fetched")
		assert.Equal(t, "refresh-1", cur.Refresh)
	})
}

// panickySource panics in CheckStored.
type panickySource struct{ revocableSource }

func (s *panickySource) CheckStored(tok Token) error { panic("check bug") }

// A CheckStored that panics does not crash the Client: the record is not
// served and the fetch goes on.
func TestCheckStoredPanicIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewMemoryStore()
		require.NoError(t, store.Save(t.Context(), "acct", Token{AccessToken: "stored", ExpiresIn: 7200, CreateTime: time.Now()}))
		src := &panickySource{revocableSource{key: "acct"}}
		c, err := NewClient("acct", src, WithStore(store), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer c.Close()
		got, err := c.Get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "acct-1", got)
	})
}

// stallingStore is a feedStore whose next LoadMany, once armed, reads the
// records and then waits for release before it returns them: a slow read
// that overlaps a change.
type stallingStore struct {
	*feedStore
	armed   atomic.Bool
	stalled chan struct{} // closed once the armed read has read
	release chan struct{}
}

func (s *stallingStore) LoadMany(ctx context.Context, keys []string) ([]LoadResult, error) {
	res, err := s.feedStore.LoadMany(ctx, keys)
	if s.armed.CompareAndSwap(true, false) {
		close(s.stalled)
		<-s.release
	}
	return res, err
}

// A re-read that read the record a revocation replaced, and is applied after
// the change feed applied the revocation, does not bring the revoked token
// back: the wheel's safety re-read at the first tick (1 s) read the old
// record just before the revocation was saved at that same instant.
func TestRevokedRecordOutranksASlowerRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &stallingStore{feedStore: newFeedStore(), stalled: make(chan struct{}), release: make(chan struct{})}
		src := &revocableSource{key: "acct"}
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) { return src, nil },
			WithStore(store), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer r.Close()
		first, err := r.Get(t.Context(), "acct")
		require.NoError(t, err)
		synctest.Wait() // the feed is up

		store.armed.Store(true)
		select {
		case <-store.stalled: // the wheel's first tick, a safety re-read, holds the old record
		case <-time.After(2 * time.Second):
			t.Fatal("no store sync read the key")
		}
		require.NoError(t, store.Save(t.Context(), "acct", revokedRecord()))
		synctest.Wait() // the feed applied the revocation
		_, err = r.Get(t.Context(), "acct")
		require.ErrorIs(t, err, errTestRevoked)

		close(store.release)
		synctest.Wait() // the slow read applied the old record
		got, err := r.Get(t.Context(), "acct")
		require.ErrorIs(t, err, errTestRevoked, "the old token %q was served again", got)
		assert.NotEqual(t, first, got)
		assert.EqualValues(t, 1, src.fetches.Load())

		time.Sleep(2 * time.Second)
		newer := Token{AccessToken: "acct-again", ExpiresIn: 7200, CreateTime: time.Now()}
		require.NoError(t, store.Save(t.Context(), "acct", newer))
		synctest.Wait()
		got, err = r.Get(t.Context(), "acct")
		require.NoError(t, err)
		assert.Equal(t, newer.AccessToken, got)
		assert.EqualValues(t, 1, src.fetches.Load())
	})
}
