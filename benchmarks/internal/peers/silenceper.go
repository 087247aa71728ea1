package peers

import (
	"context"
	"net/http"
	"strings"
	"time"

	redisv8 "github.com/go-redis/redis/v8"
	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	"github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/util"
	"github.com/wxtoken/wxtoken/wxtest"
)

// silenceperOrigin is the origin silenceper/wechat writes into its token URL.
const silenceperOrigin = "https://api.weixin.qq.com"

// NewSilenceper returns silenceper/wechat's official account on the fake
// upstream with the cache c, and the HTTP client it now uses.
//
// silenceper/wechat hard-codes https://api.weixin.qq.com and keeps its HTTP
// client and its URL hook in package variables (util.DefaultHTTPClient,
// util.SetURIModifier), so this sets both for the whole process: the last call
// wins, and every silenceper peer alive must use the same Env. Call it before
// any goroutine uses a silenceper peer, never during.
func NewSilenceper(env Env, c cache.Cache) (*officialaccount.OfficialAccount, *http.Client) {
	hc := newHTTPClient()
	util.DefaultHTTPClient = hc
	base := env.BaseURL
	util.SetURIModifier(func(uri string) string {
		if rest, ok := strings.CutPrefix(uri, silenceperOrigin); ok {
			return base + rest
		}
		return uri
	})
	oa := officialaccount.NewOfficialAccount(&config.Config{
		AppID:     wxtest.DefaultAppID,
		AppSecret: wxtest.DefaultSecret,
		Cache:     c,
	})
	return oa, hc
}

// NewSilenceperRedis returns silenceper/wechat's Redis cache on env's Redis,
// and the go-redis v8 client inside it, for the caller to close.
func NewSilenceperRedis(env Env) (*cache.Redis, *redisv8.Client, error) {
	if env.RedisAddr == "" {
		return nil, nil, ErrNoRedis
	}
	// IdleTimeout -1 keeps the client that NewRedis makes (and that SetConn
	// replaces at once) from starting an idle reaper we could never stop.
	r := cache.NewRedis(context.Background(), &cache.RedisOpts{Host: env.RedisAddr, IdleTimeout: -1})
	rdb := redisv8.NewClient(&redisv8.Options{Addr: env.RedisAddr})
	r.SetConn(rdb)
	return r, rdb, nil
}

// silenceperExpiresIn: silenceper caches a token for expires_in - 1500 s,
// then the next caller fetches.
func silenceperExpiresIn(d time.Duration) int64 { return 1500 + seconds(d) }

type silenceperGetter struct {
	oa  *officialaccount.OfficialAccount
	hc  *http.Client
	rdb *redisv8.Client // nil for the memory cache
}

func newSilenceperMemory(env Env) (Getter, error) {
	oa, hc := NewSilenceper(env, cache.NewMemory())
	return &silenceperGetter{oa: oa, hc: hc}, nil
}

func newSilenceperRedis(env Env) (Getter, error) {
	r, rdb, err := NewSilenceperRedis(env)
	if err != nil {
		return nil, err
	}
	oa, hc := NewSilenceper(env, r)
	return &silenceperGetter{oa: oa, hc: hc, rdb: rdb}, nil
}

func (g *silenceperGetter) Get(ctx context.Context) (string, error) {
	return g.oa.GetAccessTokenContext(ctx)
}

func (g *silenceperGetter) Close() error {
	g.hc.CloseIdleConnections()
	if g.rdb != nil {
		return g.rdb.Close()
	}
	return nil
}
