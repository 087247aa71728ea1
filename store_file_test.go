package wxtoken

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fsNodeRecipeFile is a cache file exactly as the Node.js recipe writes it.
const fsNodeRecipeFile = `{"createTime":"2020-12-11T03:05:48.123Z","access_token":"39_node-written-token","expires_in":7200}`

// fsSecretMarker stands for a token inside corrupt files: no error may quote it.
const fsSecretMarker = "SECRETTOKEN"

func newTestFileStore(t *testing.T) *FileStore {
	t.Helper()
	s, err := NewFileStore(t.TempDir())
	require.NoError(t, err)
	return s
}

func fsTestToken(name string, created time.Time) Token {
	return Token{AccessToken: name, ExpiresIn: 7200, CreateTime: created}
}

// fsFetchLockName and fsSaveLockName name the lock files that Lock and Save of
// key leave in the folder.
func fsFetchLockName(key string) string {
	if runtime.GOOS == "linux" {
		return ".lock"
	}
	return key + ".lock"
}

func fsSaveLockName(key string) string {
	if runtime.GOOS == "linux" {
		return ".lock"
	}
	return "." + key + ".save.lock"
}

func fsFileNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFileStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := NewFileStore(dir)
	require.NoError(t, err)
	assert.Equal(t, dir, s.Dir())

	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "store folder mode")

	ctx := context.Background()
	created := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CST", 8*3600))
	want := fsTestToken("round-trip-token", created)
	require.NoError(t, s.Save(ctx, "wxappid_token", want))

	got, err := s.Load(ctx, "wxappid_token")
	require.NoError(t, err)
	assert.Equal(t, want.AccessToken, got.AccessToken)
	assert.Equal(t, want.ExpiresIn, got.ExpiresIn)
	assert.True(t, want.CreateTime.Equal(got.CreateTime), "CreateTime %v, want %v", got.CreateTime, want.CreateTime)

	path := filepath.Join(dir, "wxappid_token.json")
	fi, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "token file mode")

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var fields map[string]any
	require.NoError(t, json.Unmarshal(raw, &fields))
	assert.Equal(t, map[string]any{
		"access_token": "round-trip-token",
		"expires_in":   float64(7200),
		"createTime":   "2024-05-05T23:08:09.123456789Z", // written in UTC, as Node does
	}, fields)
}

func TestFileStoreLoadsNodeRecipeFile(t *testing.T) {
	s := newTestFileStore(t)
	require.NoError(t, os.WriteFile(filepath.Join(s.Dir(), "access_token.json"), []byte(fsNodeRecipeFile), 0o600))

	got, err := s.Load(context.Background(), "access_token")
	require.NoError(t, err)
	assert.Equal(t, "39_node-written-token", got.AccessToken)
	assert.Equal(t, int64(7200), got.ExpiresIn)
	assert.True(t, got.CreateTime.Equal(time.Date(2020, 12, 11, 3, 5, 48, 123000000, time.UTC)), "CreateTime %v", got.CreateTime)
}

func TestNewFileStore(t *testing.T) {
	t.Run("existing folder loses group and other access", func(t *testing.T) {
		if runtime.GOOS == "windows" {
			t.Skip("no Unix permissions")
		}
		dir := t.TempDir()
		require.NoError(t, os.Chmod(dir, 0o750))
		s, err := NewFileStore(dir)
		require.NoError(t, err)
		assert.Equal(t, dir, s.Dir())
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
	})
	t.Run("relative folder is made absolute", func(t *testing.T) {
		t.Chdir(t.TempDir())
		s, err := NewFileStore("rel")
		require.NoError(t, err)
		assert.True(t, filepath.IsAbs(s.Dir()), "Dir() = %q", s.Dir())
		assert.Equal(t, "rel", filepath.Base(s.Dir()))
	})
	t.Run("folder is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		_, err := NewFileStore(file)
		require.ErrorContains(t, err, "not a directory")
		_, err = NewFileStore(filepath.Join(file, "sub"))
		require.Error(t, err)
	})
	t.Run("empty name", func(t *testing.T) {
		_, err := NewFileStore("")
		require.Error(t, err)
	})
}

func TestFileStoreLoadMissing(t *testing.T) {
	s := newTestFileStore(t)
	_, err := s.Load(context.Background(), "absent")
	require.ErrorIs(t, err, ErrNotFound)
	assert.NotErrorIs(t, err, ErrCorrupt)
}

func TestFileStoreLoadCorrupt(t *testing.T) {
	valid := func(field, value string) string {
		m := map[string]string{
			"createTime":   `"2020-12-11T03:05:48.123Z"`,
			"access_token": `"` + fsSecretMarker + `-token"`,
			"expires_in":   "7200",
		}
		m[field] = value
		return fmt.Sprintf(`{"createTime":%s,"access_token":%s,"expires_in":%s}`,
			m["createTime"], m["access_token"], m["expires_in"])
	}
	cases := map[string]string{
		"garbage":            "\x00\xffnot json at all " + fsSecretMarker,
		"truncated":          fsNodeRecipeFile[:len(fsNodeRecipeFile)/2],
		"truncated secret":   `{"access_token":"` + fsSecretMarker,
		"empty file":         "",
		"null":               "null",
		"array":              `["` + fsSecretMarker + `"]`,
		"string":             `"` + fsSecretMarker + `"`,
		"empty object":       "{}",
		"empty token":        valid("access_token", `""`),
		"expires_in zero":    valid("expires_in", "0"),
		"expires_in neg":     valid("expires_in", "-7200"),
		"expires_in huge":    valid("expires_in", "99999999999"),
		"expires_in float":   valid("expires_in", "7200.5"),
		"expires_in string":  valid("expires_in", `"`+fsSecretMarker+`"`),
		"expires_in too big": valid("expires_in", "1e400"),
		"createTime bad":     valid("createTime", `"`+fsSecretMarker+`"`),
		"createTime number":  valid("createTime", "1607655948123"),
		"createTime missing": `{"access_token":"` + fsSecretMarker + `","expires_in":7200}`,
		"trailing data":      fsNodeRecipeFile + `{"access_token":"` + fsSecretMarker + `"}`,
		// Valid JSON after 70 KiB of blanks: only the size cap can reject it.
		"huge file": strings.Repeat(" ", 70<<10) + fsNodeRecipeFile,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			s := newTestFileStore(t)
			ctx := context.Background()
			path := filepath.Join(s.Dir(), "k.json")
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))

			_, err := s.Load(ctx, "k")
			require.ErrorIs(t, err, ErrCorrupt)
			assert.Contains(t, err.Error(), "k.json", "the error names the file")
			// The folder name holds the test's name, which may match short contents.
			msg := strings.ReplaceAll(err.Error(), s.Dir(), "<dir>")
			assert.NotContains(t, msg, fsSecretMarker)
			if content != "" {
				assert.NotContains(t, msg, content)
			}

			// The next Save replaces the corrupt record, whatever its date.
			want := fsTestToken("fresh", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
			require.NoError(t, s.Save(ctx, "k", want))
			got, err := s.Load(ctx, "k")
			require.NoError(t, err)
			assert.Equal(t, "fresh", got.AccessToken)
		})
	}
}

func TestFileStoreKeepsNewerToken(t *testing.T) {
	s := newTestFileStore(t)
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.Save(ctx, "k", fsTestToken("N3WER-tok", t0.Add(time.Minute))))

	err := s.Save(ctx, "k", fsTestToken("0LDER-tok", t0))
	require.ErrorIs(t, err, ErrNewerToken)
	assert.NotContains(t, err.Error(), "0LDER-tok")
	assert.NotContains(t, err.Error(), "N3WER-tok")

	got, err := s.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "N3WER-tok", got.AccessToken)

	// Same CreateTime is not older: the save goes through.
	require.NoError(t, s.Save(ctx, "k", fsTestToken("same-time", t0.Add(time.Minute))))
	got, err = s.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "same-time", got.AccessToken)
}

func TestFileStoreSaveRejectsInvalidToken(t *testing.T) {
	s := newTestFileStore(t)
	bad := Token{AccessToken: fsSecretMarker, ExpiresIn: 0, CreateTime: time.Now()}
	err := s.Save(context.Background(), "k", bad)
	require.ErrorIs(t, err, ErrInvalidToken)
	assert.NotContains(t, err.Error(), fsSecretMarker)
	assert.Empty(t, fsFileNames(t, s.Dir()), "nothing is written for an invalid token")
}

func TestFileStoreRejectsBadKeys(t *testing.T) {
	parent := t.TempDir()
	s, err := NewFileStore(filepath.Join(parent, "store"))
	require.NoError(t, err)
	ctx := context.Background()
	tok := fsTestToken("tok", time.Now())

	keys := []string{
		"../x", "a/b", "", ".hidden", "a\x00b", "..", ".", "a..b", `a\b`, "a b",
		"/abs", "é", "a:b", strings.Repeat("k", 129),
	}
	for _, key := range keys {
		_, err := s.Load(ctx, key)
		assert.ErrorIs(t, err, ErrInvalidKey, "Load(%q)", key)
		assert.ErrorIs(t, s.Save(ctx, key, tok), ErrInvalidKey, "Save(%q)", key)
		unlock, err := s.Lock(ctx, key, time.Minute)
		assert.ErrorIs(t, err, ErrInvalidKey, "Lock(%q)", key)
		assert.Nil(t, unlock)
	}
	assert.Equal(t, []string{"store"}, fsFileNames(t, parent), "nothing created beside the store")
	assert.Empty(t, fsFileNames(t, s.Dir()), "nothing created in the store")

	// The limits themselves are accepted.
	for _, key := range []string{strings.Repeat("k", 128), "a.b_c-D9", "x."} {
		require.NoError(t, s.Save(ctx, key, tok), "Save(%q)", key)
	}
}

func TestFileStoreLeavesNoTempFiles(t *testing.T) {
	s := newTestFileStore(t)
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		require.NoError(t, s.Save(ctx, "k", fsTestToken("tok"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second))))
	}
	require.ErrorIs(t, s.Save(ctx, "k", fsTestToken("old", t0)), ErrNewerToken)

	// A rename that the OS refuses: the target became a directory meanwhile.
	target := filepath.Join(s.Dir(), "k.json")
	s.beforeRename = func(string) error {
		require.NoError(t, os.Remove(target))
		return os.Mkdir(target, 0o700)
	}
	err := s.Save(ctx, "k", fsTestToken("late", t0.Add(time.Hour)))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "late")
	require.NoError(t, os.Remove(target))

	// A failure right after the temporary file is complete.
	s.beforeRename = func(string) error { return fmt.Errorf("injected") }
	require.ErrorContains(t, s.Save(ctx, "k", fsTestToken("late", t0.Add(time.Hour))), "injected")
	s.beforeRename = nil

	assert.ElementsMatch(t, []string{fsSaveLockName("k")}, fsFileNames(t, s.Dir()))

	t.Run("read-only folder", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, which ignores folder permissions")
		}
		require.NoError(t, s.Save(ctx, "k", fsTestToken("before", t0.Add(2*time.Hour))))
		require.NoError(t, os.Chmod(s.Dir(), 0o500))
		t.Cleanup(func() { _ = os.Chmod(s.Dir(), 0o700) })
		require.Error(t, s.Save(ctx, "k", fsTestToken("after", t0.Add(3*time.Hour))))
		assert.ElementsMatch(t, []string{fsSaveLockName("k"), "k.json"}, fsFileNames(t, s.Dir()))
		got, err := s.Load(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, "before", got.AccessToken)
	})
}

func TestFileStoreConcurrentSavesKeepNewest(t *testing.T) {
	s := newTestFileStore(t)
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 50

	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs <- s.Save(ctx, "k", fsTestToken("tok"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second)))
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			require.ErrorIs(t, err, ErrNewerToken)
		}
	}

	got, err := s.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "tok"+strconv.Itoa(n-1), got.AccessToken)
	assert.True(t, got.CreateTime.Equal(t0.Add((n-1)*time.Second)))
	assert.ElementsMatch(t, []string{fsSaveLockName("k"), "k.json"}, fsFileNames(t, s.Dir()))
}

func TestFileStoreSaveUnderOwnLock(t *testing.T) {
	s := newTestFileStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The Client's sequence: Lock, Load, Save, Load, unlock, all in one goroutine.
	unlock, err := s.Lock(ctx, "k", time.Minute)
	require.NoError(t, err)
	_, err = s.Load(ctx, "k")
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, s.Save(ctx, "k", fsTestToken("mine", time.Now())))
	got, err := s.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "mine", got.AccessToken)
	require.NoError(t, unlock(ctx))

	fi, err := os.Stat(filepath.Join(s.Dir(), fsFetchLockName("k")))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "lock file mode")
}

// fsWaitSignalCtx closes waiting the first time Done is called: pollLock
// consults Done only after a failed attempt, so it tells that a Lock is waiting.
type fsWaitSignalCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func newFSWaitSignalCtx(parent context.Context) *fsWaitSignalCtx {
	return &fsWaitSignalCtx{Context: parent, waiting: make(chan struct{})}
}

func (c *fsWaitSignalCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

func TestFileStoreLockExcludesWithinProcess(t *testing.T) {
	s := newTestFileStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	unlockA, err := s.Lock(ctx, "k", time.Minute)
	require.NoError(t, err)

	wctx := newFSWaitSignalCtx(ctx)
	acquired := make(chan func(context.Context) error)
	go func() {
		unlockB, err := s.Lock(wctx, "k", time.Minute)
		assert.NoError(t, err)
		acquired <- unlockB
	}()

	select {
	case <-wctx.waiting: // B has tried and found the lock taken
	case <-acquired:
		t.Fatal("second holder got the lock while the first held it")
	}
	require.NoError(t, unlockA(ctx))
	unlockB := <-acquired
	require.NotNil(t, unlockB)
	require.NoError(t, unlockB(ctx))
	require.NoError(t, unlockB(ctx), "unlock is idempotent")
	require.NoError(t, unlockA(ctx), "unlock is idempotent")

	// Several goroutines contending: never two holders at once.
	var holders, entries atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				unlock, err := s.Lock(ctx, "k", time.Minute)
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, int32(1), holders.Add(1))
				entries.Add(1)
				runtime.Gosched()
				holders.Add(-1)
				assert.NoError(t, unlock(ctx))
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(40), entries.Load())
}

func TestFileStoreLockRespectsContext(t *testing.T) {
	s := newTestFileStore(t)
	ctx := context.Background()
	unlock, err := s.Lock(ctx, "k", time.Minute)
	require.NoError(t, err)
	defer func() { require.NoError(t, unlock(ctx)) }()

	cctx, cancel := context.WithCancel(ctx)
	wctx := newFSWaitSignalCtx(cctx)
	result := make(chan error)
	go func() {
		u, err := s.Lock(wctx, "k", time.Minute)
		assert.Nil(t, u)
		result <- err
	}()
	select {
	case <-wctx.waiting:
	case err := <-result:
		t.Fatalf("Lock returned %v while the lock was held", err)
	}
	cancel()
	require.ErrorIs(t, <-result, context.Canceled)

	// A context already done never touches the lock, nor the disk.
	done, cancelDone := context.WithCancel(ctx)
	cancelDone()
	_, err = s.Lock(done, "other", time.Minute)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Load(done, "other")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.Save(done, "other", fsTestToken("t", time.Now())), context.Canceled)
	assert.ElementsMatch(t, []string{fsFetchLockName("k")}, fsFileNames(t, s.Dir()))

	// A Save waiting for another process's save lock gives up with its context.
	release, err := lockFile(ctx, s.Dir(), "k", saveLock) // its own descriptor, as another process's
	require.NoError(t, err)
	defer release()
	sctx, cancelSave := context.WithCancel(ctx)
	swctx := newFSWaitSignalCtx(sctx)
	go func() { result <- s.Save(swctx, "k", fsTestToken("t", time.Now())) }()
	select {
	case <-swctx.waiting:
	case err := <-result:
		t.Fatalf("Save returned %v while the save lock was held", err)
	}
	cancelSave()
	require.ErrorIs(t, <-result, context.Canceled)
}

const (
	fsHelperDirEnv     = "WXTOKEN_FILESTORE_HELPER_DIR"
	fsHelperIterations = 25
	fsHelperProcesses  = 4
)

// TestHelperProcessFileStoreLock is the child of TestFileStoreLockAcrossProcesses:
// it increments a counter file fsHelperIterations times under the store's Lock.
func TestHelperProcessFileStoreLock(t *testing.T) {
	dir := os.Getenv(fsHelperDirEnv)
	if dir == "" {
		t.Skip("runs only as a child process of TestFileStoreLockAcrossProcesses")
	}
	s, err := NewFileStore(dir)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	counter := filepath.Join(dir, "counter")
	for range fsHelperIterations {
		unlock, err := s.Lock(ctx, "k", time.Minute)
		require.NoError(t, err)
		n := 0
		if raw, err := os.ReadFile(counter); err == nil {
			n, err = strconv.Atoi(string(raw))
			require.NoError(t, err)
		}
		runtime.Gosched() // widen the window a missing lock would leave open
		require.NoError(t, os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o600))
		require.NoError(t, unlock(ctx))
	}
}

func TestFileStoreLockAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	cmds := make([]*exec.Cmd, fsHelperProcesses)
	outs := make([]*bytes.Buffer, fsHelperProcesses)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessFileStoreLock$", "-test.count=1")
		// Under -race a process sleeps a second at exit unless told not to.
		gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
		cmd.Env = append(os.Environ(), fsHelperDirEnv+"="+dir, "GORACE="+gorace)
		outs[i] = new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		require.NoError(t, cmd.Start())
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		require.NoError(t, cmd.Wait(), "child %d:\n%s", i, outs[i])
	}
	raw, err := os.ReadFile(filepath.Join(dir, "counter"))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(fsHelperProcesses*fsHelperIterations), string(raw))
}

func FuzzFileStoreLoad(f *testing.F) {
	for _, seed := range []string{
		fsNodeRecipeFile,
		`{"access_token":"` + fsSecretMarker + `","expires_in":7200,"createTime":"2024-01-01T00:00:00+08:00"}`,
		`{"access_token":"` + fsSecretMarker + `","expires_in":0,"createTime":"2024-01-01T00:00:00Z"}`,
		`{"access_token":"` + fsSecretMarker + `","expires_in":7200,"createTime":"` + fsSecretMarker + `"}`,
		`{"access_token":"` + fsSecretMarker + `","expires_in":"` + fsSecretMarker + `"}`,
		`{"access_token":1,"expires_in":7200,"createTime":"2024-01-01T00:00:00Z"}`,
		fsNodeRecipeFile[:40],
		"", "null", "{}", "[]", `"` + fsSecretMarker + `"`, "\x00\xff garbage",
	} {
		f.Add([]byte(seed))
	}
	s, err := NewFileStore(f.TempDir())
	require.NoError(f, err)
	path := filepath.Join(s.Dir(), "fuzz.json")

	f.Fuzz(func(t *testing.T, data []byte) {
		tok, decErr := decodeTokenFile(data)
		if decErr == nil {
			require.NoError(t, tok.Validate())
		} else if bytes.Contains(data, []byte(fsSecretMarker)) {
			require.NotContains(t, decErr.Error(), fsSecretMarker)
		}

		require.NoError(t, os.WriteFile(path, data, 0o600))
		got, err := s.Load(context.Background(), "fuzz")
		if decErr != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		require.NoError(t, err)
		require.NoError(t, got.Validate())
		assert.Equal(t, tok, got)
	})
}
