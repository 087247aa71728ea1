package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
)

// failover is what killing a master cost a fleet.
type failover struct {
	promoted   time.Duration // from SIGKILL until every node saw the replica serve the slots
	served     time.Duration // from SIGKILL until a fresh client wrote to those slots
	followed   time.Duration // from SIGKILL until every replica's Store read those slots
	gets       int64         // Get calls answered during the failover
	slowestGet time.Duration
	duplicates int64 // fetches past one per key in the renewal round after it
	renewal    time.Duration
	storeFails int64 // failed Store calls, failover and renewal round
}

// clientMaker returns how a test builds the go-redis clients of cluster.
type clientMaker func(cluster *redistest.Cluster) func(testing.TB) *redis.ClusterClient

// documentedClient is the client the README shows: NewClusterClient with
// the options of the README, which ClientOptions returns.
func documentedClient(cluster *redistest.Cluster) func(testing.TB) *redis.ClusterClient {
	return func(t testing.TB) *redis.ClusterClient {
		rdb := redisstore.NewClusterClient(cluster.ClientOptions())
		t.Cleanup(func() { _ = rdb.Close() })
		return rdb
	}
}

// killMaster warms a fleet built with newClient, kills one master with
// SIGKILL while callers keep calling Get, waits until every replica reads the
// killed master's slots again, then reports every key's token rejected on
// every replica at once, and counts the fetches past one per key. It fails t
// if a Get failed or answered another token, or a renewal failed.
func killMaster(t *testing.T, newClient clientMaker) failover {
	cluster := redistest.StartCluster(t)
	f := newFleet(t, clusterKeyCount(), newClient(cluster))
	toks := f.getAll(t)
	f.requireFetchesPerKey(t, 1)
	cluster.WaitReplicated() // the replica has every token: the kill loses none

	probe := documentedClient(cluster)(t)
	victim := cluster.Masters()[0]
	probeKey := keyOn(t, probe, victim)
	require.NoError(t, probe.Set(t.Context(), probeKey, "before", 0).Err())
	victimKey := ""
	for _, k := range f.keys {
		if victim.Has(slotOf(t, probe, clusterPrefix+"{"+k+"}")) {
			victimKey = k
			break
		}
	}
	require.NotEmpty(t, victimKey)

	var res failover
	callers := startCallers(t, f, toks)
	killed := time.Now()
	cluster.Kill(victim.Master)
	served := make(chan time.Duration, 1)
	go func() {
		served <- untilDone(killed, func(ctx context.Context) error { return probe.Set(ctx, probeKey, "after", 0).Err() })
	}()
	cluster.WaitHealthy()
	res.promoted = time.Since(killed)
	for _, st := range f.stores {
		d := untilDone(killed, func(ctx context.Context) error {
			_, err := st.Load(ctx, victimKey)
			return err
		})
		require.Positive(t, d, "a replica did not read the killed master's slots within 90 s")
		res.followed = max(res.followed, d)
	}
	res.served = <-served
	require.Positive(t, res.served, "no write reached the killed master's slots within 90 s")
	res.gets, res.slowestGet = callers.stop(t)
	assert.Equal(t, int64(len(f.keys)), f.totalFetches(), "fetches during the failover")

	began := time.Now()
	renewed := f.each(t, func(ctx context.Context, reg *wxtoken.Registry, key string) (string, error) {
		return reg.Invalidate(ctx, key, toks[indexOf(f.keys, key)])
	})
	res.renewal = time.Since(began)
	res.duplicates = f.totalFetches() - 2*int64(len(f.keys))
	res.storeFails = f.storeFailures.Load()
	res.log(t)
	fresh := f.agreed(t, renewed)
	for i := range fresh {
		require.NotEqual(t, fingerprint(toks[i]), fingerprint(fresh[i]), "key %s kept its rejected token", f.keys[i])
	}
	return res
}

// keyOn returns a key that sh serves.
func keyOn(t *testing.T, rdb *redis.ClusterClient, sh redistest.Shard) string {
	t.Helper()
	for i := range 10_000 {
		k := "probe:" + strconv.Itoa(i)
		if sh.Has(slotOf(t, rdb, k)) {
			return k
		}
	}
	t.Fatalf("no key in the slots of %s", sh.Master)
	return ""
}

// untilDone calls fn until it succeeds, and returns how long after since
// that was, or 0 if it did not within 90 s.
func untilDone(since time.Time, fn func(context.Context) error) time.Duration {
	for time.Since(since) < 90*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := fn(ctx)
		cancel()
		if err == nil {
			return time.Since(since)
		}
		// Polling other processes, which tell nobody when they are ready.
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}

func indexOf(keys []string, key string) int {
	for i, k := range keys {
		if k == key {
			return i
		}
	}
	return -1
}

// callers call Get on every replica in a loop until stopped.
type callers struct {
	quit    chan struct{}
	wg      sync.WaitGroup
	gets    atomic.Int64
	slowest atomic.Int64 // nanoseconds
	mu      sync.Mutex
	errs    []error
}

func startCallers(t *testing.T, f *fleet, toks []string) *callers {
	c := &callers{quit: make(chan struct{})}
	for r, reg := range f.regs {
		for w := range 2 {
			c.wg.Go(func() {
				// Paced, so that the callers leave the CPU to the cluster.
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for i := w; ; i = (i + 7) % len(f.keys) {
					select {
					case <-c.quit:
						return
					case <-tick.C:
					}
					began := time.Now()
					tok, err := reg.Get(t.Context(), f.keys[i])
					if d := int64(time.Since(began)); d > c.slowest.Load() {
						c.slowest.Store(d) // a race between callers only loses a near-maximum
					}
					c.gets.Add(1)
					if err == nil && tok != toks[i] {
						err = fmt.Errorf("token %s, not the one fetched", fingerprint(tok))
					}
					if err != nil {
						c.mu.Lock()
						c.errs = append(c.errs, fmt.Errorf("replica %d, %s: %w", r, f.keys[i], err))
						c.mu.Unlock()
					}
				}
			})
		}
	}
	return c
}

// stop ends the callers and fails t if any Get failed.
func (c *callers) stop(t *testing.T) (gets int64, slowest time.Duration) {
	t.Helper()
	close(c.quit)
	c.wg.Wait()
	require.NoError(t, errors.Join(c.errs...))
	return c.gets.Load(), time.Duration(c.slowest.Load())
}

func (r failover) log(t *testing.T) {
	t.Logf("SIGKILL of a master: every node saw its replica serve after %v, a new client wrote there after %v, every replica's Store read there after %v; "+
		"%d Gets meanwhile, none failed, slowest %v; renewal round of %d replicas x %d keys: %d duplicate fetches, %v; %d Store calls failed in all",
		r.promoted.Round(time.Millisecond), r.served.Round(time.Millisecond), r.followed.Round(time.Millisecond),
		r.gets, r.slowestGet.Round(time.Microsecond), clusterReplicas, clusterKeyCount(), r.duplicates,
		r.renewal.Round(time.Millisecond), r.storeFails)
}

// With the documented client, a master's death costs no Get and no
// duplicate fetch: callers are served from memory meanwhile, and once the
// replica took over, a renewal of every key on every replica at once fetches
// each key once.
func TestClusterMasterKilledCostsNoGetAndNoDuplicateFetch(t *testing.T) {
	res := killMaster(t, documentedClient)
	assert.Zero(t, res.duplicates, "duplicate fetches")
	// The replicas' clients follow the promotion within a slot-map reload.
	assert.Less(t, res.followed-res.promoted, 5*time.Second, "replicas lagged the promotion")
}

// What the documented settings save, measured on demand (it takes a minute
// or more): WXTOKEN_CLUSTER_COMPARE=1 go test -race -run TestClusterFailoverCompare -v ./redisstore/
func TestClusterFailoverCompare(t *testing.T) {
	if os.Getenv("WXTOKEN_CLUSTER_COMPARE") == "" {
		t.Skip("set WXTOKEN_CLUSTER_COMPARE=1 to measure go-redis's defaults against the documented settings")
	}
	t.Run("options without NewClusterClient's reload", func(t *testing.T) {
		killMaster(t, func(c *redistest.Cluster) func(testing.TB) *redis.ClusterClient { return c.NewClient })
	})
	t.Run("go-redis defaults", func(t *testing.T) {
		killMaster(t, func(c *redistest.Cluster) func(testing.TB) *redis.ClusterClient {
			return func(t testing.TB) *redis.ClusterClient {
				rdb := redis.NewClusterClient(&redis.ClusterOptions{
					Addrs:                    c.Addrs(),
					MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
				})
				t.Cleanup(func() { _ = rdb.Close() })
				return rdb
			}
		})
	})
}
