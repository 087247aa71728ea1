package redisstore_test

// A fleet of replicas, each a wxtoken.Registry on its own go-redis
// ClusterClient and Store, sharing one real Redis Cluster and one wxtest fake
// of WeChat with many accounts: what a platform serving many Official
// Accounts from several processes runs.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
	"github.com/wxtoken/wxtoken/wxtest"
)

const (
	clusterReplicas = 4
	clusterPrefix   = "fleet:"
	// workersPerReplica is how many goroutines of each replica call at once.
	workersPerReplica = 8
)

// clusterKeyCount is how many accounts the cluster tests hold: 1,000, or 200
// under -short.
func clusterKeyCount() int {
	if testing.Short() {
		return 200
	}
	return 1000
}

func clusterAppID(i int) string  { return "wx" + strconv.Itoa(10_000_000+i) }
func clusterSecret(i int) string { return "secret-of-account-" + strconv.Itoa(i) + "-keep-out" }

// fleet is clusterReplicas Registries on one Redis: a Cluster, or a master
// managed by Sentinel.
type fleet struct {
	srv     *wxtest.Server
	keys    []string
	secrets []string
	regs    []*wxtoken.Registry
	stores  []*redisstore.Store
	fetches map[string]*atomic.Int64 // per key, over the whole fleet; read-only map
	// storeFailures counts Store calls that failed, over the whole fleet.
	storeFailures atomic.Int64
}

// newFleet builds the fleet, each replica's client made by newClient and its
// Store by redisstore.New with the fleet's prefix and storeOpts, and closes
// it when t ends.
func newFleet[C redis.UniversalClient](t *testing.T, keys int, newClient func(testing.TB) C, storeOpts ...redisstore.Option) *fleet {
	t.Helper()
	var appOpts []wxtest.Option
	f := &fleet{fetches: map[string]*atomic.Int64{}}
	secretOf := map[string]string{}
	for i := range keys {
		id, secret := clusterAppID(i), clusterSecret(i)
		appOpts = append(appOpts, wxtest.WithApp(id, secret))
		f.keys = append(f.keys, id)
		f.secrets = append(f.secrets, secret)
		f.fetches[id] = &atomic.Int64{}
		secretOf[id] = secret
	}
	f.srv = wxtest.NewHandler(appOpts...)
	lookup := func(_ context.Context, key string) (wxtoken.Source, error) {
		secret, ok := secretOf[key]
		if !ok {
			return nil, fmt.Errorf("no account %q", key)
		}
		return wxtoken.OfficialAccount(key, secret, false)
	}
	for range clusterReplicas {
		rdb := newClient(t)
		st := redisstore.New(rdb, append([]redisstore.Option{redisstore.WithPrefix(clusterPrefix)}, storeOpts...)...)
		reg, err := wxtoken.NewRegistry(lookup,
			wxtoken.WithStore(st),
			wxtoken.WithBaseURL(f.srv.URL()),
			wxtoken.WithHTTPClient(f.srv.Client()),
			wxtoken.WithLogger(slog.New(slog.DiscardHandler)),
			wxtoken.WithObserver(wxtoken.ObserverFunc(f.observe)),
			// The renewal rounds below report tokens a few seconds old as
			// rejected, which the reject guard would rightly slow down.
			wxtoken.WithRejectGuard(0),
		)
		require.NoError(t, err)
		t.Cleanup(func() { _ = reg.Close() })
		f.regs = append(f.regs, reg)
		f.stores = append(f.stores, st)
	}
	return f
}

func (f *fleet) observe(e wxtoken.Event) {
	switch e.Kind {
	case wxtoken.EventFetch:
		f.fetches[e.Key].Add(1)
	case wxtoken.EventStoreLoad, wxtoken.EventStoreSave, wxtoken.EventLockWait:
		if e.Outcome == wxtoken.OutcomeRetryable || e.Outcome == wxtoken.OutcomeCanceled {
			f.storeFailures.Add(1)
		}
	}
}

// totalFetches returns the fetches of the whole fleet.
func (f *fleet) totalFetches() int64 {
	var n int64
	for _, c := range f.fetches {
		n += c.Load()
	}
	return n
}

// requireFetchesPerKey fails t unless every key was fetched exactly times
// times by the whole fleet.
func (f *fleet) requireFetchesPerKey(t *testing.T, times int64) {
	t.Helper()
	var wrong []string
	for _, k := range f.keys {
		if n := f.fetches[k].Load(); n != times {
			wrong = append(wrong, fmt.Sprintf("%s: %d", k, n))
		}
	}
	require.Empty(t, wrong, "keys not fetched exactly %d times", times)
	require.Equal(t, int64(times)*int64(len(f.keys)), f.totalFetches())
}

// each runs fn(replica, key) for every replica and key, workersPerReplica
// goroutines per replica, all replicas walking the keys in the same order so
// that they contend for every key at once, and returns the results indexed
// [replica][key].
func (f *fleet) each(t *testing.T, fn func(ctx context.Context, reg *wxtoken.Registry, key string) (string, error)) [][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	got := make([][]string, len(f.regs))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := make(chan struct{})
	for r, reg := range f.regs {
		got[r] = make([]string, len(f.keys))
		var next atomic.Int64
		for range workersPerReplica {
			wg.Go(func() {
				<-start
				for i := int(next.Add(1) - 1); i < len(f.keys); i = int(next.Add(1) - 1) {
					tok, err := fn(ctx, reg, f.keys[i])
					got[r][i] = tok
					if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("replica %d, %s: %w", r, f.keys[i], err))
						mu.Unlock()
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	return got
}

// getAll calls Get for every key on every replica and returns the one token
// each key has, failing t if replicas disagree.
func (f *fleet) getAll(t *testing.T) []string {
	t.Helper()
	got := f.each(t, func(ctx context.Context, reg *wxtoken.Registry, key string) (string, error) {
		return reg.Get(ctx, key)
	})
	return f.agreed(t, got)
}

// agreed returns the token of each key, failing t unless every replica holds
// the same one, and WeChat takes it.
func (f *fleet) agreed(t *testing.T, got [][]string) []string {
	t.Helper()
	toks := got[0]
	for r := range got {
		for i, tok := range got[r] {
			// Fingerprints, so that a failure prints no token.
			require.Equal(t, fingerprint(toks[i]), fingerprint(tok), "replica %d holds another token of %s", r, f.keys[i])
		}
	}
	for i, tok := range toks {
		require.Equal(t, 0, f.srv.CheckToken(tok), "WeChat rejects the token of %s", f.keys[i])
	}
	return toks
}

// fingerprint names a token without revealing it.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:4])
}

// requireNoSecretIn fails t if text holds any account's secret or any of toks.
func (f *fleet) requireNoSecretIn(t *testing.T, text string, toks []string) {
	t.Helper()
	for _, s := range f.secrets {
		require.NotContains(t, text, s)
	}
	for _, tok := range toks {
		require.False(t, strings.Contains(text, tok), "a full token in %q", text)
	}
}

// slotOf asks the cluster for the hash slot of key.
func slotOf(t *testing.T, rdb *redis.ClusterClient, key string) int {
	t.Helper()
	slot, err := rdb.ClusterKeySlot(t.Context(), key).Result()
	require.NoError(t, err)
	return int(slot)
}

// shardOf returns the shard serving slot.
func shardOf(t *testing.T, shards []redistest.Shard, slot int) redistest.Shard {
	t.Helper()
	for _, sh := range shards {
		if sh.Has(slot) {
			return sh
		}
	}
	t.Fatalf("no master serves slot %d", slot)
	return redistest.Shard{}
}
