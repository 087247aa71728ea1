package wxtoken

import (
	"sync"
	"sync/atomic"
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
		d.fsync = func(string) {
			assert.Equal(t, int32(1), running.Add(1), "one fsync at a time")
			<-release
			running.Add(-1)
		}
		var returned atomic.Int32
		var wg sync.WaitGroup
		syncer := func() { d.sync(); returned.Add(1) }

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
		d.sync()
		assert.Equal(t, uint64(3), d.count())
	})
}

// A Save returns only after a folder fsync that began after its rename.
func TestFileStoreSaveWaitsForFolderSync(t *testing.T) {
	s := newTestFileStore(t)
	var renamed, syncedAfter atomic.Bool
	s.beforeRename = func(string) error { renamed.Store(true); return nil }
	s.syncer.fsync = func(dir string) {
		syncedAfter.Store(renamed.Load())
		syncDir(dir)
	}
	require.NoError(t, s.Save(t.Context(), "k", fsTestToken("tok", time.Now())))
	assert.True(t, syncedAfter.Load(), "the folder was synced after the rename, before Save returned")
	assert.Equal(t, uint64(1), s.syncer.count())
}
