package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

const (
	// ClusterNodeTimeout is the cluster-node-timeout of a Cluster: how long
	// its nodes wait for a silent node before they count it as failing. A
	// replica takes over a killed master about one to three of these later
	// (the failure has to be agreed on, then the replica waits 0.5 s to 1.5 s
	// before it asks for votes).
	ClusterNodeTimeout = time.Second

	clusterMasters  = 3
	clusterReplicas = 1 // per master
	// clusterTimeout bounds creating a cluster and waiting for it to settle.
	clusterTimeout = 30 * time.Second
	// clusterPoll is how often the harness asks the nodes how they are.
	clusterPoll = 20 * time.Millisecond
)

// Cluster is a Redis Cluster of 3 masters with 1 replica each, six
// redis-server processes on free ports of 127.0.0.1, owned by a test. Its
// methods are safe for concurrent use.
type Cluster struct {
	t     testing.TB
	nodes []*Process

	mu     sync.Mutex
	killed map[string]bool // addresses of the nodes Kill ended
}

// Shard is one master of a Cluster with the slots it serves and its replicas.
type Shard struct {
	Master   string // address of the master
	Replicas []string
	Slots    []SlotRange
}

// SlotRange is the hash slots Start to End, both included.
type SlotRange struct{ Start, End int }

// Has reports whether the shard serves slot.
func (s Shard) Has(slot int) bool {
	return slices.ContainsFunc(s.Slots, func(r SlotRange) bool { return r.Start <= slot && slot <= r.End })
}

// StartCluster starts a Redis Cluster for t with `redis-server
// --cluster-enabled yes` and `redis-cli --cluster create`, returns once every
// node says cluster_state:ok and every replica is in sync with its master,
// and stops every node when t ends. Like Start, it skips t when redis-server
// or redis-cli is not installed, unless the environment variable CI is set, in
// which case it fails t.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		err = &notFound{program: "redis-cli", err: err}
	}
	skipIfNotInstalled(t, err, "redis-cli")
	c := &Cluster{t: t, killed: map[string]bool{}}
	// Registered first, so that it runs last, once the clients are closed.
	t.Cleanup(func() { awaitDialersGone(t) })
	for range clusterMasters * (1 + clusterReplicas) {
		p, err := launch(t.TempDir(), clusterArgs)
		skipIfNotInstalled(t, err, "redis-server")
		if err != nil {
			t.Fatal(err)
		}
		p.logf = t.Logf
		t.Cleanup(p.Stop)
		c.nodes = append(c.nodes, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.create(ctx, cli); err != nil {
		t.Fatal(err)
	}
	c.WaitHealthy()
	c.WaitReplicated()
	return c
}

// clusterArgs returns the arguments that make a redis-server a cluster node,
// its cluster bus on a free port of its own (by default the bus listens on
// port+10000, which may be taken or past 65535).
func clusterArgs() ([]string, error) {
	bus, err := freePort()
	if err != nil {
		return nil, err
	}
	return []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf", // in the node's folder
		"--cluster-node-timeout", strconv.FormatInt(ClusterNodeTimeout.Milliseconds(), 10),
		"--cluster-port", strconv.Itoa(bus),
		// A replica takes over however long ago it last heard from its
		// master: a loaded test machine must not block the failover.
		"--cluster-replica-validity-factor", "0",
		// A new replica syncs at once, not after Redis's 5 s wait for
		// others to sync with it.
		"--repl-diskless-sync-delay", "0",
		// CLUSTER SLOTS lists a replica once its replication offset is not
		// zero; on a master that has had no write, only its pings to the
		// replicas move it, every 10 s by default.
		"--repl-ping-replica-period", "1",
	}, nil
}

// create joins the nodes into a cluster with redis-cli, the first three as
// masters.
func (c *Cluster) create(ctx context.Context, cli string) error {
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(clusterReplicas), "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("redistest: redis-cli --cluster create: %w; it said: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Addrs returns the addresses of all six nodes, killed ones included.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, p := range c.nodes {
		addrs[i] = p.Addr()
	}
	return addrs
}

// Kill ends the node at addr with SIGKILL and returns once it has exited.
func (c *Cluster) Kill(addr string) {
	c.t.Helper()
	i := slices.IndexFunc(c.nodes, func(p *Process) bool { return p.Addr() == addr })
	if i < 0 {
		c.t.Fatalf("redistest: no cluster node at %s", addr)
	}
	c.mu.Lock()
	c.killed[addr] = true
	c.mu.Unlock()
	c.nodes[i].Kill()
}

// live returns the addresses of the nodes that were not killed.
func (c *Cluster) live() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var addrs []string
	for _, a := range c.Addrs() {
		if !c.killed[a] {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// Masters returns the shards as a live node sees them (CLUSTER SHARDS),
// ordered by their first slot. It fails the test when no node answers.
func (c *Cluster) Masters() []Shard {
	c.t.Helper()
	shards, err := c.masters(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return shards
}

func (c *Cluster) masters(ctx context.Context) ([]Shard, error) {
	var errs []error
	for _, addr := range c.live() {
		shards, err := clusterShards(ctx, addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return shards, nil
	}
	return nil, fmt.Errorf("redistest: no cluster node answered CLUSTER SHARDS: %w", errors.Join(errs...))
}

// clusterShards asks the node at addr for the shards it knows.
func clusterShards(ctx context.Context, addr string) ([]Shard, error) {
	shards, err := withNode(ctx, addr, func(ctx context.Context, rdb *redis.Client) ([]redis.ClusterShard, error) {
		return rdb.ClusterShards(ctx).Result()
	})
	if err != nil {
		return nil, err
	}
	return shardsOf(shards), nil
}

// shardsOf keeps the shards of CLUSTER SHARDS that serve slots, with their
// nodes that are online: a failed node is in no role, and neither is a
// replica still loading its first copy of the data.
func shardsOf(shards []redis.ClusterShard) []Shard {
	var out []Shard
	for _, cs := range shards {
		if len(cs.Slots) == 0 {
			continue
		}
		var sh Shard
		for _, n := range cs.Nodes {
			if n.Health != "online" {
				continue
			}
			addr := net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
			if n.Role == "master" {
				sh.Master = addr
			} else {
				sh.Replicas = append(sh.Replicas, addr)
			}
		}
		for _, r := range cs.Slots {
			sh.Slots = append(sh.Slots, SlotRange{int(r.Start), int(r.End)})
		}
		slices.SortFunc(sh.Slots, func(a, b SlotRange) int { return a.Start - b.Start })
		slices.Sort(sh.Replicas)
		out = append(out, sh)
	}
	slices.SortFunc(out, func(a, b Shard) int { return a.Slots[0].Start - b.Slots[0].Start })
	return out
}

// WaitHealthy waits until every live node says cluster_state:ok and sees
// the slots served by three masters none of which was killed, with every live
// node in its place, and returns how long that took. It fails the test after
// 30 s.
func (c *Cluster) WaitHealthy() time.Duration {
	c.t.Helper()
	return c.await("cluster_state:ok and every live node in place, as every node sees it", c.healthy)
}

func (c *Cluster) healthy(ctx context.Context) error {
	live := c.live()
	for _, addr := range live {
		if err := c.healthyAt(ctx, addr, live); err != nil {
			return err
		}
	}
	return nil
}

// healthyAt checks the cluster as the node at addr sees it.
func (c *Cluster) healthyAt(ctx context.Context, addr string, live []string) error {
	info, err := withNode(ctx, addr, func(ctx context.Context, rdb *redis.Client) (string, error) {
		return rdb.ClusterInfo(ctx).Result()
	})
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return fmt.Errorf("%s: not cluster_state:ok", addr)
	}
	shards, err := clusterShards(ctx, addr)
	if err != nil {
		return err
	}
	if len(shards) != clusterMasters {
		return fmt.Errorf("%s sees %d masters, want %d", addr, len(shards), clusterMasters)
	}
	var seen []string
	for _, sh := range shards {
		if sh.Master == "" {
			return fmt.Errorf("%s sees no master online for slot %d", addr, sh.Slots[0].Start)
		}
		seen = append(seen, sh.Master)
		seen = append(seen, sh.Replicas...)
	}
	slices.Sort(seen)
	want := slices.Sorted(slices.Values(live))
	if !slices.Equal(seen, want) {
		return fmt.Errorf("%s sees the nodes %v serve, want the live ones %v", addr, seen, want)
	}
	return nil
}

// WaitReplicated waits until every live replica has everything its master
// had written when WaitReplicated was called, so that a master killed next
// loses nothing. It fails the test after 30 s.
func (c *Cluster) WaitReplicated() {
	c.t.Helper()
	shards := c.Masters()
	for _, sh := range shards {
		written := c.offsetOf(sh.Master, "master_repl_offset")
		for _, r := range sh.Replicas {
			c.await("replica "+r+" at its master's offset "+strconv.FormatInt(written, 10), func(ctx context.Context) error {
				info, err := replicationInfo(ctx, r)
				if err != nil {
					return err
				}
				if info["master_link_status"] != "up" {
					return fmt.Errorf("%s: link to its master is %q", r, info["master_link_status"])
				}
				if got, _ := strconv.ParseInt(info["slave_repl_offset"], 10, 64); got < written {
					return fmt.Errorf("%s: at offset %d", r, got)
				}
				return nil
			})
		}
	}
}

// offsetOf reads a replication offset from the INFO of the node at addr.
func (c *Cluster) offsetOf(addr, field string) int64 {
	c.t.Helper()
	info, err := replicationInfo(context.Background(), addr)
	if err != nil {
		c.t.Fatal(err)
	}
	n, err := strconv.ParseInt(info[field], 10, 64)
	if err != nil {
		c.t.Fatalf("redistest: %s: %s: %v", addr, field, err)
	}
	return n
}

// replicationInfo returns the fields of INFO replication of the node at addr.
func replicationInfo(ctx context.Context, addr string) (map[string]string, error) {
	info, err := withNode(ctx, addr, func(ctx context.Context, rdb *redis.Client) (string, error) {
		return rdb.Info(ctx, "replication").Result()
	})
	if err != nil {
		return nil, err
	}
	return infoFields(info), nil
}

// infoFields splits INFO's "name:value" lines.
func infoFields(info string) map[string]string {
	fields := map[string]string{}
	for line := range strings.SplitSeq(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields
}

// await polls cond until it returns nil and returns how long that took; it
// fails the test after clusterTimeout.
func (c *Cluster) await(what string, cond func(context.Context) error) time.Duration {
	c.t.Helper()
	return await(c.t, "cluster: "+what, cond)
}

// await polls cond until it returns nil and returns how long that took; it
// fails t after clusterTimeout. Polling is the only way to learn what other
// processes have agreed on.
func await(t testing.TB, what string, cond func(context.Context) error) time.Duration {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	tick := time.NewTicker(clusterPoll)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return time.Since(began)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: no %s within %v: %v", what, clusterTimeout, err)
		case <-tick.C:
		}
	}
}

// withNode runs fn with a client of the single node at addr.
func withNode[T any](ctx context.Context, addr string, fn func(context.Context, *redis.Client) (T, error)) (T, error) {
	rdb := redis.NewClient(nodeOptions(addr))
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	v, err := fn(ctx, rdb)
	if err != nil {
		err = fmt.Errorf("redistest: cluster node %s: %w", addr, err)
	}
	return v, err
}

// nodeOptions are those of a client of one node that fails at once while the
// node is down (see Server.NewClient).
func nodeOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:                     addr,
		MaxRetries:               -1,
		DialerRetries:            1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// ClientOptions returns the options of a go-redis client of the cluster with
// the settings that, with redisstore.NewClusterClient, make it follow a
// failover quickly, as the README documents them: the slot map is reloaded when it is a second old (go-redis
// waits a minute by default, dialing the dead master all along), a dead node
// is dialed once per attempt rather than five times, and a silent one costs
// half a second. Each call returns new options.
func (c *Cluster) ClientOptions() *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs:                      c.Addrs(),
		ClusterStateReloadInterval: time.Second,
		DialTimeout:                500 * time.Millisecond,
		DialerRetries:              1,
		ReadTimeout:                500 * time.Millisecond,
		WriteTimeout:               500 * time.Millisecond,
		// Redis 7.0 does not know the maintenance-notifications handshake.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// NewClient returns a plain redis.NewClusterClient of the cluster with
// ClientOptions, closed when t ends. It lacks the reload on failure that
// redisstore.NewClusterClient adds (this package cannot import redisstore,
// whose tests import it): build the clients of failover tests with that.
func (c *Cluster) NewClient(t testing.TB) *redis.ClusterClient {
	rdb := redis.NewClusterClient(c.ClientOptions())
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// awaitDialersGone waits up to a few seconds for go-redis's background
// dialers to end: a client that failed to dial a killed node keeps probing it
// once a second, and stops at the first probe after the client was closed.
// Leak checks would report them otherwise.
func awaitDialersGone(t testing.TB) {
	deadline := time.Now().Add(3 * time.Second)
	for dialersRunning() {
		if time.Now().After(deadline) {
			t.Logf("redistest: go-redis dialers still running 3 s after the cluster's clients closed")
			return
		}
		time.Sleep(clusterPoll) // polling goroutines of go-redis, which tell nobody when they end
	}
}

// dialersRunning reports whether a go-redis pool's background dialer runs.
func dialersRunning() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Contains(buf[:n], []byte("pool.(*ConnPool).tryDial"))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// notFound is the error of a Redis program missing from PATH; it matches
// ErrNotInstalled.
type notFound struct {
	program string
	err     error
}

func (e *notFound) Error() string {
	return "redistest: " + e.program + " not found on PATH: " + e.err.Error()
}

func (e *notFound) Unwrap() error { return e.err }

func (e *notFound) Is(target error) bool { return target == ErrNotInstalled }
