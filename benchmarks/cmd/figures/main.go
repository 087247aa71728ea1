// Command figures prints the counted benchmark figures of wxtoken and its
// peers as Markdown tables: upstream fetches for a cold herd, for replicas
// sharing Redis, and Get latency across token renewals with a slow upstream.
// Each figure is run -rounds times per peer; the tables show medians.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"slices"
	"time"

	"github.com/wxtoken/wxtoken/benchmarks/internal/figures"
	"github.com/wxtoken/wxtoken/benchmarks/internal/peers"
	"github.com/wxtoken/wxtoken/benchmarks/internal/upstream"
	"github.com/wxtoken/wxtoken/internal/redistest"
)

type options struct {
	rounds         int
	herd           int
	replicas       int
	replicaCallers int
	renewal        figures.RenewalConfig
	peers          *regexp.Regexp
	figures        *regexp.Regexp
}

func main() {
	var o options
	var peerRE, figRE string
	flag.IntVar(&o.rounds, "rounds", 5, "rounds of each figure per peer; tables show medians")
	flag.IntVar(&o.herd, "herd", 1000, "concurrent cold callers in the herd figure")
	flag.IntVar(&o.replicas, "replicas", 4, "replicas in the replicas figure")
	flag.IntVar(&o.replicaCallers, "replica-callers", 100, "concurrent cold callers per replica")
	flag.IntVar(&o.renewal.Callers, "renewal-callers", 16, "callers in the renewal figure")
	flag.DurationVar(&o.renewal.Pace, "pace", time.Millisecond, "pause between one caller's calls in the renewal figure")
	flag.DurationVar(&o.renewal.Delay, "delay", 20*time.Millisecond, "upstream latency of a token request in the renewal figure")
	flag.DurationVar(&o.renewal.Every, "every", time.Second, "time from a fetch to the peer's renewal point in the renewal figure")
	flag.IntVar(&o.renewal.Cycles, "cycles", 3, "renewal points crossed per round")
	flag.DurationVar(&o.renewal.Stall, "stall", 5*time.Millisecond, "a Get slower than this counts as stalled")
	flag.StringVar(&peerRE, "peers", ".", "regexp: run only the peers whose name matches")
	flag.StringVar(&figRE, "figures", ".", "regexp: run only the figures (herd, replicas, renewal) whose name matches")
	flag.Parse()
	o.peers = regexp.MustCompile(peerRE)
	o.figures = regexp.MustCompile(figRE)
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "figures:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer, o options) error {
	up := upstream.Start()
	defer up.Close()
	env := peers.Env{BaseURL: up.URL()}
	rs, err := redistest.Launch(os.TempDir()) // it writes nothing there: no save, no AOF
	switch {
	case errors.Is(err, redistest.ErrNotInstalled):
		fmt.Fprintf(w, "NOTE: %v (apt-get install redis-server); the Redis peers are skipped.\n\n", err)
	case err != nil:
		return err
	default:
		defer rs.Stop()
		env.RedisAddr = rs.Addr()
	}
	var ps []peers.Peer
	for _, p := range peers.All() {
		if o.peers.MatchString(p.Name) && (!p.Redis || env.RedisAddr != "") {
			ps = append(ps, p)
		}
	}
	fmt.Fprintf(w, "GOMAXPROCS %d, %d rounds per peer, medians (min-max where shown)\n\n", runtime.GOMAXPROCS(0), o.rounds)
	if o.figures.MatchString("herd") {
		if err := herdTable(ctx, w, up, env, ps, o); err != nil {
			return err
		}
	}
	if o.figures.MatchString("replicas") && env.RedisAddr != "" {
		if err := replicasTable(ctx, w, up, env, ps, o); err != nil {
			return err
		}
	}
	if o.figures.MatchString("renewal") {
		return renewalTable(ctx, w, up, env, ps, o)
	}
	return nil
}

func herdTable(ctx context.Context, w io.Writer, up *upstream.Server, env peers.Env, ps []peers.Peer, o options) error {
	fmt.Fprintf(w, "### Cold herd: %d concurrent callers of one fresh client\n\n", o.herd)
	fmt.Fprintln(w, "| peer | upstream fetches | distinct tokens | errors | time to serve all |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, p := range ps {
		cs, err := countRounds(ctx, o.rounds, env, func() (figures.Counts, error) {
			return figures.Herd(ctx, up, p, env, o.herd)
		})
		if err != nil {
			return err
		}
		printCounts(w, p.Name, cs)
	}
	fmt.Fprintln(w)
	return nil
}

func replicasTable(ctx context.Context, w io.Writer, up *upstream.Server, env peers.Env, ps []peers.Peer, o options) error {
	fmt.Fprintf(w, "### Replicas: %d fresh replicas x %d concurrent callers\n\n", o.replicas, o.replicaCallers)
	fmt.Fprintln(w, "| peer | upstream fetches | distinct tokens | errors | time to serve all |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, p := range ps {
		cs, err := countRounds(ctx, o.rounds, env, func() (figures.Counts, error) {
			return figures.Replicas(ctx, up, p, env, o.replicas, o.replicaCallers)
		})
		if err != nil {
			return err
		}
		name := p.Name
		if !p.Redis {
			name += " (nothing shared)"
		}
		printCounts(w, name, cs)
	}
	fmt.Fprintln(w)
	return nil
}

// countRounds runs one counted figure rounds times, each on an empty Redis.
func countRounds(ctx context.Context, rounds int, env peers.Env, f func() (figures.Counts, error)) ([]figures.Counts, error) {
	var cs []figures.Counts
	for range rounds {
		if err := figures.FlushRedis(ctx, env.RedisAddr); err != nil {
			return nil, err
		}
		c, err := f()
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func printCounts(w io.Writer, name string, cs []figures.Counts) {
	fetches := pick(cs, func(c figures.Counts) int { return c.Fetches })
	tokens := pick(cs, func(c figures.Counts) int { return c.Tokens })
	errs := pick(cs, func(c figures.Counts) int { return c.Errors })
	elapsed := pick(cs, func(c figures.Counts) time.Duration { return c.Elapsed })
	fmt.Fprintf(w, "| %s | %s | %s | %s | %v |\n", name, spread(fetches), spread(tokens), spread(errs),
		median(elapsed).Round(10*time.Microsecond))
}

func renewalTable(ctx context.Context, w io.Writer, up *upstream.Server, env peers.Env, ps []peers.Peer, o options) error {
	r := o.renewal
	fmt.Fprintf(w, "### Get across renewals: %d callers, one Get each every %v, upstream %v, %d renewal points per round\n\n",
		r.Callers, r.Pace, r.Delay, r.Cycles)
	fmt.Fprintf(w, "| peer | renewals | calls | stalled (> %v) | p50 | p99 | p99.9 | max | errors |\n", r.Stall)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, p := range ps {
		var ls []figures.Latency
		for range o.rounds {
			if err := figures.FlushRedis(ctx, env.RedisAddr); err != nil {
				return err
			}
			l, err := figures.Renewal(ctx, up, p, env, r)
			if err != nil {
				return err
			}
			ls = append(ls, l)
		}
		d := func(f func(figures.Latency) time.Duration) time.Duration {
			return round(median(pick(ls, f)))
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %v | %v | %v | %v | %s |\n", p.Name,
			spread(pick(ls, func(l figures.Latency) int { return l.Renewals })),
			median(pick(ls, func(l figures.Latency) int { return l.Calls })),
			spread(pick(ls, func(l figures.Latency) int { return l.Stalled })),
			d(func(l figures.Latency) time.Duration { return l.P50 }),
			d(func(l figures.Latency) time.Duration { return l.P99 }),
			d(func(l figures.Latency) time.Duration { return l.P999 }),
			d(func(l figures.Latency) time.Duration { return l.Max }),
			spread(pick(ls, func(l figures.Latency) int { return l.Errors })))
	}
	fmt.Fprintln(w)
	return nil
}

// round keeps three significant digits or so: ns below 10 µs, µs above.
func round(d time.Duration) time.Duration {
	if d < 10*time.Microsecond {
		return d
	}
	return d.Round(time.Microsecond)
}

func pick[T, V any](xs []T, f func(T) V) []V {
	out := make([]V, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// median returns the middle value (the lower middle for an even count).
func median[V int | time.Duration](xs []V) V {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// spread formats the median, and the range when the rounds disagreed.
func spread(xs []int) string {
	lo, hi := slices.Min(xs), slices.Max(xs)
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d (%d-%d)", median(xs), lo, hi)
}
