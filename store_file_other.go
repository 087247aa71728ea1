//go:build !unix

package wxtoken

import (
	"os"
)

// openRegular opens path for reading if it is a regular file, and refuses
// anything else (a link, a directory, a device) with an error matching
// errNotRegular. The type is checked again on the opened file, so a swap after
// the first check cannot slip anything else in.
func openRegular(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(fi.Mode())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		if err != nil {
			return nil, err
		}
		return nil, notRegular(fi.Mode())
	}
	return f, nil
}

// tightenDir does nothing: without Unix permissions, a folder's mode bits say
// nothing about who may read it.
func tightenDir(string) error { return nil }

// dirSyncUnsupported reports whether err, from the fsync of a folder, means
// that the system cannot sync folders rather than that the sync failed.
// Outside Unix (Windows) a folder cannot be synced at all: every such error
// is that.
func dirSyncUnsupported(error) bool { return true }
