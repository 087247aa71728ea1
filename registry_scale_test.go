package wxtoken

import (
	"context"

	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scaleKeys is how many keys the scale tests hold: 100,000 in the full run,
// 10,000 under -short.
func scaleKeys() int {
	if testing.Short() {
		return 10_000
	}
	return 100_000
}

// countingStore is a MemoryStore that counts Loads.
type countingStore struct {
	*MemoryStore
	loads atomic.Int64
}

func (s *countingStore) Load(ctx context.Context, key string) (Token, error) {
	s.loads.Add(1)
	return s.MemoryStore.Load(ctx, key)
}

func scaleKey(i int) string { return "wx" + strconv.Itoa(1_000_000+i) }

// peaks samples the process's goroutines and resident memory from outside a
// synctest bubble, in real time, until stopped.
type peaks struct {
	goroutines atomic.Int64
	rssKiB     atomic.Int64
	stop       chan struct{}
	done       chan struct{}
}

func samplePeaks() *peaks {
	p := &peaks{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if n := int64(runtime.NumGoroutine()); n > p.goroutines.Load() {
				p.goroutines.Store(n)
			}
			if kib := rssKiB(); kib > p.rssKiB.Load() {
				p.rssKiB.Store(kib)
			}
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *peaks) end() { close(p.stop); <-p.done }

// rssKiB reads the process's resident set size on Linux (0 elsewhere).
func rssKiB() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// warm makes r hold n keys, each with a token, from few goroutines.
func warm(t *testing.T, r *Registry, n int) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if _, err := r.Get(context.Background(), scaleKey(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A Registry of many keys on a MemoryStore: per key, well under a kilobyte of
// heap beyond the key and token, and no goroutine; idle for ten minutes, no
// fetch and at most N/4 Store reads a minute, with no burst of goroutines.
func TestRegistryScale(t *testing.T) {
	n := scaleKeys()
	synctest.Test(t, func(t *testing.T) {
		st := &countingStore{MemoryStore: NewMemoryStore()}
		var fetches atomic.Int64
		baseHeap := heapInUse()
		baseGoroutines := runtime.NumGoroutine()
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
			return &keyedSource{key: key, fetches: &fetches, life: 7200}, nil
		}, WithStore(st), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer r.Close()
		warm(t, r, n)
		synctest.Wait()
		require.Equal(t, int64(n), fetches.Load())
		// Past the deadlines of the warm-up's contexts, whose stopped timers
		// the runtime drops only when they come due.
		time.Sleep(DefaultFetchTimeout + time.Second)
		synctest.Wait()

		// What a key costs: the key (registry and store map) and its token
		// (cache entry and store record) are the payload; the rest is ours.
		payload := 0
		for i := range n {
			payload += 2*len(scaleKey(i)) + 2*len(scaleKey(i)+"-1")
		}
		perKey := (float64(heapInUse()-baseHeap) - float64(payload)) / float64(n)
		goroutines := runtime.NumGoroutine() - baseGoroutines
		t.Logf("%d keys: %.0f bytes of heap per key beyond the key and token bytes; %d goroutines more than before",
			n, perKey, goroutines)
		assert.LessOrEqual(t, perKey, 1024.0, "heap per key")
		assert.LessOrEqual(t, goroutines, 10, "no goroutine per key")

		p := samplePeaks()
		fetchesBefore, loadsBefore := fetches.Load(), st.loads.Load()
		maxPerMinute := int64(0)
		for range 10 {
			before := st.loads.Load()
			time.Sleep(time.Minute)
			synctest.Wait()
			maxPerMinute = max(maxPerMinute, st.loads.Load()-before)
		}
		p.end()
		loads := st.loads.Load() - loadsBefore
		t.Logf("10 idle minutes: %d fetches, %d store reads (%.0f a minute on average, %d at most; N/4 = %d); "+
			"peak goroutines %d, peak RSS %d MiB", fetches.Load()-fetchesBefore, loads, float64(loads)/10,
			maxPerMinute, n/4, p.goroutines.Load(), p.rssKiB.Load()/1024)
		assert.Equal(t, fetchesBefore, fetches.Load(), "no fetch while idle")
		// Slack of two slots of the wheel: slots differ by one key at most, and
		// the ten minutes need not begin or end at a slot's edge.
		slot := int64((n + syncSlots - 1) / syncSlots)
		assert.LessOrEqual(t, loads, int64(10*n/4)+2*slot, "store reads over 10 minutes")
		assert.LessOrEqual(t, maxPerMinute, int64(n/4)*11/10, "no minute much above N/4")
	})
}

// Keys warmed in one burst renew spread out: at their renewal, no second
// holds more than 5 % of the renewals.
func TestRegistryRenewalsSpreadOut(t *testing.T) {
	n := scaleKeys()
	synctest.Test(t, func(t *testing.T) {
		var fetches atomic.Int64
		// No store sync: it is not what this test is about, and 6,860 fake
		// seconds of it cost most of the test's time under -race.
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
			return &keyedSource{key: key, fetches: &fetches, life: 7200}, nil
		}, WithStore(NewMemoryStore()), WithLogger(quietLogger()), WithStoreSync(0))
		require.NoError(t, err)
		defer r.Close()
		warm(t, r, n)
		synctest.Wait()
		time.Sleep(6860 * time.Second)
		synctest.Wait()
		require.Equal(t, int64(n), fetches.Load(), "no renewal before the window")
		worst := int64(0)
		for range 50 {
			before := fetches.Load()
			time.Sleep(time.Second)
			synctest.Wait()
			worst = max(worst, fetches.Load()-before)
		}
		renewed := fetches.Load() - int64(n)
		t.Logf("%d keys renewed %d times between 6860 s and 6910 s; the busiest second had %d (%.1f %%)",
			n, renewed, worst, 100*float64(worst)/float64(n))
		assert.Equal(t, int64(n), renewed, "every key renewed once")
		assert.LessOrEqual(t, worst, int64(n)/20, "no second holds more than 5 %")
	})
}

// BenchmarkRegistryGet reads a random key among 100,000 warm ones; the bare
// map read beside it is the floor.
func BenchmarkRegistryGet(b *testing.B) {
	const n = 100_000
	var fetches atomic.Int64
	r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
		return &keyedSource{key: key, fetches: &fetches, life: 7200}, nil
	}, WithStore(NewMemoryStore()), WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = scaleKey(i)
		if _, err := r.Get(context.Background(), keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("registry", func(b *testing.B) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Get(ctx, keys[rng.IntN(n)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-map", func(b *testing.B) {
		m := make(map[string]string, n)
		for _, k := range keys {
			m[k] = k
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var sink string
		b.ReportAllocs()
		for b.Loop() {
			sink = m[keys[rng.IntN(n)]]
		}
		_ = sink
	})

}
