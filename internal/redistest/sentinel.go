package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// SentinelMaster is the name under which the sentinels of StartSentinel
	// monitor the master, the MasterName of a go-redis FailoverClient.
	SentinelMaster = "m"
	// SentinelDownAfter is the sentinels' down-after-milliseconds: how long a
	// master may stay silent before a sentinel counts it as down. A failover
	// starts once two sentinels agree on that, and ends one election and one
	// promotion later.
	SentinelDownAfter = time.Second
	// sentinelFailoverTimeout is the sentinels' failover-timeout: how long
	// a failover may take before another sentinel tries.
	sentinelFailoverTimeout = 3 * time.Second

	sentinelCount  = 3
	sentinelQuorum = 2
)

// Sentinel is a master, its replica and three sentinels monitoring them,
// five redis-server processes on free ports of 127.0.0.1 owned by a test.
// Its methods are safe for concurrent use.
type Sentinel struct {
	t         testing.TB
	data      []*Process // the first master and its replica
	sentinels []*Process

	mu     sync.Mutex
	killed map[string]bool // addresses of the processes Kill ended
}

// StartSentinel starts a master, a replica of it (--replicaof) and three
// `redis-server --sentinel` (quorum 2, down-after-milliseconds 1 s,
// failover-timeout 3 s) for t, returns once every sentinel names the master,
// knows the replica and the other two sentinels, and stops every process when
// t ends. Like Start, it skips t when redis-server is not installed, unless
// the environment variable CI is set, in which case it fails t.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s := &Sentinel{t: t, killed: map[string]bool{}}
	// Registered first, so that it runs last, once the clients are closed.
	t.Cleanup(func() { awaitDialersGone(t) })
	master := s.start(t.TempDir(), "", dataArgs(nil))
	s.data = append(s.data, master)
	replicaOf := []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)}
	s.data = append(s.data, s.start(t.TempDir(), "", dataArgs(replicaOf)))
	// A sentinel learns of replicas from the master's INFO, which it reads
	// every 10 s after the first time: the replica must be there by then.
	s.await("replica "+s.data[1].Addr()+" in sync", func(ctx context.Context) error {
		return replicaLinked(ctx, s.data[1].Addr())
	})
	for range sentinelCount {
		dir := t.TempDir()
		conf, err := writeSentinelConf(dir, master.Addr())
		if err != nil {
			t.Fatal(err)
		}
		s.sentinels = append(s.sentinels, s.start(dir, conf, func() ([]string, error) { return []string{"--sentinel"}, nil }))
	}
	s.WaitHealthy()
	return s
}

// start launches one process of s, stopped when the test ends.
func (s *Sentinel) start(dir, conf string, extra func() ([]string, error)) *Process {
	s.t.Helper()
	p, err := launchConf(dir, conf, extra)
	skipIfNotInstalled(s.t, err, "redis-server")
	if err != nil {
		s.t.Fatal(err)
	}
	p.logf = s.t.Logf
	s.t.Cleanup(p.Stop)
	return p
}

// dataArgs returns the arguments of a master or replica: a replica syncs at
// once, not after Redis's 5 s wait for others to sync with it, and the
// replication offset moves every second even without writes.
func dataArgs(more []string) func() ([]string, error) {
	return func() ([]string, error) {
		return append([]string{"--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"}, more...), nil
	}
}

// writeSentinelConf writes the config file of a sentinel monitoring master
// into dir: a sentinel rewrites it with what it learns.
func writeSentinelConf(dir, master string) (string, error) {
	host, port, err := net.SplitHostPort(master)
	if err != nil {
		return "", fmt.Errorf("redistest: sentinel config: %w", err)
	}
	conf := fmt.Sprintf(`sentinel resolve-hostnames no
sentinel monitor %[1]s %[2]s %[3]s %[4]d
sentinel down-after-milliseconds %[1]s %[5]d
sentinel failover-timeout %[1]s %[6]d
sentinel parallel-syncs %[1]s 1
`, SentinelMaster, host, port, sentinelQuorum, SentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return "", fmt.Errorf("redistest: sentinel config: %w", err)
	}
	return path, nil
}

// SentinelAddrs returns the addresses of the three sentinels, killed ones
// included.
func (s *Sentinel) SentinelAddrs() []string { return addrsOf(s.sentinels) }

// DataAddrs returns the addresses of the first master and its replica,
// killed ones included.
func (s *Sentinel) DataAddrs() []string { return addrsOf(s.data) }

func addrsOf(ps []*Process) []string {
	addrs := make([]string, len(ps))
	for i, p := range ps {
		addrs[i] = p.Addr()
	}
	return addrs
}

// Master returns the address of the master as a live sentinel names it. It
// fails the test when no sentinel answers.
func (s *Sentinel) Master() string {
	s.t.Helper()
	var errs []error
	for _, addr := range s.live(s.sentinels) {
		m, err := sentinelMaster(context.Background(), addr)
		if err == nil {
			return m.addr
		}
		errs = append(errs, err)
	}
	s.t.Fatalf("redistest: no sentinel named the master: %v", errors.Join(errs...))
	return ""
}

// Kill ends the process at addr, a master, replica or sentinel, with SIGKILL
// and returns once it has exited.
func (s *Sentinel) Kill(addr string) {
	s.t.Helper()
	all := slices.Concat(s.data, s.sentinels)
	i := slices.IndexFunc(all, func(p *Process) bool { return p.Addr() == addr })
	if i < 0 {
		s.t.Fatalf("redistest: no sentinel or data node at %s", addr)
	}
	s.mu.Lock()
	s.killed[addr] = true
	s.mu.Unlock()
	all[i].Kill()
}

// live returns the processes of ps that were not killed.
func (s *Sentinel) live(ps []*Process) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var addrs []string
	for _, p := range ps {
		if !s.killed[p.Addr()] {
			addrs = append(addrs, p.Addr())
		}
	}
	return addrs
}

// WaitHealthy waits until every live sentinel names the same master, one
// that was not killed, says role:master, and every live sentinel knows the
// other live ones and every live data node but the master as its replica,
// and returns how long that took. After Kill of the master that is the end
// of the failover: the sentinels announced the promoted replica
// (+switch-master). It fails the test after 30 s.
func (s *Sentinel) WaitHealthy() time.Duration {
	s.t.Helper()
	return s.await("one live master named by every sentinel, which knows every live node", s.healthy)
}

func (s *Sentinel) healthy(ctx context.Context) error {
	sentinels, data := s.live(s.sentinels), s.live(s.data)
	master := ""
	for _, addr := range sentinels {
		m, err := sentinelMaster(ctx, addr)
		if err != nil {
			return err
		}
		switch {
		case master != "" && m.addr != master:
			return fmt.Errorf("sentinels disagree: %s names %s, another %s", addr, m.addr, master)
		case !slices.Contains(data, m.addr):
			return fmt.Errorf("sentinel %s names %s, which is down", addr, m.addr)
		case m.flags != "master":
			return fmt.Errorf("sentinel %s: master %s is %q", addr, m.addr, m.flags)
		case m.otherSentinels != len(sentinels)-1:
			return fmt.Errorf("sentinel %s knows %d other sentinels, want %d", addr, m.otherSentinels, len(sentinels)-1)
		}
		master = m.addr
		if err := knowsReplicas(ctx, addr, data, master); err != nil {
			return err
		}
	}
	info, err := replicationInfo(ctx, master)
	if err != nil {
		return err
	}
	if info["role"] != "master" {
		return fmt.Errorf("%s: role %q", master, info["role"])
	}
	return nil
}

// masterView is what a sentinel says of the master it monitors.
type masterView struct {
	addr           string
	flags          string
	otherSentinels int
}

// sentinelMaster asks the sentinel at addr about SentinelMaster.
func sentinelMaster(ctx context.Context, addr string) (masterView, error) {
	m, err := withSentinel(ctx, addr, func(ctx context.Context, sc *redis.SentinelClient) (map[string]string, error) {
		return sc.Master(ctx, SentinelMaster).Result()
	})
	if err != nil {
		return masterView{}, err
	}
	others, _ := strconv.Atoi(m["num-other-sentinels"])
	return masterView{addr: net.JoinHostPort(m["ip"], m["port"]), flags: m["flags"], otherSentinels: others}, nil
}

// knowsReplicas checks that the sentinel at addr lists every node of data
// but master as a replica that is up.
func knowsReplicas(ctx context.Context, addr string, data []string, master string) error {
	rs, err := withSentinel(ctx, addr, func(ctx context.Context, sc *redis.SentinelClient) ([]map[string]string, error) {
		return sc.Replicas(ctx, SentinelMaster).Result()
	})
	if err != nil {
		return err
	}
	up := map[string]bool{}
	for _, r := range rs {
		if r["flags"] == "slave" {
			up[net.JoinHostPort(r["ip"], r["port"])] = true
		}
	}
	for _, d := range data {
		if d != master && !up[d] {
			return fmt.Errorf("sentinel %s does not list %s as a replica that is up", addr, d)
		}
	}
	return nil
}

// WaitReplicated waits until every live replica has everything the master
// had written when WaitReplicated was called, so that a master killed next
// loses nothing. It fails the test after 30 s.
func (s *Sentinel) WaitReplicated() {
	s.t.Helper()
	master := s.Master()
	info, err := replicationInfo(context.Background(), master)
	if err != nil {
		s.t.Fatal(err)
	}
	written, err := strconv.ParseInt(info["master_repl_offset"], 10, 64)
	if err != nil {
		s.t.Fatalf("redistest: %s: master_repl_offset: %v", master, err)
	}
	for _, r := range s.live(s.data) {
		if r == master {
			continue
		}
		s.await("replica "+r+" at its master's offset "+strconv.FormatInt(written, 10), func(ctx context.Context) error {
			return replicaAt(ctx, r, written)
		})
	}
}

// replicaLinked reports whether the replica at addr is in sync with its
// master.
func replicaLinked(ctx context.Context, addr string) error { return replicaAt(ctx, addr, 0) }

// replicaAt reports whether the replica at addr is linked to its master and
// at offset written or past it.
func replicaAt(ctx context.Context, addr string, written int64) error {
	info, err := replicationInfo(ctx, addr)
	if err != nil {
		return err
	}
	if info["master_link_status"] != "up" {
		return fmt.Errorf("%s: link to its master is %q", addr, info["master_link_status"])
	}
	if got, _ := strconv.ParseInt(info["slave_repl_offset"], 10, 64); got < written {
		return fmt.Errorf("%s: at offset %d", addr, got)
	}
	return nil
}

// FailoverOptions returns the options of a go-redis FailoverClient of the
// master with the settings the README documents: a dead master is dialed
// once per attempt rather than five times, and a silent one costs half a
// second. Each call returns new options.
func (s *Sentinel) FailoverOptions() *redis.FailoverOptions {
	return &redis.FailoverOptions{
		MasterName:    SentinelMaster,
		SentinelAddrs: s.SentinelAddrs(),
		DialTimeout:   500 * time.Millisecond,
		DialerRetries: 1,
		ReadTimeout:   500 * time.Millisecond,
		WriteTimeout:  500 * time.Millisecond,
	}
}

// NewClient returns a redis.NewFailoverClient with FailoverOptions, closed
// when t ends.
func (s *Sentinel) NewClient(t testing.TB) *redis.Client {
	rdb := redis.NewFailoverClient(s.FailoverOptions())
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// await polls cond until it returns nil, within clusterTimeout.
func (s *Sentinel) await(what string, cond func(context.Context) error) time.Duration {
	s.t.Helper()
	return await(s.t, "sentinel: "+what, cond)
}

// withSentinel runs fn with a client of the sentinel at addr.
func withSentinel[T any](ctx context.Context, addr string, fn func(context.Context, *redis.SentinelClient) (T, error)) (T, error) {
	sc := redis.NewSentinelClient(nodeOptions(addr))
	defer sc.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	v, err := fn(ctx, sc)
	if err != nil {
		err = fmt.Errorf("redistest: sentinel %s: %w", addr, err)
	}
	return v, err
}
