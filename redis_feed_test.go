package wxtoken_test

// Stores that scale, on a real Redis: what a Registry of many keys costs
// while idle and at a cold start, how fast a renewal reaches the other
// replicas through the change feed (also across a Redis restart), and how
// many round trips a renewal takes.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
	"github.com/wxtoken/wxtoken/wxtest"
)

// redisKeys is how many keys the Redis scale tests hold: 100,000 in the full
// run, 10,000 under -short.
func redisKeys() int {
	if testing.Short() {
		return 10_000
	}
	return 100_000
}

func redisKey(i int) string { return "wx" + strconv.Itoa(1_000_000+i) }

// roundTrips counts what a go-redis client sends: round trips (a pipeline
// is one) and commands (each of a pipeline's). The handshake of a new
// connection (HELLO, then CLIENT SETINFO in a pipeline) is counted apart: go-redis redials a pooled connection
// that idled past its ConnMaxIdleTime, which fake hours always exceed.
type roundTrips struct{ rounds, cmds, handshakes atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hello" {
			c.handshakes.Add(1)
		} else {
			c.rounds.Add(1)
			c.cmds.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "client" {
			c.handshakes.Add(1) // CLIENT SETINFO after HELLO
		} else {
			c.rounds.Add(1)
			c.cmds.Add(int64(len(cmds)))
		}
		return next(ctx, cmds)
	}
}

// countedClient returns a client of rs whose traffic rt counts.
func countedClient(t *testing.T, rs *redistest.Server) (*redis.Client, *roundTrips) {
	rdb := rs.NewClient(t)
	rt := &roundTrips{}
	rdb.AddHook(rt)
	return rdb, rt
}

// populate writes a valid token record for each of the first n keys under
// prefix, created now, with pipelines of 1,000 SETs.
func populate(t *testing.T, rdb *redis.Client, prefix string, n int) []string {
	t.Helper()
	keys := make([]string, n)
	now := time.Now()
	for lo := 0; lo < n; lo += 1000 {
		_, err := rdb.Pipelined(t.Context(), func(p redis.Pipeliner) error {
			for i := lo; i < min(lo+1000, n); i++ {
				keys[i] = redisKey(i)
				raw, err := json.Marshal(wxtoken.Token{AccessToken: "stored-" + keys[i], ExpiresIn: 7200, CreateTime: now})
				if err != nil {
					return err
				}
				p.Set(t.Context(), prefix+"{"+keys[i]+"}", raw, 0)
			}
			return nil
		})
		require.NoError(t, err)
	}
	return keys
}

// countingSource hands out tokens named after the key, counting fetches.
type countingSource struct {
	key     string
	fetches *atomic.Int64
}

func (s *countingSource) Fetch(ctx context.Context, req wxtoken.FetchRequest) (wxtoken.Token, error) {
	n := s.fetches.Add(1)
	return wxtoken.Token{AccessToken: fmt.Sprintf("fetched-%s-%d", s.key, n), ExpiresIn: 7200, CreateTime: time.Now()}, nil
}

func countingRegistry(t *testing.T, store wxtoken.Store, fetches *atomic.Int64, opts ...wxtoken.Option) *wxtoken.Registry {
	t.Helper()
	r, err := wxtoken.NewRegistry(func(ctx context.Context, key string) (wxtoken.Source, error) {
		return &countingSource{key: key, fetches: fetches}, nil
	}, append([]wxtoken.Option{wxtoken.WithStore(store), wxtoken.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	require.NoError(t, err)
	return r
}

// commandCalls sums the calls INFO commandstats counts, commands run inside
// scripts included, leaving out INFO itself.
func commandCalls(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(t.Context(), "commandstats").Result()
	require.NoError(t, err)
	var total int64
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(line, ":calls=")
		if !ok || strings.HasPrefix(name, "cmdstat_info") {
			continue
		}
		n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		total += n
	}
	return total
}

// A Registry of 100,000 keys on Redis, idle for ten minutes of fake time,
// re-reads every key each 4 minutes through LoadMany: about 60 commands a
// minute (one script call per wheel tick), no fetch. (The change feed, which
// reads nothing at all while idle, cannot run in a synctest bubble: see
// TestRedisFeedIdleRegistryReadsNothing.)
func TestRedisIdleRegistryCommandsPerMinute(t *testing.T) {
	n := redisKeys()
	rs := redistest.Start(t)
	synctest.Test(t, func(t *testing.T) {
		rdb, rt := countedClient(t, rs)
		admin := rs.NewClient(t)
		keys := populate(t, admin, redisstore.DefaultPrefix, n)
		var fetches atomic.Int64
		r := countingRegistry(t, redisstore.New(rdb), &fetches)
		defer r.Close()
		require.NoError(t, r.Preload(t.Context(), keys))
		require.Equal(t, n, r.Len())
		synctest.Wait()

		rounds, cmds, calls := rt.rounds.Load(), rt.cmds.Load(), commandCalls(t, admin)
		worst := int64(0)
		for range 10 {
			before := rt.cmds.Load()
			time.Sleep(time.Minute)
			synctest.Wait()
			worst = max(worst, rt.cmds.Load()-before)
		}
		perMinute := float64(rt.cmds.Load()-cmds) / 10
		t.Logf("%d keys on Redis, 10 idle minutes: %.0f commands a minute sent (%d at most), %.0f round trips a minute, "+
			"%.0f commands a minute by INFO commandstats (the reads inside the scripts included); %d fetches",
			n, perMinute, worst, float64(rt.rounds.Load()-rounds)/10,
			float64(commandCalls(t, admin)-calls)/10, fetches.Load())
		assert.LessOrEqual(t, worst, int64(1000), "commands in an idle minute")
		assert.Zero(t, fetches.Load(), "no fetch")
	})
}

// With the change feed on, an idle Registry sends Redis only the safety
// re-read: each key once every 10 store-sync intervals, a wheel slot at a
// time (24 of the 240 slots a round), one LoadMany each. With a store sync of
// a second that is 72 LoadMany calls in 3 s at most (without the feed: 720).
// At the default 4 min it is 6 a minute for up to 120,000 keys (a slot holds
// 500 at most then), far under 1,000.
func TestRedisFeedIdleRegistrySafetyReread(t *testing.T) {
	t.Parallel()
	const (
		n             = 5000
		slots, rounds = 240, 10 // the wheel's slots; intervals between safety re-reads of a key
		idleFor       = 3       // store-sync intervals
	)
	rs := redistest.Start(t)
	rdb, rt := countedClient(t, rs)
	keys := populate(t, rs.NewClient(t), redisstore.DefaultPrefix, n)
	var fetches atomic.Int64
	r := countingRegistry(t, redisstore.New(rdb, redisstore.WithChangeFeed()), &fetches,
		wxtoken.WithStoreSync(time.Second))
	defer r.Close()
	require.NoError(t, r.Preload(t.Context(), keys))
	// The feed is up once Redis counts its subscription (give or take the
	// moment between the confirmation and the switch, a wheel tick at most).
	admin := rs.NewClient(t)
	require.Eventually(t, func() bool {
		subs, err := admin.PubSubNumSub(t.Context(), redisstore.DefaultPrefix+"changed").Result()
		return err == nil && subs[redisstore.DefaultPrefix+"changed"] == 1
	}, 10*time.Second, 5*time.Millisecond)
	before := rt.cmds.Load()
	idle := time.NewTimer(idleFor * time.Second)
	<-idle.C
	sent := rt.cmds.Load() - before
	const most = idleFor*slots/rounds + 2 // the safety ticks, and a tick's slack at either end
	perMinute := float64(slots/rounds) / 4 * float64((100_000/slots+499)/500)
	t.Logf("%d keys, feed up, %d s idle with a 1 s store sync: %d commands sent (at most %d; periodic reads would be %d); "+
		"at 100,000 keys and the default 4 min: %.0f LoadMany calls a minute", n, idleFor, sent, most, idleFor*slots, perMinute)
	assert.LessOrEqual(t, sent, int64(most), "only the safety re-read while idle")
	assert.LessOrEqual(t, perMinute, 1000.0)
	assert.Zero(t, fetches.Load())
}

// A cold start of 100,000 keys from a warm Redis: Preload reads them with
// one round trip per 500 keys; afterwards every Get is served from memory.
func TestRedisColdStartPreload(t *testing.T) {
	n := redisKeys()
	rs := redistest.Start(t)
	rdb, rt := countedClient(t, rs)
	keys := populate(t, rs.NewClient(t), redisstore.DefaultPrefix, n)
	var fetches atomic.Int64
	// No store sync: the wheel's reads, which run in real time here, are
	// not the cold start's.
	r := countingRegistry(t, redisstore.New(rdb), &fetches, wxtoken.WithStoreSync(0))
	defer r.Close()

	start := time.Now()
	require.NoError(t, r.Preload(t.Context(), keys))
	took := time.Since(start)
	rounds := rt.rounds.Load()
	for _, k := range keys {
		tok, err := r.Get(t.Context(), k)
		require.NoError(t, err)
		require.Equal(t, "stored-"+k, tok)
	}
	t.Logf("cold start of %d keys from a warm Redis: %d round trips, %v (%v a key); the Gets after it: %d round trips",
		n, rounds, took.Round(time.Millisecond), (took / time.Duration(n)).Round(time.Nanosecond), rt.rounds.Load()-rounds)
	assert.LessOrEqual(t, rounds, int64(1000), "round trips of the cold start")
	assert.Equal(t, rounds, rt.rounds.Load(), "the Gets are served from memory")
	assert.Zero(t, fetches.Load())
}

// feedReplica is a lone Client on its own go-redis client with the feed on.
func feedReplica(t *testing.T, rs *redistest.Server, srv *wxtest.Server, opts ...wxtoken.Option) *wxtoken.Client {
	return newReplica(t, srv, redisstore.New(rs.NewClient(t), redisstore.WithChangeFeed()), opts...)
}

// feedRegistry is a Registry of one Official Account on its own go-redis
// client with the feed on.
func feedRegistry(t *testing.T, rs *redistest.Server, srv *wxtest.Server) *wxtoken.Registry {
	r, err := wxtoken.NewRegistry(func(ctx context.Context, key string) (wxtoken.Source, error) {
		return wxtoken.OfficialAccount(key, secret, false)
	}, wxtoken.WithStore(redisstore.New(rs.NewClient(t), redisstore.WithChangeFeed())),
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithHTTPClient(srv.Client()),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Replica A renews; replicas B to D (two lone Clients and a Registry, each on
// its own connection pool) serve A's token within a second through the
// change feed, without fetching; with the default store sync of a minute
// only the feed can do that. After a Redis restart the feeds resubscribe and
// a second renewal reaches them the same way.
func TestRedisFeedCarriesRenewalToReplicas(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	srv := wxtest.NewHandler()
	a := feedReplica(t, rs, srv, wxtoken.WithRejectGuard(0))
	b, c := feedReplica(t, rs, srv), feedReplica(t, rs, srv)
	d := feedRegistry(t, rs, srv)
	ctx := t.Context()
	serve := map[string]func() (string, error){
		"B": func() (string, error) { return b.Get(ctx) },
		"C": func() (string, error) { return c.Get(ctx) },
		"D": func() (string, error) { return d.Get(ctx, appID) },
	}
	t1, err := a.Get(ctx)
	require.NoError(t, err)
	for name, get := range serve {
		tok, err := get()
		require.NoError(t, err)
		require.Equal(t, t1, tok, "replica %s", name)
	}

	renewAndWait := func(bad string) string {
		t.Helper()
		next, err := a.Invalidate(ctx, bad)
		require.NoError(t, err)
		require.NotEqual(t, bad, next)
		renewed := time.Now()
		for name, get := range serve {
			require.Eventually(t, func() bool {
				tok, err := get()
				return err == nil && tok == next
			}, time.Second, time.Millisecond, "replica %s did not serve A's renewal within 1 s", name)
			t.Logf("replica %s served A's renewal %v after it", name, time.Since(renewed).Round(time.Microsecond))
		}
		return next
	}
	t2 := renewAndWait(t1)

	rs.Stop()
	rs.Restart()
	// The feeds resynchronize and put the cached token back into the empty
	// Redis, as the periodic sync did.
	probe := redisstore.New(rs.NewClient(t))
	require.Eventually(t, func() bool {
		tok, err := probe.Load(ctx, appID)
		return err == nil && tok.AccessToken == t2
	}, 10*time.Second, 5*time.Millisecond, "the replicas restore the token after the restart")
	renewAndWait(t2)

	assert.Zero(t, b.Stats().Fetches+c.Stats().Fetches, "B and C fetch nothing")
	assert.Equal(t, 3, srv.TokenCalls(), "A's three fetches, nobody else's")
}

// A background renewal on redisstore takes two round trips: LockLoad (lock
// and read in one script) and SaveUnlock (save, announce and release in
// one). In fake time: the renewal comes at its scheduled moment.
func TestRedisRenewalTwoRoundTrips(t *testing.T) {
	rs := redistest.Start(t)
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		rdb, rt := countedClient(t, rs)
		cl := newReplica(t, srv, redisstore.New(rdb), wxtoken.WithStoreSync(0))
		defer cl.Close()
		t1, err := cl.Get(t.Context())
		require.NoError(t, err)
		synctest.Wait()
		cold, dials := rt.rounds.Load(), rt.handshakes.Load()

		time.Sleep(6900 * time.Second) // the renewal is due within [6870 s, 6900 s]
		synctest.Wait()
		t2, err := cl.Get(t.Context())
		require.NoError(t, err)
		require.NotEqual(t, t1, t2, "renewed")
		renewal := rt.rounds.Load() - cold
		t.Logf("redisstore: a cold Get took %d round trips (scripts loaded on first use included), a background renewal %d "+
			"(and %d for connection handshakes: the pooled connection had idled past go-redis's ConnMaxIdleTime)",
			cold, renewal, rt.handshakes.Load()-dials)
		assert.Equal(t, int64(2), renewal, "round trips of a renewal")
		assert.Equal(t, 2, srv.TokenCalls())
	})
}
