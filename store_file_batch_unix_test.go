//go:build linux || darwin

package wxtoken

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// In a batch as alone, anything but a regular file at <key>.json is a corrupt
// record: never followed, never waited on (a FIFO would block open until a
// writer came), and the keys around it still load.
func TestFileStoreLoadManyRefusesNonRegularFiles(t *testing.T) {
	s := newTestFileStore(t)
	ctx := context.Background()
	dir := s.Dir()
	elsewhere := filepath.Join(t.TempDir(), "elsewhere.json")
	require.NoError(t, os.WriteFile(elsewhere, []byte(fsNodeRecipeFile), 0o600))
	require.NoError(t, os.Symlink(elsewhere, filepath.Join(dir, "link.json")))
	require.NoError(t, os.Symlink(filepath.Join(dir, "absent"), filepath.Join(dir, "dangling.json")))
	require.NoError(t, unix.Mkfifo(filepath.Join(dir, "fifo.json"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "dir.json"), 0o700))
	sock := filepath.Join(dir, "sock.json")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Logf("no socket (%v): the path may be too long here", err)
		sock = ""
	} else {
		t.Cleanup(func() { _ = l.Close() })
	}
	require.NoError(t, s.Save(ctx, "ok", fsTestToken("tok-ok", time.Now())))

	keys := []string{"link", "ok", "dangling", "fifo", "dir", "sock", "ok"}
	want := map[string]string{
		"link": "a symbolic link", "dangling": "a symbolic link", "fifo": "a named pipe",
		"dir": "a directory", "sock": "a socket",
	}
	type result struct {
		res []LoadResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.LoadMany(ctx, keys)
		done <- result{res, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		// A reader blocked in open(2) on the FIFO is released by a writer's open.
		if f, err := os.OpenFile(filepath.Join(dir, "fifo.json"), os.O_RDWR, 0); err == nil {
			_ = f.Close()
		}
		<-done
		t.Fatal("LoadMany blocked")
	}
	require.NoError(t, r.err)
	for i, key := range keys {
		if key == "ok" {
			require.NoError(t, r.res[i].Err)
			assert.Equal(t, "tok-ok", r.res[i].Token.AccessToken)
			continue
		}
		if key == "sock" && sock == "" {
			continue
		}
		require.ErrorIs(t, r.res[i].Err, ErrCorrupt, "key %q", key)
		assert.ErrorContains(t, r.res[i].Err, key+".json: not a regular file: it is "+want[key])
	}
	assert.Equal(t, fsNodeRecipeFile, string(mustReadFile(t, elsewhere)), "the link's target is untouched")
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	return raw
}

// Reading a record leaves its access time alone: with relatime, the first read
// after a save would otherwise write the inode, which waits for the journal
// that concurrent saves are committing.
func TestFileStoreReadsLeaveAccessTime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("O_NOATIME is Linux's")
	}
	s := newTestFileStore(t)
	ctx := context.Background()
	require.NoError(t, s.Save(ctx, "k", fsTestToken("tok", time.Now())))
	path := filepath.Join(s.Dir(), "k.json")
	old := time.Now().Add(-48 * time.Hour)
	require.NoError(t, os.Chtimes(path, old, time.Now())) // an access before the last change: relatime would update it
	_, err := s.Load(ctx, "k")
	require.NoError(t, err)
	_, err = s.LoadMany(ctx, []string{"k"})
	require.NoError(t, err)
	var st unix.Stat_t
	require.NoError(t, unix.Stat(path, &st))
	assert.Equal(t, old.Unix(), st.Atim.Sec, "access time after Load and LoadMany")
}
