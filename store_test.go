package wxtoken

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A record dated ahead of the clock was saved by a host with a wrong clock; it
// must not count as newer than a correctly dated token, or it would stay in
// place until the clock caught up, even after WeChat rejected it.
func TestStoresReplaceATokenDatedAhead(t *testing.T) {
	fs, err := NewFileStore(t.TempDir())
	require.NoError(t, err)
	for name, store := range map[string]Store{"memory": NewMemoryStore(), "file": fs} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			ahead := Token{AccessToken: "ahead", ExpiresIn: 7200, CreateTime: now.Add(MaxClockSkew + time.Minute)}
			slightlyAhead := Token{AccessToken: "skewed", ExpiresIn: 7200, CreateTime: now.Add(MaxClockSkew / 2)}
			good := Token{AccessToken: "good", ExpiresIn: 7200, CreateTime: now}

			require.NoError(t, store.Save(ctx, "k", ahead))
			require.NoError(t, store.Save(ctx, "k", good))
			got, err := store.Load(ctx, "k")
			require.NoError(t, err)
			assert.Equal(t, "good", got.AccessToken)

			require.NoError(t, store.Save(ctx, "k", slightlyAhead))
			require.NoError(t, store.Save(ctx, "k", good),
				"a token dated ahead by less than the skew is replaced too")
			older := Token{AccessToken: "older", ExpiresIn: 7200, CreateTime: now.Add(-time.Minute)}
			assert.ErrorIs(t, store.Save(ctx, "k", older), ErrNewerToken,
				"a correctly dated newer token still wins")
		})
	}
}

func TestDatedAhead(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	assert.False(t, Token{CreateTime: now.Add(MaxClockSkew)}.DatedAhead(now))
	assert.True(t, Token{CreateTime: now.Add(MaxClockSkew + time.Nanosecond)}.DatedAhead(now))
	assert.False(t, Token{CreateTime: now.Add(-time.Hour)}.DatedAhead(now))
}
