//go:build unix

package wxtoken

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// recordFolder reads records relative to one open descriptor of the folder, so
// that each record costs a lookup of its own name only, not of every component
// of the folder's path.
type recordFolder struct {
	path string
	fd   int
}

// openRecordFolder opens dir for reading records. A folder that does not exist
// holds no record: reads then find nothing.
func openRecordFolder(dir string) (*recordFolder, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		fd = -1
	case err != nil:
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return &recordFolder{path: dir, fd: fd}, nil
}

func (f *recordFolder) close() {
	if f.fd >= 0 {
		_ = unix.Close(f.fd)
	}
}

// read returns the record in file name, classified as readTokenFile does.
// buf, of maxTokenFileSize+1 bytes, is the caller's to reuse.
func (f *recordFolder) read(name string, buf []byte) (Token, error) {
	if f.fd < 0 {
		return Token{}, fmt.Errorf("%w: %s", ErrNotFound, filepath.Join(f.path, name))
	}
	fd, err := openRegularAt(f.fd, name, name)
	if err != nil {
		return Token{}, openTokenError(filepath.Join(f.path, name), err)
	}
	defer unix.Close(fd)
	n, err := readUpTo(fd, buf)
	if err != nil {
		path := filepath.Join(f.path, name)
		return Token{}, fmt.Errorf("wxtoken: file store: read %s: %w", path, &fs.PathError{Op: "read", Path: path, Err: err})
	}
	tok, err := decodeTokenFile(buf[:n])
	if err != nil {
		return Token{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, filepath.Join(f.path, name), err)
	}
	return tok, nil
}

// readUpTo reads fd until its end or until buf is full.
func readUpTo(fd int, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return n, err
		case m == 0:
			return n, nil
		}
		n += m
	}
	return n, nil
}
