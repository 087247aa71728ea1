package benchmarks_test

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/benchmarks/internal/figures"
	"github.com/wxtoken/wxtoken/benchmarks/internal/peers"
	"github.com/wxtoken/wxtoken/benchmarks/internal/upstream"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startEnv serves a fresh fake upstream for tb and, when redis is true, a
// private redis-server; it skips tb when redis-server is not installed.
func startEnv(tb testing.TB, withRedis bool) (*upstream.Server, peers.Env) {
	tb.Helper()
	up := upstream.Start()
	tb.Cleanup(up.Close)
	env := peers.Env{BaseURL: up.URL()}
	if withRedis {
		rs, err := redistest.Launch(tb.TempDir())
		if errors.Is(err, redistest.ErrNotInstalled) {
			tb.Skipf("skipping the Redis figure: %v", err)
		}
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(rs.Stop)
		env.RedisAddr = rs.Addr()
	}
	return up, env
}

// The hot-path getters below are called directly in each loop, not through
// an interface or a func value, so that an indirect call (about a
// nanosecond) is not charged to the peers whose Get costs only a few.

func hotWxtoken(b *testing.B, withRedis bool) *wxtoken.Client {
	_, env := startEnv(b, withRedis)
	var store wxtoken.Store = wxtoken.NewMemoryStore()
	if withRedis {
		rdb := redis.NewClient(&redis.Options{Addr: env.RedisAddr})
		b.Cleanup(func() { _ = rdb.Close() })
		store = redisstore.New(rdb)
	}
	c, hc, err := peers.NewWxtoken(env, store)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(hc.CloseIdleConnections)
	b.Cleanup(func() { _ = c.Close() })
	if _, err := c.Get(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

func hotSilenceper(b *testing.B, withRedis bool) *officialaccount.OfficialAccount {
	_, env := startEnv(b, withRedis)
	var c cache.Cache = cache.NewMemory()
	if withRedis {
		r, rdb, err := peers.NewSilenceperRedis(env)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = rdb.Close() })
		c = r
	}
	oa, hc := peers.NewSilenceper(env, c)
	b.Cleanup(hc.CloseIdleConnections)
	if _, err := oa.GetAccessTokenContext(context.Background()); err != nil {
		b.Fatal(err)
	}
	return oa
}

func hotOAuth2(b *testing.B) oauth2.TokenSource {
	_, env := startEnv(b, false)
	ts, hc := peers.NewOAuth2(env)
	b.Cleanup(hc.CloseIdleConnections)
	if _, err := ts.Token(); err != nil {
		b.Fatal(err)
	}
	return ts
}

// BenchmarkGet measures one Get of a cached, fresh token by one goroutine.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	for _, withRedis := range []bool{false, true} {
		b.Run("wxtoken/"+storeName(withRedis), func(b *testing.B) {
			c := hotWxtoken(b, withRedis)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Get(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, withRedis := range []bool{false, true} {
		b.Run("silenceper/"+storeName(withRedis), func(b *testing.B) {
			oa := hotSilenceper(b, withRedis)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := oa.GetAccessTokenContext(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("oauth2/reuse", func(b *testing.B) {
		ts := hotOAuth2(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ts.Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetParallel measures Get of a cached, fresh token by GOMAXPROCS
// goroutines at once.
func BenchmarkGetParallel(b *testing.B) {
	ctx := context.Background()
	for _, withRedis := range []bool{false, true} {
		b.Run("wxtoken/"+storeName(withRedis), func(b *testing.B) {
			c := hotWxtoken(b, withRedis)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Get(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	for _, withRedis := range []bool{false, true} {
		b.Run("silenceper/"+storeName(withRedis), func(b *testing.B) {
			oa := hotSilenceper(b, withRedis)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := oa.GetAccessTokenContext(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("oauth2/reuse", func(b *testing.B) {
		ts := hotOAuth2(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := ts.Token(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func storeName(withRedis bool) string {
	if withRedis {
		return "redis"
	}
	return "memory"
}

// BenchmarkColdHerd measures 1,000 goroutines calling Get at once on a fresh
// client, and reports the upstream fetches and distinct tokens per herd.
func BenchmarkColdHerd(b *testing.B) {
	for _, p := range peers.All() {
		b.Run(p.Name, func(b *testing.B) {
			benchCounts(b, p, 1, 1000)
		})
	}
}

// BenchmarkReplicas measures 4 fresh replicas, 100 goroutines each, calling
// Get at once, and reports the upstream fetches and distinct tokens per round.
// Replicas of the Redis peers share one Redis; the others share nothing.
func BenchmarkReplicas(b *testing.B) {
	for _, p := range peers.All() {
		b.Run(p.Name, func(b *testing.B) {
			benchCounts(b, p, 4, 100)
		})
	}
}

func benchCounts(b *testing.B, p peers.Peer, replicas, callers int) {
	ctx := context.Background()
	up, env := startEnv(b, p.Redis)
	var fetches, tokens int
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := figures.FlushRedis(ctx, env.RedisAddr); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c, err := figures.Replicas(ctx, up, p, env, replicas, callers)
		if err != nil {
			b.Fatal(err)
		}
		if c.Errors > 0 {
			b.Fatalf("%d of %d Gets failed", c.Errors, replicas*callers)
		}
		fetches += c.Fetches
		tokens += c.Tokens
	}
	b.ReportMetric(float64(fetches)/float64(b.N), "fetches/op")
	b.ReportMetric(float64(tokens)/float64(b.N), "tokens/op")
}
