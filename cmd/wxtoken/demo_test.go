package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDemoShowsOneFetchForTheColdHerd(t *testing.T) {
	tmp, cache := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp)           // where the demo's temporary folder goes
	t.Setenv("XDG_CACHE_HOME", cache) // the user's real cache must stay untouched

	// Fewer cached Gets than the default: under -race each costs ~100 times more.
	r := runCLI(cli{demoHits: 100_000}, nil, "demo")

	require.Equal(t, exitOK, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Empty(t, r.stderr)
	assert.Regexp(t, regexp.MustCompile(`(?m)^  ✓ 1,000 cold callers +1 fetch +\S+ +.*share one fetch$`), r.stdout)
	for _, want := range []string{
		`(?m)^  ✓ first fetch +1 fetch `,
		`(?m)^  ✓ cached hit +0 fetches +[0-9.]+ns +per Get, over 100,000 Gets`,
		`(?m)^  ✓ restart +0 fetches `,
		`(?m)^  ✓ 40001 healed +1 refetch .*got 40001; .*\(2 sends\): errcode 0$`,
		`(?m)^3 token fetches in all`,
	} {
		assert.Regexp(t, regexp.MustCompile(want), r.stdout)
	}
	assert.NotContains(t, r.stdout, "✗")
	assert.True(t, strings.HasPrefix(r.stdout, "wxtoken demo: the library against a fake WeChat (wxtest) running in this process at http://127.0.0.1:"), r.stdout)

	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "the demo's temporary folder is removed")
	assert.NoDirExists(t, filepath.Join(cache, "wxtoken"))
}

func TestDemoRejectsArguments(t *testing.T) {
	t.Parallel()
	r := runArgs(nil, "demo", "now")
	assert.Equal(t, exitUsage, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "demo takes no arguments")
}
