package redisstore

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// NewClusterClient returns redis.NewClusterClient(opt) made to follow a
// failover as soon as the cluster has one: whenever a node fails to answer
// (a refused or broken connection, a timeout) or answers CLUSTERDOWN, the
// client reloads its slot map at once (go-redis coalesces the reloads, at
// most one every 200 ms), so that the retries of the same command already go
// to the promoted replica.
//
// A plain ClusterClient reloads its map only on MOVED or ASK answers, which
// a dead master never sends, and when the map is older than
// ClusterStateReloadInterval (60 s unless set): meanwhile every command for
// the dead master's slots fails, and replicas that cannot read or lock the
// Store fetch tokens of their own. redis.NewUniversalClient cannot set that
// interval, so build the client with this function or
// redis.NewClusterClient. The README's "Redis Cluster and Sentinel" section
// gives the options that go with it and what a failover costs.
//
// opt is passed on unchanged. The client is the caller's to Close.
func NewClusterClient(opt *redis.ClusterOptions) *redis.ClusterClient {
	rdb := redis.NewClusterClient(opt)
	// Nodes are created on first use, so this reaches every node.
	rdb.OnNewNode(func(node *redis.Client) { node.AddHook(reloadOnFailure{rdb}) })
	return rdb
}

// reloadOnFailure is a hook on each node's client of a cluster client that
// reloads the cluster's slot map when the node fails. On a node it sees each
// attempt of a command, not only the last.
type reloadOnFailure struct{ cluster *redis.ClusterClient }

func (h reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if nodeFailed(err) {
			h.cluster.ReloadState(ctx)
		}
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if nodeFailed(err) {
			h.cluster.ReloadState(ctx)
		}
		return err
	}
}

// nodeFailed reports whether err says that a node did not serve a command,
// rather than that it answered it: every error but Redis's own replies, of
// which only CLUSTERDOWN (the node knows no master for the slot) counts.
func nodeFailed(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		return strings.HasPrefix(reply.Error(), "CLUSTERDOWN")
	}
	return true
}
