//go:build !unix

package wxtoken

import "path/filepath"

// recordFolder reads records of one folder by their paths.
type recordFolder struct{ path string }

func openRecordFolder(dir string) (*recordFolder, error) { return &recordFolder{path: dir}, nil }

func (*recordFolder) close() {}

// read returns the record in file name, as readTokenFile does; buf is unused.
func (f *recordFolder) read(name string, _ []byte) (Token, error) {
	return readTokenFile(filepath.Join(f.path, name))
}
