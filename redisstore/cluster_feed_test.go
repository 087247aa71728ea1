package redisstore_test

// Batched reads and the change feed on a real Redis Cluster (3 masters, 3
// replicas), across the failover of the master that holds the feed's
// subscriptions.

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
)

// nodeRounds counts the round trips a cluster client sends to each node: a
// command or a pipeline is one. Connection handshakes are left out, and so
// are the slot-map reloads (CLUSTER SLOTS) that go-redis sends in the
// background once its map is older than ClusterStateReloadInterval.
type nodeRounds struct {
	mu     sync.Mutex
	rounds map[string]int
}

// countedClusterClient returns the documented cluster client of cluster,
// whose round trips per node rounds counts, closed when t ends.
func countedClusterClient(t *testing.T, cluster *redistest.Cluster) (*redis.ClusterClient, *nodeRounds) {
	rdb := redisstore.NewClusterClient(cluster.ClientOptions())
	t.Cleanup(func() { _ = rdb.Close() })
	rounds := &nodeRounds{rounds: map[string]int{}}
	rdb.OnNewNode(func(node *redis.Client) { node.AddHook(nodeHook{rounds, node.Options().Addr}) })
	return rdb, rounds
}

func (n *nodeRounds) add(addr string) {
	n.mu.Lock()
	n.rounds[addr]++
	n.mu.Unlock()
}

// take returns the counts and starts again from zero.
func (n *nodeRounds) take() map[string]int {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.rounds
	n.rounds = map[string]int{}
	return out
}

type nodeHook struct {
	rounds *nodeRounds
	addr   string
}

func (h nodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name != "hello" && name != "cluster" {
			h.rounds.add(h.addr)
		}
		return next(ctx, cmd)
	}
}

func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() != "client" { // CLIENT SETINFO after HELLO
			h.rounds.add(h.addr)
		}
		return next(ctx, cmds)
	}
}

// One LoadMany of keys spread over the three masters returns every record,
// and a key the Cluster lacks as ErrNotFound, in one call: one pipeline per
// master, nothing sent to the replicas. A call that finds the read script
// missing (a node restarted or promoted) loads it on every node and tries once
// more.
func TestClusterLoadManyReadsEveryMasterInOneCall(t *testing.T) {
	cluster := redistest.StartCluster(t)
	rdb, rounds := countedClusterClient(t, cluster)
	st := redisstore.New(rdb, redisstore.WithPrefix(clusterPrefix))
	ctx := t.Context()
	n := clusterKeyCount()
	keys := make([]string, n)
	saved := make([]wxtoken.Token, n)
	for i := range keys {
		keys[i] = clusterAppID(i)
		saved[i] = wxtoken.Token{AccessToken: "token-" + strconv.Itoa(i), ExpiresIn: 7200, CreateTime: time.Now().Round(time.Millisecond)}
		require.NoError(t, st.Save(ctx, keys[i], saved[i]))
	}
	missing := clusterAppID(n)
	keys = append(keys, missing)

	shards := cluster.Masters()
	perMaster := map[string]int{}
	for _, k := range keys[:n] {
		perMaster[shardOf(t, shards, slotOf(t, rdb, clusterPrefix+"{"+k+"}")).Master]++
	}
	require.Len(t, perMaster, 3, "the keys spread over every master")

	rounds.take()
	check := func() map[string]int {
		t.Helper()
		began := time.Now()
		got, err := st.LoadMany(ctx, keys)
		took := time.Since(began)
		require.NoError(t, err)
		require.Len(t, got, len(keys))
		for i, tok := range saved {
			require.NoError(t, got[i].Err, "key %s", keys[i])
			require.Equal(t, tok.AccessToken, got[i].Token.AccessToken, "key %s", keys[i])
			require.True(t, tok.CreateTime.Equal(got[i].Token.CreateTime), "key %s", keys[i])
		}
		require.ErrorIs(t, got[n].Err, wxtoken.ErrNotFound)
		r := rounds.take()
		t.Logf("LoadMany of %d keys over %v (keys per master): %v, round trips per node %v", len(keys), perMaster, took.Round(time.Microsecond), r)
		return r
	}
	// As on a node that restarted or was promoted: no script cached.
	require.NoError(t, rdb.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		return node.ScriptFlush(ctx).Err()
	}))
	rounds.take()
	cold := check()
	wantCold := map[string]int{}
	for _, sh := range shards {
		wantCold[sh.Master] = 3 // NOSCRIPT, SCRIPT LOAD, the pipeline again
		for _, r := range sh.Replicas {
			wantCold[r] = 1 // SCRIPT LOAD
		}
	}
	assert.Equal(t, wantCold, cold, "a cold call loads the script on every node and tries once more")
	warm := check()
	want := map[string]int{}
	for m := range perMaster {
		want[m] = 1
	}
	assert.Equal(t, want, warm, "one pipeline per master, nothing else")
}

// With the change feed on a Cluster, a renewal saved by replica A reaches B
// to D (each its own ClusterClient) within a second. The feed's
// subscriptions sit on the master of the channel's slot; when that master is
// killed, every feed subscribes again, on the promoted replica, and
// resynchronizes, and renewals after the failover still reach B to D, on the
// promoted master's slots as on the others. B to D fetch nothing throughout,
// and LoadMany reads every record, the promoted master's included.
func TestClusterFeedCarriesRenewalAcrossMasterFailover(t *testing.T) {
	cluster := redistest.StartCluster(t)
	f := newFleet(t, smallFleetKeyCount(), documentedClient(cluster), redisstore.WithChangeFeed())
	toks := f.getAll(t)
	f.requireFetchesPerKey(t, 1)
	resyncs := watchResyncs(t, f.stores)

	probe := documentedClient(cluster)(t)
	channel := clusterPrefix + "changed"
	shards := cluster.Masters()
	victim := shardOf(t, shards, slotOf(t, probe, channel))
	assert.Equal(t, map[string]int64{victim.Master: int64(len(f.stores))}, subscribers(t, cluster.Addrs(), channel),
		"one subscription per Store, on the master of the channel's slot")

	// One key on each master; the victim's first.
	var renewing []int
	for _, sh := range append([]redistest.Shard{victim}, shards...) {
		for i, k := range f.keys {
			if sh.Has(slotOf(t, probe, clusterPrefix+"{"+k+"}")) {
				if !slices.Contains(renewing, i) {
					renewing = append(renewing, i)
				}
				break
			}
		}
	}
	require.Len(t, renewing, 3)
	// A listener on a master that stays: PUBLISH reaches every node.
	bystander := listen(t, shards[(slices.IndexFunc(shards, func(sh redistest.Shard) bool { return sh.Master == victim.Master })+1)%len(shards)].Master, channel)
	for _, i := range renewing {
		toks[i] = renewOnA(t, f, f.keys[i], toks[i])
	}
	cluster.WaitReplicated()

	killed := time.Now()
	cluster.Kill(victim.Master)
	cluster.WaitHealthy()
	promoted := time.Since(killed)
	victimKey := f.keys[renewing[0]]
	for r, st := range f.stores {
		d := untilDone(killed, func(ctx context.Context) error {
			_, err := st.Load(ctx, victimKey)
			return err
		})
		require.Positive(t, d, "replica %d did not read the killed master's slots within 90 s", r)
	}
	followed := time.Since(killed)
	for r, n := range resyncs {
		require.Eventually(t, func() bool { return n.Load() > 0 }, 30*time.Second, 5*time.Millisecond,
			"replica %d's feed did not resubscribe after the failover", r)
	}
	resubscribed := time.Since(killed)
	subs := subscribers(t, cluster.Addrs(), channel)
	t.Logf("SIGKILL of the master holding the feed: replica promoted after %v, every Store read its slots after %v, every feed resubscribed and resynchronized after %v; subscriptions now %v",
		promoted.Round(time.Millisecond), followed.Round(time.Millisecond), resubscribed.Round(time.Millisecond), subs)
	var total int64
	for _, n := range subs {
		total += n
	}
	assert.Equal(t, int64(len(f.stores))+1, total, "one subscription per Store, and the bystander's")

	for _, i := range renewing {
		toks[i] = renewOnA(t, f, f.keys[i], toks[i])
	}
	assert.Equal(t, int64(len(f.keys)+2*len(renewing)), f.totalFetches(), "A's renewals, no fetch by B to D")

	// The feed names keys: no token, no secret.
	var announced []string
	for range 2 * len(renewing) {
		msg, err := bystander.ReceiveMessage(t.Context())
		require.NoError(t, err)
		announced = append(announced, msg.Payload)
	}
	var want []string
	for range 2 {
		for _, i := range renewing {
			want = append(want, f.keys[i])
		}
	}
	assert.ElementsMatch(t, want, announced, "one message per Save, the key")
	f.requireNoSecretIn(t, strings.Join(announced, "\n"), toks)

	got, err := f.stores[1].LoadMany(t.Context(), f.keys)
	require.NoError(t, err)
	for i, res := range got {
		require.NoError(t, res.Err, "key %s", f.keys[i])
		require.Equal(t, fingerprint(toks[i]), fingerprint(res.Token.AccessToken), "key %s", f.keys[i])
	}
}

// listen subscribes a client of the node at addr to channel, closed when t
// ends.
func listen(t *testing.T, addr, channel string) *redis.PubSub {
	t.Helper()
	ps := nodeClient(t, addr).Subscribe(t.Context(), channel)
	t.Cleanup(func() { _ = ps.Close() })
	_, err := ps.ReceiveTimeout(t.Context(), time.Second) // the confirmation
	require.NoError(t, err)
	return ps
}

// subscribers returns, for each live node of addrs with any, how many
// clients subscribe to channel there (PUBSUB NUMSUB counts one node's own).
func subscribers(t *testing.T, addrs []string, channel string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	var errs []error
	for _, addr := range addrs {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		n, err := nodeClient(t, addr).PubSubNumSub(ctx, channel).Result()
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n[channel] > 0 {
			out[addr] = n[channel]
		}
	}
	if len(out) == 0 {
		require.NoError(t, errors.Join(errs...))
	}
	return out
}
