package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
)

// A client whose slot map never ages out still follows a promotion when
// built by NewClusterClient: the failures themselves make it reload. A plain
// ClusterClient with the same options keeps sending the killed master's
// slots to the dead node.
func TestNewClusterClientFollowsPromotionWithoutReloadInterval(t *testing.T) {
	cluster := redistest.StartCluster(t)
	opts := func() *redis.ClusterOptions {
		o := cluster.ClientOptions()
		o.ClusterStateReloadInterval = time.Hour // only failures can reload the map
		return o
	}
	following := redisstore.NewClusterClient(opts())
	defer following.Close()
	plain := redis.NewClusterClient(opts())
	defer plain.Close()

	ctx := t.Context()
	victim := cluster.Masters()[0]
	key := keyOn(t, following, victim)
	for _, rdb := range []*redis.ClusterClient{following, plain} {
		require.NoError(t, rdb.Set(ctx, key, "before", 0).Err()) // both load their map
	}
	cluster.WaitReplicated()
	killed := time.Now()
	cluster.Kill(victim.Master)
	cluster.WaitHealthy()

	took := untilDone(killed, func(ctx context.Context) error { return following.Get(ctx, key).Err() })
	require.Positive(t, took, "NewClusterClient never reached the promoted replica")
	t.Logf("NewClusterClient read the killed master's slots %v after SIGKILL", took.Round(time.Millisecond))
	for range 3 {
		require.NoError(t, following.Get(ctx, key).Err())
		assert.Error(t, plain.Get(ctx, key).Err(), "a plain client without a reload interval cannot follow")
	}
}
