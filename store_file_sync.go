package wxtoken

import (
	"os"
	"sync"
)

// dirSyncer makes renames in one folder durable with as few fsyncs of the
// folder as it can: a group commit. A caller whose rename has returned asks for
// a sync that starts after its request; while one sync runs, every request that
// arrives waits for the next, which one of them runs for all. N concurrent
// saves thus cost about two folder fsyncs instead of N, and none returns before
// a sync that began after its rename has completed.
type dirSyncer struct {
	dir string
	// fsync is syncDir; tests replace it to hold a sync under way or to
	// make it fail.
	fsync func(dir string) error
	mu    sync.Mutex
	cond  *sync.Cond // signalled when a sync completes; uses mu
	// started and completed count syncs; a sync runs while started > completed.
	started, completed uint64
	// lastOK is the number of the last sync that succeeded, lastErr the
	// error of the last one that failed.
	lastOK  uint64
	lastErr error
	// syncs counts the fsyncs actually issued, for tests and benchmarks.
	syncs uint64
}

func newDirSyncer(dir string) *dirSyncer {
	d := &dirSyncer{dir: dir, fsync: syncDir}
	d.cond = sync.NewCond(&d.mu)
	return d
}

// sync returns once a sync of the folder that started after sync was called
// has completed: nil when one such sync succeeded, else the error of the last
// (every caller that waited for a failed sync gets its error, so that no Save
// reports a rename durable that may not be).
func (d *dirSyncer) sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A sync under way may have started before the caller's rename: only
	// the next one counts.
	target := d.started + 1
	for d.completed < target {
		if d.started == d.completed { // none running: lead the next one
			d.started++
			d.syncs++
			n := d.started
			d.mu.Unlock()
			err := d.fsync(d.dir)
			d.mu.Lock()
			d.completed = n
			if err != nil {
				d.lastErr = err
			} else {
				d.lastOK = n
			}
			d.cond.Broadcast()
			continue
		}
		d.cond.Wait()
	}
	if d.lastOK >= target {
		return nil
	}
	return d.lastErr
}

// count returns how many folder fsyncs have been issued.
func (d *dirSyncer) count() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncs
}

// syncDir makes a rename in dir durable. A folder that cannot be opened
// (EMFILE, say) or whose sync fails (EIO) is an error: the rename may be lost
// in a crash. Only a system or file system that cannot sync a folder at all
// (dirSyncUnsupported) is not, as nothing better can be done there.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	_ = d.Close() // read-only: closing loses nothing
	if err != nil && !dirSyncUnsupported(err) {
		return err
	}
	return nil
}
