package wxtoken

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Saves of different keys do not wait for each other: a Save stuck on one key
// (here, between its temporary file and the rename) leaves the others free.
func TestFileStoreSavesOfDifferentKeysRunInParallel(t *testing.T) {
	s := newTestFileStore(t)
	inside, proceed := make(chan struct{}), make(chan struct{})
	s.beforeRename = func(tmp string) error {
		if strings.HasPrefix(filepath.Base(tmp), ".a.") {
			close(inside)
			<-proceed
		}
		return nil
	}
	ctx := context.Background()
	stuck := make(chan error)
	go func() { stuck <- s.Save(ctx, "a", fsTestToken("tok-a", time.Now())) }()
	<-inside

	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, s.Save(bctx, "b", fsTestToken("tok-b", time.Now())), "Save of b while a Save of a is under way")
	close(proceed)
	require.NoError(t, <-stuck)
	for key, want := range map[string]string{"a": "tok-a", "b": "tok-b"} {
		got, err := s.Load(ctx, key)
		require.NoError(t, err)
		assert.Equal(t, want, got.AccessToken)
	}
}

// The locks of different keys are independent, and a key's Save does not wait
// for its fetch lock.
func TestFileStoreLocksOfDifferentKeysAreIndependent(t *testing.T) {
	s := newTestFileStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var unlocks []func(context.Context) error
	for _, key := range []string{"a", "b", "access_token", "wx0123456789abcdef.stable"} {
		unlock, err := s.Lock(ctx, key, time.Minute)
		require.NoError(t, err, "Lock(%q) while the others are held", key)
		unlocks = append(unlocks, unlock)
		require.NoError(t, s.Save(ctx, key, fsTestToken("tok", time.Now())), "Save(%q) under its own lock", key)
	}
	for _, unlock := range unlocks {
		require.NoError(t, unlock(ctx))
	}
	assert.Empty(t, s.fetchLocks.locks, "nothing kept in memory for released keys")
	assert.Empty(t, s.saveLocks.locks)
}
