package wxtoken

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// New refuses a store key that FileStore would refuse, whatever the Store, and
// before it touches the disk. Before, a FileStore Client with such a key ran
// without lock or persistence, every Load, Save and Lock failing.
func TestNewRefusesBadStoreKey(t *testing.T) {
	bad := []string{"../evil", "a/b", ".hidden", "a b", "a:b", "a..b", "é", strings.Repeat("k", 129)}
	for _, key := range bad {
		t.Run(key, func(t *testing.T) {
			parent := t.TempDir()
			fs, err := NewFileStore(filepath.Join(parent, "store"))
			require.NoError(t, err)
			for name, st := range map[string]Store{"file": fs, "memory": NewMemoryStore()} {
				c, err := New(testAppID, testSecret, WithStore(st), WithStoreKey(key), WithLogger(quietLogger()))
				require.ErrorIs(t, err, ErrInvalidKey, "%s store", name)
				assert.Nil(t, c)
				assert.True(t, strings.HasPrefix(err.Error(), "wxtoken: store key: "), err.Error())
			}
			assert.Equal(t, []string{"store"}, fsFileNames(t, parent), "nothing created beside the store")
			assert.Empty(t, fsFileNames(t, fs.Dir()), "nothing created in the store")
		})
	}

	t.Run("default store", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "cache"))
		_, err := New(testAppID, testSecret, WithStoreKey("../evil"), WithLogger(quietLogger()))
		require.ErrorIs(t, err, ErrInvalidKey)
		assert.Empty(t, fsFileNames(t, home), "no cache folder is created")
	})
}

func TestNewAcceptsStoreKeys(t *testing.T) {
	for _, opts := range [][]Option{
		nil,                            // the appid
		{WithStableToken()},            // appid.stable
		{WithStoreKey("access_token")}, // the Node recipe's file
		{WithStoreKey(strings.Repeat("k", 128))},
	} {
		c, err := New(testAppID, testSecret, append([]Option{WithStore(NewMemoryStore()), WithLogger(quietLogger())}, opts...)...)
		require.NoError(t, err)
		require.NoError(t, c.Close())
	}
}
