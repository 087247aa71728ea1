package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken"
)

// LoadMany reads the records of keys in one round trip per Redis node: one
// script call on a standalone or Sentinel-managed Redis, a pipeline of one
// read per key elsewhere (a Cluster, whose pipelines go-redis splits per
// node, since the keys of a batch live in many slots). Each result is what
// Load would have returned for its key, with the same size limit: a value
// over MaxRecordLen is not transferred and is corrupt, so is a key of another
// type. The error, when not nil, says that the batch could not be read (Redis
// down, a node of the Cluster failing); it matches context.DeadlineExceeded
// when Redis did not answer within the Store's timeout.
func (s *Store) LoadMany(ctx context.Context, keys []string) ([]wxtoken.LoadResult, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	recs, err := call(ctx, s, func(ctx context.Context) ([]record, error) {
		return s.readRecords(ctx, keys)
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("redisstore: load %d keys: %w", len(keys), err)
	}
	out := make([]wxtoken.LoadResult, len(keys))
	for i, rec := range recs {
		tok, err := rec.token()
		if err != nil {
			err = fmt.Errorf("redisstore: load %q: %w", keys[i], err)
		}
		out[i] = wxtoken.LoadResult{Token: tok, Err: err}
	}
	return out, nil
}

// readRecords reads the records of keys, in their order.
func (s *Store) readRecords(ctx context.Context, keys []string) ([]record, error) {
	tks := make([]string, len(keys))
	for i, k := range keys {
		tks[i] = s.tokenKey(k)
	}
	if _, ok := s.rdb.(*redis.Client); ok {
		return s.readScripted(ctx, tks)
	}
	recs, err := s.readPipelined(ctx, tks)
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A node that restarted, or that has not seen the script yet:
		// load it everywhere and try once more.
		if err := s.read.Load(ctx, s.rdb).Err(); err != nil {
			return nil, err
		}
		recs, err = s.readPipelined(ctx, tks)
	}
	return recs, err
}

// readScripted reads every key of tks with one call of luaReadMany.
func (s *Store) readScripted(ctx context.Context, tks []string) ([]record, error) {
	vs, err := s.readMany.Run(ctx, s.rdb, tks, MaxRecordLen).Slice()
	if err != nil {
		return nil, err
	}
	if len(vs) != len(tks) {
		return nil, fmt.Errorf("unexpected reply: %d records for %d keys", len(vs), len(tks))
	}
	recs := make([]record, len(vs))
	for i, v := range vs {
		if recs[i], err = parseRecord(v, nil); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// readPipelined reads every key of tks with a pipeline of luaRead calls.
func (s *Store) readPipelined(ctx context.Context, tks []string) ([]record, error) {
	cmds := make([]*redis.Cmd, len(tks))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range tks {
			cmds[i] = s.read.EvalSha(ctx, p, []string{k}, MaxRecordLen)
		}
		return nil
	})
	recs := make([]record, len(cmds))
	for i, cmd := range cmds {
		rec, err := parseRecord(cmd.Result())
		if err != nil {
			return nil, err // the batch failed, not the record
		}
		recs[i] = rec
	}
	return recs, nil
}
