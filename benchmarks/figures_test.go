package benchmarks_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wxtoken/wxtoken/benchmarks/internal/figures"
	"github.com/wxtoken/wxtoken/benchmarks/internal/peers"
)

func peerNamed(t *testing.T, name string) peers.Peer {
	t.Helper()
	for _, p := range peers.All() {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no peer %q", name)
	return peers.Peer{}
}

// TestPeersReachTheFake checks the harness itself: every peer, however it
// builds its URL, gets its token from the fake, once, and then serves it from
// its cache.
func TestPeersReachTheFake(t *testing.T) {
	for _, p := range peers.All() {
		t.Run(p.Name, func(t *testing.T) {
			ctx := context.Background()
			up, env := startEnv(t, p.Redis)
			g, err := p.New(env)
			require.NoError(t, err)
			defer g.Close()

			tok, err := g.Get(ctx)
			require.NoError(t, err)
			assert.Zero(t, up.Check(tok), "the fake must accept the token the peer got")
			again, err := g.Get(ctx)
			require.NoError(t, err)
			assert.Equal(t, tok, again)
			assert.Equal(t, 1, up.Fetches(), "one fetch, then the cache")
		})
	}
}

// TestWxtokenFigures asserts what the README claims for wxtoken, on a small
// scale: a cold herd fetches once, replicas sharing Redis fetch once between
// them, and no call waits while the token renews.
func TestWxtokenFigures(t *testing.T) {
	ctx := context.Background()
	t.Run("herd", func(t *testing.T) {
		up, env := startEnv(t, false)
		c, err := figures.Herd(ctx, up, peerNamed(t, "wxtoken/memory"), env, 1000)
		require.NoError(t, err)
		assert.Equal(t, figures.Counts{Fetches: 1, Tokens: 1, Elapsed: c.Elapsed}, c)
	})
	t.Run("replicas", func(t *testing.T) {
		up, env := startEnv(t, true)
		c, err := figures.Replicas(ctx, up, peerNamed(t, "wxtoken/redis"), env, 4, 100)
		require.NoError(t, err)
		assert.Equal(t, figures.Counts{Fetches: 1, Tokens: 1, Elapsed: c.Elapsed}, c)
	})
	t.Run("renewal", func(t *testing.T) {
		up, env := startEnv(t, false)
		l, err := figures.Renewal(ctx, up, peerNamed(t, "wxtoken/memory"), env, figures.RenewalConfig{
			Callers: 4, Pace: time.Millisecond, Every: time.Second, Cycles: 2,
			Delay: 20 * time.Millisecond, Stall: 5 * time.Millisecond,
		})
		require.NoError(t, err)
		assert.GreaterOrEqual(t, l.Renewals, 2, "the run must cross two renewal points")
		assert.Zero(t, l.Errors)
		assert.Equal(t, int64(1), l.Waits, "only the cold warm-up call may wait for a fetch")
	})
}
