package wxtoken

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tempKey reads names found in the folder, which anybody may have put there:
// it must accept exactly the names writeAtomic makes.
func FuzzTempKey(f *testing.F) {
	for _, seed := range []string{
		".k.123.tmp", ".access_token.4294967295.tmp", ".wx0123456789abcdef.stable.1.tmp",
		".k..tmp", "..k.1.tmp", ".k.x1.tmp", "k.1.tmp", ".k.1.tmp.tmp", ".lock", ".tmp", "..tmp",
		"../x.1.tmp", ".a/b.1.tmp", ".k.-1.tmp", ".k.1 .tmp",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		key, ok := tempKey(name)
		if !ok {
			return
		}
		require.NoError(t, checkKey(key))
		digits, found := strings.CutPrefix(name, "."+key+".")
		require.True(t, found, "%q does not start with .%s.", name, key)
		digits, found = strings.CutSuffix(digits, ".tmp")
		require.True(t, found)
		require.NotEmpty(t, digits)
		require.Equal(t, -1, strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }), "%q", name)
	})
}

// The names os.CreateTemp gives writeAtomic's pattern are the ones tempKey
// recognizes.
func TestTempKeyMatchesCreateTemp(t *testing.T) {
	dir := t.TempDir()
	for _, key := range []string{"k", "access_token", "wx0123456789abcdef.stable", "x."} {
		f, err := os.CreateTemp(dir, "."+key+".*.tmp")
		require.NoError(t, err)
		require.NoError(t, f.Close())
		got, ok := tempKey(filepath.Base(f.Name()))
		assert.True(t, ok, f.Name())
		assert.Equal(t, key, got)
	}
}
