//go:build linux || darwin

package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// loadWithin runs s.Load(key) and fails the test if it has not returned after
// a generous bound. unblock must make a hung Load return (so that no goroutine
// is left behind); it runs only in that case.
func loadWithin(t *testing.T, s *FileStore, key string, unblock func()) (Token, error) {
	t.Helper()
	type result struct {
		tok Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := s.Load(context.Background(), key)
		done <- result{tok, err}
	}()
	select {
	case r := <-done:
		return r.tok, r.err
	case <-time.After(10 * time.Second):
		unblock()
		<-done
		t.Fatalf("Load(%q) blocked", key)
		return Token{}, nil
	}
}

// A FIFO at <key>.json made Load block in open until a writer came, beyond the
// reach of any context.
func TestFileStoreLoadRefusesFIFO(t *testing.T) {
	s := newTestFileStore(t)
	path := filepath.Join(s.Dir(), "k.json")
	require.NoError(t, unix.Mkfifo(path, 0o600))

	_, err := loadWithin(t, s, "k", func() {
		// A reader blocked in open(2) is released by a writer's open.
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			_ = f.Close()
		}
	})
	require.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorContains(t, err, "k.json: not a regular file: it is a named pipe")

	// The next Save replaces it with a record.
	ctx := context.Background()
	require.NoError(t, s.Save(ctx, "k", fsTestToken("fresh", time.Now())))
	got, err := s.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "fresh", got.AccessToken)
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.True(t, fi.Mode().IsRegular())
}

// A Client whose cache file was replaced by a FIFO fetches a token instead of
// hanging, and its Close returns.
func TestClientWithFIFOInFileStore(t *testing.T) {
	s := newTestFileStore(t)
	path := filepath.Join(s.Dir(), testAppID+".json")
	require.NoError(t, unix.Mkfifo(path, 0o600))
	release := func() {
		if f, err := os.OpenFile(path, os.O_RDWR|unix.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	}
	up := newUpstream(t, tokens(t))
	c := newTestClient(t, up, WithStore(s), WithFetchTimeout(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := c.Get(ctx)
	if err != nil {
		release() // or Close would wait for the fetch stuck in open
		t.Fatalf("Get: %v", err)
	}
	assert.Equal(t, "token-1", tok)
	require.NoError(t, c.Close())
	saved, err := s.Load(context.Background(), testAppID)
	require.NoError(t, err)
	assert.Equal(t, "token-1", saved.AccessToken)
}

func TestFileStoreLoadRefusesNonRegularFiles(t *testing.T) {
	cases := map[string]struct {
		make func(t *testing.T, path string)
		what string
	}{
		"symlink to a record": {func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "elsewhere.json")
			require.NoError(t, os.WriteFile(target, []byte(fsNodeRecipeFile), 0o600))
			require.NoError(t, os.Symlink(target, path))
		}, "a symbolic link"},
		"symlink to a device": {func(t *testing.T, path string) {
			require.NoError(t, os.Symlink("/dev/zero", path))
		}, "a symbolic link"},
		"dangling symlink": {func(t *testing.T, path string) {
			require.NoError(t, os.Symlink(filepath.Join(t.TempDir(), "absent"), path))
		}, "a symbolic link"},
		"directory": {func(t *testing.T, path string) {
			require.NoError(t, os.Mkdir(path, 0o700))
		}, "a directory"},
		"socket": {func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil && strings.Contains(err.Error(), "too long") {
				t.Skip("socket path too long here:", err)
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = l.Close() })
		}, "a socket"},
		"device": {func(t *testing.T, path string) {
			// The null device: reading it would yield an empty record.
			err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3)))
			if errors.Is(err, unix.EPERM) {
				t.Skip("cannot create a device node here:", err)
			}
			require.NoError(t, err)
		}, "a device"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := newTestFileStore(t)
			path := filepath.Join(s.Dir(), "k.json")
			tc.make(t, path)

			_, err := loadWithin(t, s, "k", func() {})
			require.ErrorIs(t, err, ErrCorrupt)
			assert.ErrorContains(t, err, "k.json: not a regular file: it is "+tc.what)
		})
	}
}

// Save replaces a symbolic link at <key>.json by a record and leaves the
// link's target alone.
func TestFileStoreSaveReplacesSymlink(t *testing.T) {
	s := newTestFileStore(t)
	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "elsewhere.json")
	require.NoError(t, os.WriteFile(target, []byte(fsNodeRecipeFile), 0o600))
	path := filepath.Join(s.Dir(), "k.json")
	require.NoError(t, os.Symlink(target, path))

	require.NoError(t, s.Save(ctx, "k", fsTestToken("mine", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))))
	got, err := s.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "mine", got.AccessToken)
	raw, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, fsNodeRecipeFile, string(raw), "the link's target is untouched")
}

func TestNewFileStoreTightensFolder(t *testing.T) {
	for _, tc := range []struct{ before, after os.FileMode }{
		{0o777, 0o700},
		{0o755, 0o700},
		{0o701, 0o700},
		{0o700, 0o700},
		{0o500, 0o500}, // private already: left read-only
	} {
		t.Run(tc.before.String(), func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.Chmod(dir, tc.before))
			t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
			_, err := NewFileStore(dir)
			require.NoError(t, err)
			fi, err := os.Stat(dir)
			require.NoError(t, err)
			assert.Equal(t, tc.after, fi.Mode().Perm())
		})
	}
}

// A folder of another user that others may use is refused, and left as it is.
func TestNewFileStoreRefusesOpenFolderOfAnotherUser(t *testing.T) {
	const otherUID = 4242
	dir := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, os.Mkdir(dir, 0o700))
	if err := os.Chown(dir, otherUID, otherUID); err != nil {
		t.Skip("cannot give a folder to another user (needs root):", err)
	}
	require.NoError(t, os.Chmod(dir, 0o777))

	_, err := NewFileStore(dir)
	require.ErrorIs(t, err, fs.ErrPermission)
	assert.EqualError(t, err, fmt.Sprintf("wxtoken: file store: permission denied: folder %s has mode 0777 "+
		"and belongs to uid %d, not to this process's uid %d: make it 0700 or choose another folder",
		dir, otherUID, os.Geteuid()))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o777), fi.Mode().Perm(), "the folder is left alone")
	assert.Empty(t, fsFileNames(t, dir), "nothing is created in it")

	// Private to its owner, it is accepted as it is (root may use it).
	require.NoError(t, os.Chmod(dir, 0o700))
	_, err = NewFileStore(dir)
	require.NoError(t, err)
}

// fsPlant creates a file in dir with the given age (by its modification time).
func fsPlant(t *testing.T, dir, name string, age time.Duration) {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(`{"access_token":"`+fsSecretMarker+`"}`), 0o600))
	old := time.Now().Add(-age)
	require.NoError(t, os.Chtimes(path, old, old))
}

// Temporary files left by interrupted saves hold full tokens: old ones are
// removed when a FileStore opens the folder and by a successful Save at most
// once a minute; recent ones may belong to a save under way in another process
// and stay.
func TestFileStoreRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	stale := 2 * time.Minute
	fsPlant(t, dir, ".k.123.tmp", stale)
	fsPlant(t, dir, ".other_key.4294967295.tmp", stale)
	fsPlant(t, dir, ".k.456.tmp", 10*time.Second) // a save under way elsewhere
	fsPlant(t, dir, ".k.x1.tmp", stale)           // not a name writeAtomic makes
	fsPlant(t, dir, ".k..tmp", stale)
	fsPlant(t, dir, "..k.1.tmp", stale)
	fsPlant(t, dir, "notes.tmp", stale)
	fsPlant(t, dir, "k.json.1.tmp", stale)
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".k.789.tmp"), 0o700))
	require.NoError(t, os.Symlink("/dev/null", filepath.Join(dir, ".k.790.tmp")))

	s, err := NewFileStore(dir)
	require.NoError(t, err)
	kept := []string{".k.456.tmp", ".k.x1.tmp", ".k..tmp", "..k.1.tmp", "notes.tmp", "k.json.1.tmp", ".k.789.tmp", ".k.790.tmp"}
	assert.ElementsMatch(t, kept, fsTempNames(t, dir), "NewFileStore removed the stale ones")

	// Within a minute of the last sweep, a Save does not read the folder again.
	fsPlant(t, dir, ".k.321.tmp", stale)
	fsPlant(t, dir, ".j.654.tmp", stale)
	ctx := context.Background()
	require.NoError(t, s.Save(ctx, "k", fsTestToken("tok", time.Now())))
	assert.ElementsMatch(t, append(kept, ".k.321.tmp", ".j.654.tmp"), fsTempNames(t, dir), "no sweep yet")

	// A refused one never sweeps.
	s.nextSweep.Store(0)
	require.ErrorIs(t, s.Save(ctx, "k", fsTestToken("old", time.Now().Add(-time.Hour))), ErrNewerToken)
	assert.ElementsMatch(t, append(kept, ".k.321.tmp", ".j.654.tmp"), fsTempNames(t, dir), "a refused Save does not sweep")

	// Once the minute is over, the next successful Save of any key sweeps
	// every key's stale temporary files, and books the next sweep.
	require.NoError(t, s.Save(ctx, "j", fsTestToken("tok", time.Now())))
	assert.ElementsMatch(t, kept, fsTempNames(t, dir), "the Save swept the folder")
	assert.Greater(t, s.nextSweep.Load(), time.Now().Add(staleTempAge/2).UnixNano(), "next sweep booked")
	fsPlant(t, dir, ".k.322.tmp", stale)
	require.NoError(t, s.Save(ctx, "k", fsTestToken("tok2", time.Now())))
	assert.Contains(t, fsTempNames(t, dir), ".k.322.tmp", "one sweep a minute")
}

// fsTempNames lists the names in dir ending in .tmp.
func fsTempNames(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, name := range fsFileNames(t, dir) {
		if strings.HasSuffix(name, ".tmp") {
			names = append(names, name)
		}
	}
	return names
}

// Processes killed with SIGKILL in the middle of saves leave temporary files;
// once they are old, the next FileStore on the folder removes every one.
func TestFileStoreCleansUpAfterKilledSavers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	left := 0
	for run, target := range []int{3, 20, 60} {
		killSaverAfter(t, dir, run, target)
		left = len(fsTempNames(t, dir))
	}
	t.Logf("the kills left %d temporary files", left)
	// One interrupted save for certain, whatever the kills hit.
	fsPlant(t, dir, "."+testAppID+".99.tmp", 0)

	old := time.Now().Add(-2 * time.Minute)
	for _, name := range fsTempNames(t, dir) {
		require.NoError(t, os.Chtimes(filepath.Join(dir, name), old, old))
	}
	s, err := NewFileStore(dir)
	require.NoError(t, err)
	assert.Empty(t, fsTempNames(t, dir))
	tok, err := s.Load(context.Background(), testAppID)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(tok.AccessToken, "loop-2-"), tok.AccessToken)
}

// A lock file that is not a regular file is refused: a dangling symbolic link
// made Lock create its target, anywhere the link pointed.
func TestFileStoreRefusesIrregularLockFiles(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"dangling symlink", "symlink to a file", "directory"} {
		t.Run(kind, func(t *testing.T) {
			s := newTestFileStore(t)
			elsewhere := t.TempDir()
			// Every name a lock file has had: the folder's, and the key's own.
			names := []string{".lock", "k.lock", ".k.save.lock"}
			for _, name := range names {
				path := filepath.Join(s.Dir(), name)
				target := filepath.Join(elsewhere, name+".target")
				switch kind {
				case "dangling symlink":
					require.NoError(t, os.Symlink(target, path))
				case "symlink to a file":
					require.NoError(t, os.WriteFile(target, nil, 0o600))
					require.NoError(t, os.Symlink(target, path))
				case "directory":
					require.NoError(t, os.Mkdir(path, 0o700))
				}
			}
			before := fsFileNames(t, elsewhere)
			want := "not a regular file: it is a symbolic link"
			if kind == "directory" {
				want = "not a regular file: it is a directory"
			}

			unlock, err := s.Lock(ctx, "k", time.Minute)
			if err == nil {
				_ = unlock(ctx)
			}
			require.ErrorContains(t, err, want)
			assert.True(t, strings.HasPrefix(err.Error(), "wxtoken: file store: lock k: lock file "+s.Dir()), err.Error())
			err = s.Save(ctx, "k", fsTestToken("tok", time.Now()))
			require.ErrorContains(t, err, want)
			assert.Equal(t, before, fsFileNames(t, elsewhere), "nothing created or removed where the links point")
			_, err = s.Load(ctx, "k")
			require.ErrorIs(t, err, ErrNotFound, "nothing was saved")
		})
	}
}
