package redisstore_test

// Tests against a real Redis Cluster (3 masters, 3 replicas) started by
// internal/redistest: skipped when redis-server or redis-cli is missing,
// failed instead when CI is set.

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/redistest"
)

// Four replicas that start at once, each asking for every account, fetch
// each token once between them, and WeChat takes every token they hold: no
// replica's fetch invalidated another's.
func TestClusterReplicasFetchEachKeyOnce(t *testing.T) {
	cluster := redistest.StartCluster(t)
	f := newFleet(t, clusterKeyCount(), cluster.NewClient)
	before := commandsProcessed(t, cluster)

	began := time.Now()
	toks := f.getAll(t)
	took := time.Since(began)

	f.requireFetchesPerKey(t, 1)
	assert.Equal(t, len(f.keys), f.srv.TokenCalls(), "requests that reached WeChat")
	assert.Zero(t, f.srv.Rejections()[40001])
	assert.Zero(t, f.storeFailures.Load(), "Store calls that failed")
	commands := commandsProcessed(t, cluster) - before
	t.Logf("%d replicas x %d keys on a 3-master cluster: %d fetches, %v, %.1f Redis commands per key (all nodes, replication included)",
		clusterReplicas, len(f.keys), f.totalFetches(), took.Round(time.Millisecond), float64(commands)/float64(len(f.keys)))

	// Served from memory from now on: another round costs no fetch.
	again := f.getAll(t)
	assert.Equal(t, toks, again)
	f.requireFetchesPerKey(t, 1)
}

// Every account's token key and lock key hash to the same slot of the real
// cluster, so the Store's scripts, which name both, run on one node; and the
// accounts spread over all three masters.
func TestClusterKeysOfAnAccountShareASlotAndAccountsSpread(t *testing.T) {
	cluster := redistest.StartCluster(t)
	f := newFleet(t, clusterKeyCount(), cluster.NewClient)
	rdb := cluster.NewClient(t)
	shards := cluster.Masters()
	require.Len(t, shards, 3)

	perMaster := map[string]int{}
	for _, k := range f.keys {
		token, lock := clusterPrefix+"{"+k+"}", clusterPrefix+"{"+k+"}:lock"
		slot := slotOf(t, rdb, token)
		require.Equal(t, slot, slotOf(t, rdb, lock), "key %s", k)
		perMaster[shardOf(t, shards, slot).Master]++
	}
	t.Logf("%d accounts over the masters: %v", len(f.keys), perMaster)
	require.Len(t, perMaster, 3, "every master holds accounts")
	for m, n := range perMaster {
		// A fair hash gives each of three masters a third; far less means
		// the keys share a hash tag.
		assert.Greater(t, n, len(f.keys)/6, "master %s", m)
	}

	// On the real thing: a held lock and its token sit on one master, read
	// there directly, bypassing the cluster client.
	toks := f.getAll(t)
	key := f.keys[0]
	unlock, err := f.stores[0].Lock(t.Context(), key, time.Minute)
	require.NoError(t, err)
	defer func() { require.NoError(t, unlock(context.Background())) }()
	master := shardOf(t, shards, slotOf(t, rdb, clusterPrefix+"{"+key+"}")).Master
	n, err := nodeClient(t, master).Exists(t.Context(), clusterPrefix+"{"+key+"}", clusterPrefix+"{"+key+"}:lock").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "token and lock of %s on its master %s", key, master)

	// Keys name the account, never its secret or token.
	var (
		mu   sync.Mutex
		keys []string
	)
	require.NoError(t, rdb.ForEachMaster(t.Context(), func(ctx context.Context, m *redis.Client) error {
		ks, err := m.Keys(ctx, "*").Result()
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, ks...)
		return err
	}))
	assert.Equal(t, len(f.keys)+1, len(keys), "one token per account and the held lock")
	f.requireNoSecretIn(t, strings.Join(keys, "\n"), toks)
}

// commandsProcessed sums total_commands_processed over the nodes.
func commandsProcessed(t *testing.T, cluster *redistest.Cluster) int64 {
	t.Helper()
	var total int64
	for _, addr := range cluster.Addrs() {
		info, err := nodeClient(t, addr).Info(t.Context(), "stats").Result()
		require.NoError(t, err)
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				require.NoError(t, err)
				total += n
			}
		}
	}
	return total
}

// nodeClient returns a client of the one node at addr, closed when t ends.
func nodeClient(t *testing.T, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{
		Addr:                     addr,
		MaxRetries:               -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}
