package redisstore_test

// Tests against a real Sentinel setup (a master, its replica, three
// sentinels) started by internal/redistest: skipped when redis-server is
// missing, failed instead when CI is set. Each replica of the fleet has its
// own redis.NewFailoverClient with the settings the README documents.

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
)

// smallFleetKeyCount is how many accounts the Sentinel tests and the
// Cluster's feed tests hold: 200, or 50 under -short.
func smallFleetKeyCount() int {
	if testing.Short() {
		return 50
	}
	return 200
}

// sentinelSwitch is what killing the master cost a fleet on Sentinel.
type sentinelSwitch struct {
	announced  time.Duration // from SIGKILL until every sentinel named the promoted replica
	followed   time.Duration // from SIGKILL until every replica's Store could lock again
	gets       int64         // Get calls answered during the switch
	slowestGet time.Duration
	duplicates int64 // fetches past one per key in the renewal round after it
	renewal    time.Duration
	storeFails int64
}

func (r sentinelSwitch) log(t *testing.T, keys int) {
	t.Logf("SIGKILL of the Sentinel master: the sentinels announced the replica after %v, every replica's Store locked again after %v; "+
		"%d Gets meanwhile, none failed, slowest %v; renewal round of %d replicas x %d keys: %d duplicate fetches, %v; %d Store calls failed in all",
		r.announced.Round(time.Millisecond), r.followed.Round(time.Millisecond), r.gets, r.slowestGet.Round(time.Microsecond),
		clusterReplicas, keys, r.duplicates, r.renewal.Round(time.Millisecond), r.storeFails)
}

// Four replicas on Sentinel fetch each key once between them; when the
// master dies, Get is served from memory until the sentinels promote the
// replica and every replica's Store works again; a renewal round of every
// key on every replica at once then fetches each key once: no duplicate.
func TestSentinelMasterKilledCostsNoGetAndNoDuplicateFetch(t *testing.T) {
	sentinel := redistest.StartSentinel(t)
	f := newFleet(t, smallFleetKeyCount(), sentinel.NewClient)
	toks := f.getAll(t)
	f.requireFetchesPerKey(t, 1)
	sentinel.WaitReplicated() // the replica has every token: the kill loses none

	var res sentinelSwitch
	callers := startCallers(t, f, toks)
	old := sentinel.Master()
	killed := time.Now()
	sentinel.Kill(old)
	sentinel.WaitHealthy()
	res.announced = time.Since(killed)
	require.NotEqual(t, old, sentinel.Master())
	for r, st := range f.stores {
		d := untilDone(killed, func(ctx context.Context) error {
			unlock, err := st.Lock(ctx, "probe-"+strconv.Itoa(r), time.Second)
			if err != nil {
				return err
			}
			return unlock(ctx)
		})
		require.Positive(t, d, "replica %d's Store did not work again within 90 s", r)
		res.followed = max(res.followed, d)
	}
	res.gets, res.slowestGet = callers.stop(t)
	assert.Equal(t, int64(len(f.keys)), f.totalFetches(), "fetches during the switch")

	began := time.Now()
	renewed := f.each(t, func(ctx context.Context, reg *wxtoken.Registry, key string) (string, error) {
		return reg.Invalidate(ctx, key, toks[indexOf(f.keys, key)])
	})
	res.renewal = time.Since(began)
	res.duplicates = f.totalFetches() - 2*int64(len(f.keys))
	res.storeFails = f.storeFailures.Load()
	res.log(t, len(f.keys))
	assert.Zero(t, res.duplicates, "duplicate fetches")
	fresh := f.agreed(t, renewed)
	for i := range fresh {
		require.NotEqual(t, fingerprint(toks[i]), fingerprint(fresh[i]), "key %s kept its rejected token", f.keys[i])
	}
	assert.Zero(t, f.srv.Rejections()[40001])

	// The promoted master's keys name the accounts, never a secret or token.
	keys, err := sentinel.NewClient(t).Keys(t.Context(), "*").Result()
	require.NoError(t, err)
	assert.Len(t, keys, len(f.keys), "a token per account; the probes unlocked")
	f.requireNoSecretIn(t, strings.Join(keys, "\n"), fresh)
}

// With the change feed on, a renewal saved by replica A reaches B to D
// within a second, before and after the master dies: each feed subscribes
// again on the promoted replica and resynchronizes, and B to D fetch nothing.
func TestSentinelFeedCarriesRenewalAcrossFailover(t *testing.T) {
	sentinel := redistest.StartSentinel(t)
	f := newFleet(t, smallFleetKeyCount(), sentinel.NewClient, redisstore.WithChangeFeed())
	toks := f.getAll(t)
	f.requireFetchesPerKey(t, 1)
	resyncs := watchResyncs(t, f.stores)

	key := f.keys[0]
	toks[0] = renewOnA(t, f, key, toks[0])
	sentinel.WaitReplicated()

	killed := time.Now()
	sentinel.Kill(sentinel.Master())
	sentinel.WaitHealthy()
	announced := time.Since(killed)
	for r, n := range resyncs {
		require.Eventually(t, func() bool { return n.Load() > 0 }, 30*time.Second, 5*time.Millisecond,
			"replica %d's feed did not resubscribe after the failover", r)
	}
	t.Logf("Sentinel failover: announced after %v, every feed resubscribed and resynchronized after %v",
		announced.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))

	renewOnA(t, f, key, toks[0])
	renewOnA(t, f, f.keys[1], toks[1])
	assert.Equal(t, int64(len(f.keys)+3), f.totalFetches(), "A's three renewals, no fetch by B to D")
}

// watchResyncs adds a watcher to each Store, beside its Registry's, and
// counts the Resync notices each gets.
func watchResyncs(t *testing.T, stores []*redisstore.Store) []*atomic.Int64 {
	t.Helper()
	counts := make([]*atomic.Int64, len(stores))
	for i, st := range stores {
		n := &atomic.Int64{}
		counts[i] = n
		require.NoError(t, st.Watch(t.Context(), func(ch wxtoken.StoreChange) {
			if ch.Resync {
				n.Add(1)
			}
		}))
	}
	return counts
}

// renewOnA reports bad rejected on the first replica of f, which fetches a
// new token, and requires every other replica to serve it within a second
// without fetching. It returns the new token.
func renewOnA(t *testing.T, f *fleet, key, bad string) string {
	t.Helper()
	ctx := t.Context()
	before := replicaFetches(t, f, key)
	next, err := f.regs[0].Invalidate(ctx, key, bad)
	require.NoError(t, err)
	require.NotEqual(t, fingerprint(bad), fingerprint(next))
	renewed := time.Now()
	for r, reg := range f.regs[1:] {
		require.Eventually(t, func() bool {
			tok, err := reg.Get(ctx, key)
			return err == nil && tok == next
		}, time.Second, time.Millisecond, "replica %d did not serve A's renewal of %s within 1 s", r+1, key)
		t.Logf("replica %c served A's renewal of %s %v after it", 'B'+r, key, time.Since(renewed).Round(time.Microsecond))
	}
	after := replicaFetches(t, f, key)
	assert.Equal(t, before[0]+1, after[0], "A fetched once")
	assert.Equal(t, before[1:], after[1:], "fetches of B to D")
	return next
}

// replicaFetches returns how many times each replica fetched key.
func replicaFetches(t *testing.T, f *fleet, key string) []int64 {
	t.Helper()
	out := make([]int64, len(f.regs))
	for r, reg := range f.regs {
		c, err := reg.Client(t.Context(), key)
		require.NoError(t, err)
		out[r] = c.Stats().Fetches
	}
	return out
}
