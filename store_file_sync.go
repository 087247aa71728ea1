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
	// fsync is syncDir; tests replace it to hold a sync under way.
	fsync func(dir string)
	mu    sync.Mutex
	cond  *sync.Cond // signalled when a sync completes; uses mu
	// started and completed count syncs; a sync runs while started > completed.
	started, completed uint64
	// syncs counts the fsyncs actually issued, for tests and benchmarks.
	syncs uint64
}

func newDirSyncer(dir string) *dirSyncer {
	d := &dirSyncer{dir: dir, fsync: syncDir}
	d.cond = sync.NewCond(&d.mu)
	return d
}

// sync returns once a sync of the folder that started after sync was called
// has completed. It is best effort, like syncDir.
func (d *dirSyncer) sync() {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A sync under way may have started before the caller's rename: only
	// the next one counts.
	target := d.started + 1
	for d.completed < target {
		if d.started == d.completed { // none running: lead the next one
			d.started++
			d.syncs++
			d.mu.Unlock()
			d.fsync(d.dir)
			d.mu.Lock()
			d.completed = d.started
			d.cond.Broadcast()
			continue
		}
		d.cond.Wait()
	}
}

// count returns how many folder fsyncs have been issued.
func (d *dirSyncer) count() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncs
}

// syncDir makes a rename durable. It is best effort: some systems (Windows,
// some network file systems) cannot sync a directory, and the rename has
// already succeeded.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
