//go:build !linux

package wxtoken

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gofrs/flock"
)

// lockFile takes the lock of kind for key across processes: an exclusive flock
// on a lock file of the key's own, <key>.lock or .<key>.save.lock. Each call
// opens its own descriptor, which is what makes flock exclude holders within
// one process too. It polls until it holds the lock or ctx ends.
func lockFile(ctx context.Context, dir, key string, kind lockKind) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := key + ".lock"
	if kind == saveLock {
		// A dot starts no key, so this is never the fetch lock of another key.
		name = "." + key + ".save.lock"
	}
	path := filepath.Join(dir, name)
	// Best effort where the lock file cannot be opened without following a
	// link: refuse what is already there.
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("lock file %s: %w", path, notRegular(fi.Mode()))
	}
	fl := flock.New(path, flock.SetPermissions(0o600))
	if err := pollLock(ctx, fl.TryLock); err != nil {
		return nil, err
	}
	// Closing the descriptor releases the lock even if Unlock fails.
	return func() { _ = fl.Unlock() }, nil
}
