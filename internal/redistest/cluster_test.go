package redistest

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClusterHasThreeMastersCoveringEverySlot(t *testing.T) {
	c := StartCluster(t)
	require.Len(t, c.Addrs(), 6)
	for _, a := range c.Addrs() {
		assert.Regexp(t, `^127\.0\.0\.1:\d+$`, a)
	}
	shards := c.Masters()
	require.Len(t, shards, 3)
	next, seen := 0, map[string]bool{}
	for _, sh := range shards {
		require.Len(t, sh.Replicas, 1, "master %s", sh.Master)
		for _, r := range sh.Slots {
			assert.Equal(t, next, r.Start, "slots must be contiguous across shards")
			next = r.End + 1
		}
		for _, n := range append([]string{sh.Master}, sh.Replicas...) {
			assert.False(t, seen[n], "node %s in two roles", n)
			seen[n] = true
		}
	}
	assert.Equal(t, 16384, next, "every slot is served")
	assert.Len(t, seen, 6)

	rdb := c.NewClient(t)
	ctx := t.Context()
	for i := range 30 {
		require.NoError(t, rdb.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err())
	}
	for i := range 30 {
		got, err := rdb.Get(ctx, "k"+strconv.Itoa(i)).Int()
		require.NoError(t, err)
		assert.Equal(t, i, got)
	}
}

// A killed master's replica takes its slots over, and the cluster client of
// ClientOptions follows within a few node timeouts.
func TestClusterKillMasterPromotesItsReplica(t *testing.T) {
	c := StartCluster(t)
	rdb := c.NewClient(t)
	ctx := t.Context()
	victim := c.Masters()[0]
	key := keyInSlots(t, rdb, victim)
	require.NoError(t, rdb.Set(ctx, key, "before", 0).Err())
	c.WaitReplicated()

	c.Kill(victim.Master)
	require.Error(t, ping(victim.Master), "killed node must be down")
	c.Kill(victim.Master) // idempotent
	took := c.WaitHealthy()
	t.Logf("replica promoted %v after SIGKILL (node timeout %v)", took.Round(time.Millisecond), ClusterNodeTimeout)

	shards := c.Masters()
	require.Len(t, shards, 3)
	var promoted Shard
	for _, sh := range shards {
		if sh.Has(victim.Slots[0].Start) {
			promoted = sh
		}
	}
	assert.Equal(t, victim.Replicas[0], promoted.Master, "the replica serves the slots now")
	assert.Equal(t, victim.Slots, promoted.Slots)

	require.Eventually(t, func() bool {
		got, err := rdb.Get(ctx, key).Result()
		return err == nil && got == "before"
	}, 10*time.Second, 10*time.Millisecond, "the client must follow the promotion with the key kept")
}

// keyInSlots returns a key that sh serves.
func keyInSlots(t *testing.T, rdb *redis.ClusterClient, sh Shard) string {
	t.Helper()
	for i := range 10_000 {
		k := "probe" + strconv.Itoa(i)
		slot, err := rdb.ClusterKeySlot(context.Background(), k).Result()
		require.NoError(t, err)
		if sh.Has(int(slot)) {
			return k
		}
	}
	t.Fatalf("no key in the slots of %s", sh.Master)
	return ""
}

func TestClusterStopLeavesNoProcess(t *testing.T) {
	var pids []int
	t.Run("cluster", func(t *testing.T) {
		c := StartCluster(t)
		for _, p := range c.nodes {
			pid, err := p.Pid()
			require.NoError(t, err)
			pids = append(pids, pid)
		}
	})
	require.Len(t, pids, 6)
	for _, pid := range pids {
		// The processes were reaped: the kernel has forgotten their ids,
		// or given them to somebody else, which is not a redis-server of ours.
		out, _ := exec.Command("ps", "-o", "args=", "-p", strconv.Itoa(pid)).Output()
		assert.NotContains(t, string(out), "redis-server", "pid %d still runs", pid)
	}
}

func TestMissingRedisCLIIsErrNotInstalled(t *testing.T) {
	err := &notFound{program: "redis-cli", err: exec.ErrNotFound}
	require.ErrorIs(t, err, ErrNotInstalled)
	require.ErrorIs(t, err, exec.ErrNotFound)
	assert.Contains(t, err.Error(), "redis-cli not found on PATH")
	assert.False(t, errors.Is(errors.New("other"), ErrNotInstalled))
}

func TestShardsOfKeepsOnlineNodesOfShardsWithSlots(t *testing.T) {
	node := func(port int64, role, health string) redis.Node {
		return redis.Node{IP: "127.0.0.1", Port: port, Role: role, Health: health}
	}
	got := shardsOf([]redis.ClusterShard{
		{Slots: []redis.SlotRange{{Start: 10, End: 19}, {Start: 5, End: 9}},
			Nodes: []redis.Node{node(2, "master", "online"), node(3, "replica", "online"), node(4, "replica", "loading")}},
		{Slots: []redis.SlotRange{{Start: 0, End: 4}},
			Nodes: []redis.Node{node(1, "master", "failed"), node(5, "master", "online")}},
		{Nodes: []redis.Node{node(6, "master", "online")}}, // serves no slot
	})
	assert.Equal(t, []Shard{
		{Master: "127.0.0.1:5", Slots: []SlotRange{{0, 4}}},
		{Master: "127.0.0.1:2", Replicas: []string{"127.0.0.1:3"}, Slots: []SlotRange{{5, 9}, {10, 19}}},
	}, got)
	assert.True(t, got[1].Has(19))
	assert.False(t, got[1].Has(20))
}
