//go:build linux || darwin

package wxtoken

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Environment and protocol of a TestHelperProcessFileStoreParallelSaves child.
const (
	fsKillDirEnv  = "WXTOKEN_FILESTORE_KILL_DIR"
	fsKillRunEnv  = "WXTOKEN_FILESTORE_KILL_RUN"
	fsKillKeys    = 192 // a multiple of fsKillSavers: each key has one saver
	fsKillSavers  = 16
	fsKillStarted = "started"
	fsKillSaved   = "saved " // saved <key> <token>
)

func fsKillKey(i int) string { return "kill" + strconv.Itoa(i) }

// fsKillToken names the seq-th save of a run: later saves sort after earlier
// ones, across runs too.
func fsKillToken(run int, seq int64) string { return fmt.Sprintf("kill-%02d-%010d", run, seq) }

// TestHelperProcessFileStoreParallelSaves is the child of
// TestFileStoreKilledDuringParallelSaves: fsKillSavers goroutines save the
// fsKillKeys keys in turn, as fast as they can, printing "saved <key> <token>"
// after each Save that returned nil, until the parent kills the process.
func TestHelperProcessFileStoreParallelSaves(t *testing.T) {
	dir := os.Getenv(fsKillDirEnv)
	if dir == "" {
		t.Skip("runs only as a child process of TestFileStoreKilledDuringParallelSaves")
	}
	run, err := strconv.Atoi(os.Getenv(fsKillRunEnv))
	require.NoError(t, err)
	s, err := NewFileStore(dir)
	require.NoError(t, err)
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	report := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = out.WriteString(line + "\n")
		_ = out.Flush()
	}
	report(fsKillStarted)
	var seq atomic.Int64
	deadline := time.Now().Add(30 * time.Second) // the parent kills us long before
	var wg sync.WaitGroup
	for g := range fsKillSavers {
		wg.Go(func() {
			// Each key has one saver, so that its saves come in order.
			for i := g; time.Now().Before(deadline); i += fsKillSavers {
				key := fsKillKey(i % fsKillKeys)
				tok := fsTestToken(fsKillToken(run, seq.Add(1)), time.Now())
				if err := s.Save(context.Background(), key, tok); err != nil {
					report("error " + err.Error())
					return
				}
				report(fsKillSaved + key + " " + tok.AccessToken)
			}
		})
	}
	wg.Wait()
	t.Error("was never killed")
}

// A process killed with SIGKILL while it saves many keys in parallel leaves
// every record parsable, and every save it reported (its Save returned nil) in
// place or replaced by a later one; its temporary files, once stale, are
// removed by the next FileStore on the folder.
func TestFileStoreKilledDuringParallelSaves(t *testing.T) {
	runs := 20
	if testing.Short() {
		runs = 5
	}
	dir := t.TempDir()
	allowed := regexp.MustCompile(`^(kill\d+\.json|\.lock|\.kill\d+\.save\.lock|\.kill\d+\.\d+\.tmp)$`)
	reported := map[string]string{} // key → the latest token a child reported saved
	ctx := context.Background()
	keys := make([]string, fsKillKeys)
	for i := range keys {
		keys[i] = fsKillKey(i)
	}
	tempsLeft := 0
	for run := range runs {
		target := 1 + rand.IntN(400)
		saves, lines := fsKillSaverAfter(t, dir, run, target)
		for key, tok := range lines {
			reported[key] = tok
		}

		s, err := NewFileStore(dir)
		require.NoError(t, err)
		got, err := s.LoadMany(ctx, keys)
		require.NoError(t, err)
		for i, key := range keys {
			if _, ok := reported[key]; !ok {
				continue
			}
			res := got[i]
			require.NoError(t, res.Err, "run %d (killed after %d saves): record %s", run, saves, key)
			assert.GreaterOrEqual(t, res.Token.AccessToken, reported[key], "run %d: %s lost a save it reported", run, key)
			single, err := s.Load(ctx, key)
			require.NoError(t, err)
			assert.Equal(t, res.Token, single)
		}
		for _, name := range fsFileNames(t, dir) {
			require.Regexp(t, allowed, name, "run %d left an unexpected file", run)
			if key, ok := strings.CutSuffix(name, ".json"); ok {
				_, err := s.Load(ctx, key)
				require.NoError(t, err, "run %d: %s", run, name)
			}
		}
		tempsLeft = len(fsTempNames(t, dir))
	}
	t.Logf("%d kills during parallel saves; %d temporary files left behind", runs, tempsLeft)

	old := time.Now().Add(-2 * staleTempAge)
	for _, name := range fsTempNames(t, dir) {
		require.NoError(t, os.Chtimes(filepath.Join(dir, name), old, old))
	}
	_, err := NewFileStore(dir)
	require.NoError(t, err)
	assert.Empty(t, fsTempNames(t, dir), "stale temporary files removed")
}

// fsKillSaverAfter runs a TestHelperProcessFileStoreParallelSaves child on dir
// and kills it with SIGKILL once it has reported target saves. It returns how
// many saves it reported and the last token reported for each key.
func fsKillSaverAfter(t *testing.T, dir string, run, target int) (int, map[string]string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessFileStoreParallelSaves$", "-test.count=1")
	// Under -race a process sleeps a second at exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), fsKillDirEnv+"="+dir, fsKillRunEnv+"="+strconv.Itoa(run), "GORACE="+gorace)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waited := false
	defer func() {
		if !waited { // failed early: do not leave the child running
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	last := map[string]string{}
	saves, started, killed := 0, false, false
	var errs []string
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		line := lines.Text()
		switch {
		case line == fsKillStarted:
			started = true
		case strings.HasPrefix(line, fsKillSaved):
			key, tok, ok := strings.Cut(strings.TrimPrefix(line, fsKillSaved), " ")
			if !ok {
				continue // the last line may be cut short by the kill
			}
			last[key] = tok
			saves++
		case strings.HasPrefix(line, "error "):
			errs = append(errs, line)
		}
		if saves >= target && !killed {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	err = cmd.Wait()
	waited = true
	require.True(t, started && killed, "child ended after %d saves without being killed: %v; stderr:\n%s", saves, err, stderr.String())
	require.Empty(t, errs, "the child's saves failed")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child was not killed: %v\n%s", err, stderr.String())
	return saves, last
}
