//go:build unix

package wxtoken

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// openRegular opens path for reading if it is a regular file. It neither
// follows a symbolic link at path nor blocks: opening a FIFO waits for a writer
// and a device may wait for anything, and no context could end that wait. The
// type is checked on the opened descriptor, so a swap after the check cannot
// slip anything else in. Anything but a regular file yields an error matching
// errNotRegular.
func openRegular(path string) (*os.File, error) {
	fd, err := openRegularAt(unix.AT_FDCWD, path, path)
	if err != nil {
		return nil, err
	}
	// Reads of a regular file do not block anyway; clearing the flag keeps the
	// os package from treating the descriptor as pollable.
	if err := unix.SetNonblock(fd, false); err != nil {
		_ = unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openRegularAt is openRegular for name in the folder open as dirfd (or the
// working directory, for AT_FDCWD), returning the descriptor. path names the
// file in errors.
func openRegularAt(dirfd int, name, path string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags|openNoATime, 0)
	if errors.Is(err, unix.EPERM) && openNoATime != 0 { // a file of another user
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	if err != nil {
		// A symbolic link fails with ELOOP (EMLINK on some BSDs), a socket with
		// ENXIO: say what is there rather than how open failed.
		var st unix.Stat_t
		if lerr := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); lerr == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			return -1, notRegular(unixFileType(uint32(st.Mode)))
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
		return -1, notRegular(unixFileType(uint32(st.Mode)))
	}
	return fd, nil
}

// unixFileType converts the type bits of a stat mode to an fs.FileMode type.
func unixFileType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// tightenDir takes group and other permissions away from the folder dir, which
// exists, if it belongs to this process's user, and refuses it otherwise: tokens
// in a folder others may write to can be replaced or removed under us. It works
// on an open descriptor so that the folder checked is the folder changed.
func tightenDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: dir, Err: err}
	}
	mode := uint32(st.Mode) &^ unix.S_IFMT
	if mode&0o077 == 0 {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%w: folder %s has mode %#o and belongs to uid %d, not to this process's uid %d: "+
			"make it 0700 or choose another folder", fs.ErrPermission, dir, mode&0o777, st.Uid, uid)
	}
	if err := unix.Fchmod(fd, mode&^0o077); err != nil {
		return fmt.Errorf("%w: folder %s has mode %#o and cannot be made private: %w",
			fs.ErrPermission, dir, mode&0o777, err)
	}
	return nil
}

// dirSyncUnsupported reports whether err, from the fsync of a folder, means
// that the file system cannot sync folders (some network and FUSE file
// systems), rather than that the sync failed.
func dirSyncUnsupported(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP)
}
