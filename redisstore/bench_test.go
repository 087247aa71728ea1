package redisstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken/internal/redistest"
)

// BenchmarkLoadMany reads 1,000 keys in one LoadMany, beside 1,000 Loads.
func BenchmarkLoadMany(b *testing.B) {
	st, _, _ := setupBench(b)
	ctx := context.Background()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "wx" + strconv.Itoa(1_000_000+i)
		if err := st.Save(ctx, keys[i], tokenAt(time.Now(), "tok-"+keys[i])); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("LoadMany-1000", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.LoadMany(ctx, keys); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Load-x1000", func(b *testing.B) {
		for b.Loop() {
			for _, k := range keys {
				if _, err := st.Load(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkRenewalStoreWork is a renewal's Store work: LockLoad and
// SaveUnlock (two round trips), beside Lock, Load, Save and unlock (five:
// Save reads before it writes).
func BenchmarkRenewalStoreWork(b *testing.B) {
	st, _, _ := setupBench(b)
	ctx := context.Background()
	b.Run("LockLoad+SaveUnlock", func(b *testing.B) {
		for b.Loop() {
			lk, _, err := st.LockLoad(ctx, "wxbench", time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if err := lk.SaveUnlock(ctx, tokenAt(time.Now(), "tok-bench")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Lock+Load+Save+Unlock", func(b *testing.B) {
		for b.Loop() {
			unlock, err := st.Lock(ctx, "wxbench2", time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = st.Load(ctx, "wxbench2")
			if err := st.Save(ctx, "wxbench2", tokenAt(time.Now(), "tok-bench")); err != nil {
				b.Fatal(err)
			}
			if err := unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// setupBench is setup for a benchmark.
func setupBench(b *testing.B) (*Store, *redis.Client, *redistest.Server) {
	b.Helper()
	srv := redistest.Start(b)
	rdb := srv.NewClient(b)
	return New(rdb), rdb, srv
}
