package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/redisstore"
)

// Where a command keeps the token. A token fetched by a run that cannot keep
// it is not only lost: it supersedes the one every other process of the
// account uses (WeChat invalidates the previous token five minutes after each
// fetch). So a command fetches only when the token will persist, in the
// folder or the Redis the user named or the library's default folder, or when
// --no-store says that is intended.
const (
	storeFile  = "file"  // a FileStore: --store-dir, or the user's cache folder
	storeRedis = "redis" // a redisstore.Store shared with a fleet: --redis
	storeNone  = "none"  // --no-store: memory only
)

// openedStore is the Store a command uses, and what to release after.
type openedStore struct {
	wxtoken.Store
	kind  string
	where string // a folder, or the Redis address (never its password)
	close func()
}

// errNoPersistence is a usage error: nothing would keep a fetched token.
var errNoPersistence = errors.New("nowhere to keep the token")

// openStore opens the Store cfg names. Only a usage error comes back as
// usageErr; a Redis that does not answer is a plain failure.
func (c *cli) openStore(ctx context.Context, cfg accountConfig) (*openedStore, error) {
	switch {
	case cfg.noStore:
		return &openedStore{Store: wxtoken.NewMemoryStore(), kind: storeNone, where: "memory", close: func() {}}, nil
	case cfg.redisURL != "":
		return openRedis(ctx, cfg)
	}
	dir := cfg.storeDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, usageErr{fmt.Errorf("%w: no cache folder (%w)", errNoPersistence, err)}
		}
		dir = filepath.Join(base, "wxtoken")
	}
	fs, err := wxtoken.NewFileStore(dir)
	if err != nil {
		return nil, usageErr{fmt.Errorf("%w: %w", errNoPersistence, err)}
	}
	return &openedStore{Store: fs, kind: storeFile, where: dir, close: func() {}}, nil
}

// openRedis connects to the Redis of cfg.redisURL and checks that it answers:
// a cold run that could not read it would fetch a token of its own and
// supersede the fleet's.
func openRedis(ctx context.Context, cfg accountConfig) (*openedStore, error) {
	rdb, addr, err := redisClient(cfg.redisURL)
	if err != nil {
		return nil, usageErr{err}
	}
	st := &openedStore{
		Store: redisstore.New(rdb, redisstore.WithPrefix(cfg.redisPrefix)),
		kind:  storeRedis, where: addr,
		close: func() { _ = rdb.Close() },
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		st.close()
		return nil, fmt.Errorf("--redis: Redis at %s does not answer, so the fleet's token cannot be read; "+
			"not fetching one that would supersede it: %w", addr, err)
	}
	return st, nil
}

// redisClient makes the go-redis client for a --redis URL:
//
//	redis://[user:password@]host:port[/db]          one server (rediss:// for TLS, unix:// too)
//	redis+cluster://host:port?addr=host2:port2      a Cluster, seeded by every address given
//	redis+sentinel://host:port/db?master=NAME&addr=host2:port2
//	                                                Sentinels watching the master NAME
//
// addr is the first address, to name in messages. Errors never quote the URL,
// which may hold a password.
func redisClient(raw string) (rdb redis.UniversalClient, addr string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("--redis: %s (the URL is not repeated here: it may hold a password)", why)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" && u.Scheme != "unix" {
		return nil, "", bad("not a URL such as redis://host:6379/0")
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
		opts, err := redis.ParseURL(raw)
		if err != nil {
			return nil, "", bad("not a Redis URL")
		}
		if opts.DialerRetries == 0 {
			opts.DialerRetries = 1 // a Redis that is down costs a fraction of a second, not five dials
		}
		opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		return redis.NewClient(opts), opts.Addr, nil
	case "redis+cluster", "rediss+cluster":
		u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
		opts, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, "", bad("not a Redis Cluster URL")
		}
		if opts.DialerRetries == 0 {
			opts.DialerRetries = 1
		}
		opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		return redis.NewClusterClient(opts), opts.Addrs[0], nil
	case "redis+sentinel", "rediss+sentinel":
		return sentinelClient(u, bad)
	}
	return nil, "", bad("its scheme is not redis, rediss, unix, redis+cluster or redis+sentinel")
}

// sentinelClient makes a failover client from a redis+sentinel URL.
func sentinelClient(u *url.URL, bad func(string) error) (redis.UniversalClient, string, error) {
	q := u.Query()
	master := q.Get("master")
	if master == "" {
		return nil, "", bad("a redis+sentinel URL needs ?master=NAME")
	}
	// Parse the rest as a plain URL of the first Sentinel, for the password,
	// the database and TLS.
	plain := *u
	plain.Scheme = strings.TrimSuffix(u.Scheme, "+sentinel")
	q.Del("master")
	addrs := append([]string{u.Host}, q["addr"]...)
	q.Del("addr")
	plain.RawQuery = q.Encode()
	opts, err := redis.ParseURL(plain.String())
	if err != nil {
		return nil, "", bad("not a Redis URL")
	}
	fo := &redis.FailoverOptions{
		MasterName: master, SentinelAddrs: addrs,
		Username: opts.Username, Password: opts.Password, DB: opts.DB, TLSConfig: opts.TLSConfig,
		DialerRetries: 1,
	}
	return redis.NewFailoverClient(fo), addrs[0], nil
}

// checkReadable reads key from st before anything may fetch. A Store that
// holds a valid token is fine, and so is one that holds none; one that
// cannot be read is shared state we cannot see, and fetching then could
// supersede a token other processes use.
func checkReadable(ctx context.Context, st *openedStore, key string) error {
	if st.kind == storeNone {
		return nil
	}
	_, err := st.Load(ctx, key)
	if err == nil || errors.Is(err, wxtoken.ErrNotFound) || errors.Is(err, wxtoken.ErrCorrupt) {
		return nil
	}
	return fmt.Errorf("the store (%s %s) could not be read, so not fetching a token that could supersede "+
		"the one other processes use: %w", st.kind, st.where, err)
}
