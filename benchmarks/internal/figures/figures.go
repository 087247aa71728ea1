// Package figures runs the benchmark scenarios that are counted rather than
// timed per operation: cold herds, replicas sharing Redis, and Get latency
// across renewals.
package figures

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wxtoken/wxtoken/benchmarks/internal/peers"
	"github.com/wxtoken/wxtoken/benchmarks/internal/upstream"
)

// Counts is what one herd round did.
type Counts struct {
	Fetches int           // requests that reached /cgi-bin/token
	Tokens  int           // distinct tokens handed to callers
	Errors  int           // Get calls that failed
	Elapsed time.Duration // from the start signal until the last caller had its answer
}

// Herd makes one fresh Getter of p and has callers goroutines call Get on it
// at the same moment, once each.
func Herd(ctx context.Context, up *upstream.Server, p peers.Peer, env peers.Env, callers int) (Counts, error) {
	return Replicas(ctx, up, p, env, 1, callers)
}

// Replicas makes n fresh Getters of p, as n replicas of a service (they share
// Redis when p keeps its cache there), and has callers goroutines per replica
// call Get at the same moment, once each. The caller empties Redis before.
func Replicas(ctx context.Context, up *upstream.Server, p peers.Peer, env peers.Env, n, callers int) (Counts, error) {
	getters, err := newGetters(p, env, n)
	if err != nil {
		return Counts{}, err
	}
	defer closeAll(getters)

	var (
		mu     sync.Mutex
		tokens = map[string]bool{}
		errs   atomic.Int64
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	before := up.Fetches()
	for _, g := range getters {
		for range callers {
			wg.Go(func() {
				<-start
				tok, err := g.Get(ctx)
				if err != nil {
					errs.Add(1)
					return
				}
				mu.Lock()
				tokens[tok] = true
				mu.Unlock()
			})
		}
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return Counts{
		Fetches: up.Fetches() - before,
		Tokens:  len(tokens),
		Errors:  int(errs.Load()),
		Elapsed: time.Since(t0),
	}, nil
}

func newGetters(p peers.Peer, env peers.Env, n int) ([]peers.Getter, error) {
	getters := make([]peers.Getter, 0, n)
	for range n {
		g, err := p.New(env)
		if err != nil {
			closeAll(getters)
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		getters = append(getters, g)
	}
	return getters, nil
}

func closeAll(gs []peers.Getter) {
	for _, g := range gs {
		_ = g.Close()
	}
}

// FlushRedis empties the Redis at addr, so that the next round starts cold.
// It does nothing for an empty addr.
func FlushRedis(ctx context.Context, addr string) error {
	if addr == "" {
		return nil
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	return rdb.FlushDB(ctx).Err()
}

// RenewalConfig shapes the renewal figure.
type RenewalConfig struct {
	Callers int           // goroutines calling Get in a loop
	Pace    time.Duration // pause between two calls of one caller
	Every   time.Duration // how long after each fetch the peer's renewal point comes
	Cycles  int           // renewal points to cross
	Delay   time.Duration // upstream latency of every token request
	Stall   time.Duration // a call slower than this counts as stalled
}

// Latency is what callers saw during one renewal run.
type Latency struct {
	Calls    int
	Errors   int
	P50      time.Duration
	P99      time.Duration
	P999     time.Duration
	Max      time.Duration
	Stalled  int // calls slower than RenewalConfig.Stall
	Renewals int // token requests that reached the upstream during the run
	// Waits is the peer's own count of calls that waited for a fetch, warm-up
	// included, or -1 when the peer keeps no such count (only wxtoken does).
	Waits int64
}

// waiter is implemented by the Getters that count their waiting calls.
type waiter interface{ Waits() int64 }

// Renewal makes one Getter of p, warms it with one Get, then has cfg.Callers
// goroutines call Get every cfg.Pace for cfg.Cycles renewal periods and a
// half, while every token request takes cfg.Delay upstream. The upstream
// reports the expires_in that puts p's own renewal point cfg.Every after each
// fetch (peers.Peer.ExpiresInFor).
func Renewal(ctx context.Context, up *upstream.Server, p peers.Peer, env peers.Env, cfg RenewalConfig) (Latency, error) {
	up.SetExpiresIn(p.ExpiresInFor(cfg.Every))
	up.SetDelay(cfg.Delay)
	defer up.SetExpiresIn(0)
	defer up.SetDelay(0)

	g, err := p.New(env)
	if err != nil {
		return Latency{}, fmt.Errorf("%s: %w", p.Name, err)
	}
	defer g.Close()
	if _, err := g.Get(ctx); err != nil {
		return Latency{}, fmt.Errorf("%s: warm-up Get: %w", p.Name, err)
	}
	before := up.Fetches()
	deadline := time.Now().Add(time.Duration(cfg.Cycles)*cfg.Every + cfg.Every/2)

	all := make([][]time.Duration, cfg.Callers)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for i := range cfg.Callers {
		wg.Go(func() {
			all[i] = callUntil(ctx, g, deadline, cfg.Pace, &errs)
		})
	}
	wg.Wait()
	lat := summarize(slices.Concat(all...), cfg.Stall)
	lat.Errors = int(errs.Load())
	lat.Renewals = up.Fetches() - before
	lat.Waits = -1
	if w, ok := g.(waiter); ok {
		lat.Waits = w.Waits()
	}
	if lat.Calls == 0 {
		return lat, errors.New("no call completed")
	}
	return lat, nil
}

// callUntil calls Get every pace until deadline and returns each call's latency.
func callUntil(ctx context.Context, g peers.Getter, deadline time.Time, pace time.Duration, errs *atomic.Int64) []time.Duration {
	var out []time.Duration
	for time.Now().Before(deadline) {
		t0 := time.Now()
		_, err := g.Get(ctx)
		out = append(out, time.Since(t0))
		if err != nil {
			errs.Add(1)
		}
		time.Sleep(pace) // pacing, not synchronisation: callers must leave the CPUs idle
	}
	return out
}

func summarize(d []time.Duration, stall time.Duration) Latency {
	slices.Sort(d)
	l := Latency{Calls: len(d)}
	if len(d) == 0 {
		return l
	}
	l.P50, l.P99, l.P999 = quantile(d, 0.50), quantile(d, 0.99), quantile(d, 0.999)
	l.Max = d[len(d)-1]
	for _, x := range d {
		if x > stall {
			l.Stalled++
		}
	}
	return l
}

// quantile returns the nearest-rank q-quantile of sorted d.
func quantile(d []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(d))+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}
