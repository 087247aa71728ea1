package wxtoken

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Saves that finish their rename while a folder fsync runs share the next one,
// and none returns on the fsync that was already under way: that one may have
// started before its rename.
func TestDirSyncerGroupsConcurrentSyncs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDirSyncer(t.TempDir())
		release := make(chan struct{})
		var running atomic.Int32
		d.fsync = func(string) error {
			assert.Equal(t, int32(1), running.Add(1), "one fsync at a time")
			<-release
			running.Add(-1)
			return nil
		}
		var returned atomic.Int32
		var wg sync.WaitGroup
		syncer := func() { assert.NoError(t, d.sync()); returned.Add(1) }

		wg.Go(syncer) // leads the first fsync, and is held in it
		synctest.Wait()
		require.Equal(t, uint64(1), d.count())

		const late = 10 // renamed while the first fsync runs
		for range late {
			wg.Go(syncer)
		}
		synctest.Wait()
		assert.Equal(t, int32(0), returned.Load(), "nobody returns while the first fsync runs")

		release <- struct{}{} // the first completes; one of the late leads the second
		synctest.Wait()
		assert.Equal(t, int32(1), returned.Load(), "only the first caller is covered by the first fsync")
		assert.Equal(t, uint64(2), d.count())

		release <- struct{}{}
		wg.Wait()
		assert.Equal(t, int32(1+late), returned.Load())
		assert.Equal(t, uint64(2), d.count(), "the late callers shared one fsync")

		// Alone, a caller runs its own.
		go func() { release <- struct{}{} }()
		require.NoError(t, d.sync())
		assert.Equal(t, uint64(3), d.count())
	})
}

// A Save returns only after a folder fsync that began after its rename.
func TestFileStoreSaveWaitsForFolderSync(t *testing.T) {
	s := newTestFileStore(t)
	var renamed, syncedAfter atomic.Bool
	s.beforeRename = func(string) error { renamed.Store(true); return nil }
	s.syncer.fsync = func(dir string) error {
		syncedAfter.Store(renamed.Load())
		return syncDir(dir)
	}
	require.NoError(t, s.Save(t.Context(), "k", fsTestToken("tok", time.Now())))
	assert.True(t, syncedAfter.Load(), "the folder was synced after the rename, before Save returned")
	assert.Equal(t, uint64(1), s.syncer.count())
}

// A folder fsync that fails fails every caller that waited for it, leader and
// followers alike, since their renames may be lost in a crash; a caller
// covered by a later sync that succeeded is not failed.
func TestDirSyncerFailedSyncFailsItsGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDirSyncer(t.TempDir())
		release := make(chan error)
		d.fsync = func(string) error { return <-release }
		errs := make(chan error, 10)
		var wg sync.WaitGroup
		wg.Go(func() { errs <- d.sync() }) // leads the first sync
		synctest.Wait()
		const group = 5 // wait for the second
		for range group {
			wg.Go(func() { errs <- d.sync() })
		}
		synctest.Wait()
		release <- nil         // the first succeeds
		release <- syscall.EIO // the second fails
		wg.Wait()
		close(errs)
		var failed int
		for err := range errs {
			if err != nil {
				require.ErrorIs(t, err, syscall.EIO)
				failed++
			}
		}
		assert.Equal(t, group, failed, "every caller of the failed sync, and only those")

		go func() { release <- nil }()
		assert.NoError(t, d.sync(), "a later sync that succeeds covers its caller")
	})
}

// A folder that cannot be opened or synced is an error; only a file system
// that cannot sync folders at all is tolerated.
func TestSyncDirReportsFailures(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, syncDir(dir))
	err := syncDir(filepath.Join(dir, "gone"))
	require.ErrorIs(t, err, os.ErrNotExist, "an open that fails (EMFILE alike) is reported")
	assert.True(t, dirSyncUnsupported(syscall.EINVAL))
	assert.True(t, dirSyncUnsupported(&os.PathError{Op: "sync", Path: dir, Err: syscall.ENOTSUP}))
	assert.False(t, dirSyncUnsupported(syscall.EIO))
}

// A Save whose folder fsync fails returns the error instead of nil: "a Save
// that returned nil survives a crash" holds. The record is in place all the
// same (a later Load reads it), and the error quotes no token.
func TestFileStoreSaveReportsFolderSyncFailure(t *testing.T) {
	s := newTestFileStore(t)
	s.syncer.fsync = func(string) error { return &os.PathError{Op: "sync", Path: "dir", Err: syscall.EIO} }
	tok := fsTestToken("tok-sync-failure-secret", time.Now())
	err := s.Save(t.Context(), "k", tok)
	require.ErrorIs(t, err, syscall.EIO)
	assert.NotContains(t, err.Error(), tok.AccessToken)
	var pe *os.PathError
	assert.True(t, errors.As(err, &pe))
	got, err := s.Load(t.Context(), "k")
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, got.AccessToken)
}
