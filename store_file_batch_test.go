package wxtoken

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// LoadMany answers for each key what Load answers: the same token, or an
// error matching the same sentinel and reading the same.
func TestFileStoreLoadManyMatchesLoad(t *testing.T) {
	s := newTestFileStore(t)
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.Save(ctx, "a", fsTestToken("tok-a", t0)))
	require.NoError(t, s.Save(ctx, "b", fsTestToken("tok-b", t0.Add(time.Second))))
	require.NoError(t, os.WriteFile(filepath.Join(s.Dir(), "access_token.json"), []byte(fsNodeRecipeFile), 0o600))
	corrupt := map[string]string{
		"garbage":   "\x00\xff" + fsSecretMarker,
		"truncated": `{"access_token":"` + fsSecretMarker,
		"huge":      strings.Repeat(" ", maxTokenFileSize) + fsNodeRecipeFile,
		"empty":     "",
	}
	for key, content := range corrupt {
		require.NoError(t, os.WriteFile(filepath.Join(s.Dir(), key+".json"), []byte(content), 0o600))
	}

	keys := []string{"a", "missing", "garbage", "access_token", "../a", "", ".lock", "truncated",
		"b", "a", "huge", "missing", "empty", strings.Repeat("k", 129), "a/b"}
	got, err := s.LoadMany(ctx, keys)
	require.NoError(t, err)
	require.Len(t, got, len(keys))
	for i, key := range keys {
		want, wantErr := s.Load(ctx, key)
		if wantErr == nil {
			assert.NoError(t, got[i].Err, "key %q", key)
			assert.Equal(t, want, got[i].Token, "key %q", key)
			continue
		}
		require.Error(t, got[i].Err, "key %q", key)
		assert.Equal(t, wantErr.Error(), got[i].Err.Error(), "key %q", key)
		for _, sentinel := range []error{ErrNotFound, ErrCorrupt, ErrInvalidKey} {
			assert.Equal(t, errors.Is(wantErr, sentinel), errors.Is(got[i].Err, sentinel), "key %q, %v", key, sentinel)
		}
		assert.NotContains(t, strings.ReplaceAll(got[i].Err.Error(), s.Dir(), "<dir>"), fsSecretMarker, "key %q", key)
		assert.Zero(t, got[i].Token, "key %q", key)
	}
	assert.Equal(t, "tok-a", got[0].Token.AccessToken)
	assert.Equal(t, "39_node-written-token", got[3].Token.AccessToken)
	assert.ErrorIs(t, got[4].Err, ErrInvalidKey, "an invalid key fails alone, not the batch")

	empty, err := s.LoadMany(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, empty)
}

// A folder removed under a FileStore holds no record; one that cannot be
// opened fails the batch.
func TestFileStoreLoadManyFolder(t *testing.T) {
	ctx := context.Background()
	t.Run("removed", func(t *testing.T) {
		s := newTestFileStore(t)
		require.NoError(t, os.Remove(s.Dir()))
		got, err := s.LoadMany(ctx, []string{"a", "../b"})
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.ErrorIs(t, got[0].Err, ErrNotFound)
		assert.ErrorIs(t, got[1].Err, ErrInvalidKey)
		_, loadErr := s.Load(ctx, "a")
		assert.Equal(t, loadErr.Error(), got[0].Err.Error())
	})
	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 || runtime.GOOS == "windows" {
			t.Skip("folder permissions are not enforced for root, nor on Windows")
		}
		s := newTestFileStore(t)
		require.NoError(t, os.Chmod(s.Dir(), 0o000))
		t.Cleanup(func() { _ = os.Chmod(s.Dir(), 0o700) })
		got, err := s.LoadMany(ctx, []string{"a"})
		require.Error(t, err)
		assert.Nil(t, got)
		assert.ErrorIs(t, err, os.ErrPermission)
		assert.NotErrorIs(t, err, ErrNotFound)
	})
	t.Run("not a folder", func(t *testing.T) {
		s := newTestFileStore(t)
		require.NoError(t, os.Remove(s.Dir()))
		require.NoError(t, os.WriteFile(s.Dir(), []byte(fsNodeRecipeFile), 0o600))
		_, err := s.LoadMany(ctx, []string{"a"})
		require.Error(t, err)
		assert.True(t, strings.HasPrefix(err.Error(), "wxtoken: file store: load many: "), err.Error())
	})
}

// fsCancelAfterCtx is a context whose Err turns Canceled after n calls, so that
// a test can end a batch between two given records.
type fsCancelAfterCtx struct {
	context.Context
	calls, n atomic.Int32
}

func (c *fsCancelAfterCtx) Err() error {
	if c.calls.Add(1) > c.n.Load() {
		return context.Canceled
	}
	return nil
}

func TestFileStoreLoadManyStopsWithContext(t *testing.T) {
	s := newTestFileStore(t)
	keys := fsPlantRecords(t, s.Dir(), 100, time.Now())

	ctx := &fsCancelAfterCtx{Context: context.Background()}
	ctx.n.Store(40) // the check before the batch, and 39 records
	got, err := s.LoadMany(ctx, keys)
	require.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, got, "no results with a batch error")
	assert.Equal(t, int32(41), ctx.calls.Load(), "consulted once per record, stopped at the first refusal")

	done, cancel := context.WithCancel(context.Background())
	cancel()
	got, err = s.LoadMany(done, keys)
	require.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, got)
}

// FuzzFileStoreLoadMany checks that the batch reader, which reads records into
// a buffer of its own, decides every content as Load does.
func FuzzFileStoreLoadMany(f *testing.F) {
	for _, seed := range []string{
		fsNodeRecipeFile, fsNodeRecipeFile[:40], "", "null", "{}", "\x00\xff",
		`{"access_token":"` + fsSecretMarker + `","expires_in":7200,"createTime":"` + fsSecretMarker + `"}`,
		strings.Repeat(" ", maxTokenFileSize-len(fsNodeRecipeFile)) + fsNodeRecipeFile,
		strings.Repeat(" ", maxTokenFileSize-len(fsNodeRecipeFile)+1) + fsNodeRecipeFile,
	} {
		f.Add([]byte(seed))
	}
	s, err := NewFileStore(f.TempDir())
	require.NoError(f, err)
	path := filepath.Join(s.Dir(), "fuzz.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o600))
		ctx := context.Background()
		want, wantErr := s.Load(ctx, "fuzz")
		got, err := s.LoadMany(ctx, []string{"fuzz"})
		require.NoError(t, err)
		require.Len(t, got, 1)
		if wantErr != nil {
			require.ErrorIs(t, got[0].Err, ErrCorrupt)
			assert.Equal(t, wantErr.Error(), got[0].Err.Error())
			assert.NotContains(t, strings.ReplaceAll(got[0].Err.Error(), s.Dir(), "<dir>"), fsSecretMarker)
			return
		}
		require.NoError(t, got[0].Err)
		assert.Equal(t, want, got[0].Token)
	})
}
