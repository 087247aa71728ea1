package wxtoken

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// However many keys a folder serves, it holds one lock file besides the records.
func TestFileStoreOneLockFilePerFolder(t *testing.T) {
	s := newTestFileStore(t)
	ctx := context.Background()
	for _, key := range []string{"a", "b", "access_token"} {
		unlock, err := s.Lock(ctx, key, time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.Save(ctx, key, fsTestToken("tok", time.Now())))
		require.NoError(t, unlock(ctx))
	}
	assert.ElementsMatch(t, []string{".lock", "a.json", "b.json", "access_token.json"}, fsFileNames(t, s.Dir()))
}

// An appid WeChat refuses leaves nothing named after it in the folder: a lock
// file per key could never be removed safely, so one would stay for every
// wrong appid ever tried.
func TestFileStoreRefusedAppIDLeavesNoFile(t *testing.T) {
	s := newTestFileStore(t)
	up := newUpstream(t, httpmock.NewStringResponder(http.StatusOK, `{"errcode":40013,"errmsg":"invalid appid"}`))
	c := newTestClient(t, up, WithStore(s))
	_, err := c.Get(context.Background())
	require.Error(t, err)
	assert.True(t, IsPermanent(err), "%v", err)
	assert.Equal(t, 1, up.GetTotalCallCount())
	assert.Equal(t, []string{".lock"}, fsFileNames(t, s.Dir()))
}

func TestLockOffset(t *testing.T) {
	seen := map[int64]string{}
	for _, key := range []string{"a", "b", "access_token", testAppID, testAppID + ".stable", strings.Repeat("k", 128)} {
		f, sv := lockOffset(key, fetchLock), lockOffset(key, saveLock)
		assert.True(t, f >= 1<<61 && f < 1<<62, "fetch offset %#x of %q", f, key)
		assert.True(t, sv >= 1<<62 && sv < 3<<61, "save offset %#x of %q", sv, key)
		for _, off := range []int64{f, sv} {
			assert.NotContains(t, seen, off, "%q and %q share a byte", key, seen[off])
			seen[off] = key
		}
		assert.Equal(t, f, lockOffset(key, fetchLock), "stable")
	}
	// The offsets are part of the on-disk protocol between processes of
	// different versions: they must never change (2⁶¹ + FNV-1a(key) / 8).
	assert.Equal(t, int64(0x217c5893c2263b07), lockOffset("access_token", fetchLock))
}
