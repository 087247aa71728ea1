package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// folderLockName is the one lock file of a FileStore folder on Linux. It starts
// with a dot, which no key may, so it is never a key's record.
const folderLockName = ".lock"

// lockFile takes the lock of kind for key across processes: a write lock on
// one byte of the folder's lock file, held by an open file description of its
// own. Such a lock excludes every other description, in this process or
// another, and lasts until the description is closed, by release or by the
// death of the process. It polls until it holds the lock or ctx ends.
func lockFile(ctx context.Context, dir, key string, kind lockKind) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, folderLockName)
	fd, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	// Whence 0 (SEEK_SET): Start counts from the beginning of the file.
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: lockOffset(key, kind), Len: 1}
	err = pollLock(ctx, func() (bool, error) {
		switch err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk); {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EACCES):
			return false, nil
		case errors.Is(err, unix.EINVAL):
			return false, fmt.Errorf("lock %s: open file description locks are not supported (Linux 3.15 or later): %w", path, err)
		default:
			return false, &fs.PathError{Op: "lock", Path: path, Err: err}
		}
	})
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	// Closing the description releases its lock, whatever else fails.
	return func() { _ = unix.Close(fd) }, nil
}

// openLockFile opens, creating it if need be, the regular file at path for
// locking. It refuses anything else: following a symbolic link would create or
// lock a file elsewhere.
func openLockFile(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			return -1, fmt.Errorf("lock file %s: %w", path, notRegular(fi.Mode()))
		}
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return -1, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("lock file %s: %w", path, notRegular(unixFileType(st.Mode)))
	}
	return fd, nil
}

// lockOffset is the byte of the folder's lock file that stands for key's lock
// of kind: fetch locks lie in [2⁶¹, 2⁶²), save locks in [2⁶², 3·2⁶¹), so the
// two never meet. Every process sharing a folder must agree on it: the hash
// (64-bit FNV-1a) must never change. Two keys whose hashes collide only wait for
// each other, which costs time, never correctness.
func lockOffset(key string, kind lockKind) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return int64(kind)<<61 | int64(h.Sum64()>>3)
}
