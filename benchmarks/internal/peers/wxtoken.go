package peers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/redisstore"
	"github.com/wxtoken/wxtoken/wxtest"
)

// NewWxtoken returns a wxtoken Client on the fake upstream with store, which
// the caller closes, and the HTTP client it uses (close its idle connections
// after the Client).
func NewWxtoken(env Env, store wxtoken.Store) (*wxtoken.Client, *http.Client, error) {
	hc := newHTTPClient()
	c, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithBaseURL(env.BaseURL),
		wxtoken.WithHTTPClient(hc),
		wxtoken.WithStore(store),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)),
		wxtoken.WithMinRenewInterval(0)) // the figures renew tokens of a few seconds
	return c, hc, err
}

// NewRedisV9 returns the go-redis client a wxtoken replica uses for env.
func NewRedisV9(env Env) (*redis.Client, error) {
	if env.RedisAddr == "" {
		return nil, ErrNoRedis
	}
	return redis.NewClient(&redis.Options{Addr: env.RedisAddr}), nil
}

// wxtokenExpiresIn: wxtoken renews at ExpiresAt - min(300 s, ExpiresIn/2),
// so for d under 300 s a lifetime of 2d puts the renewal d after the fetch
// (less wxtoken's jitter of up to a tenth of the margin).
func wxtokenExpiresIn(d time.Duration) int64 { return 2 * seconds(d) }

type wxtokenGetter struct {
	c   *wxtoken.Client
	hc  *http.Client
	rdb *redis.Client // nil for a MemoryStore
}

func newWxtokenMemory(env Env) (Getter, error) {
	c, hc, err := NewWxtoken(env, wxtoken.NewMemoryStore())
	if err != nil {
		return nil, err
	}
	return &wxtokenGetter{c: c, hc: hc}, nil
}

func newWxtokenRedis(env Env) (Getter, error) {
	rdb, err := NewRedisV9(env)
	if err != nil {
		return nil, err
	}
	c, hc, err := NewWxtoken(env, redisstore.New(rdb))
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return &wxtokenGetter{c: c, hc: hc, rdb: rdb}, nil
}

func (g *wxtokenGetter) Get(ctx context.Context) (string, error) { return g.c.Get(ctx) }

// Waits reports how many calls had to wait for a fetch (wxtoken's own count).
func (g *wxtokenGetter) Waits() int64 { return g.c.Stats().Waits }

func (g *wxtokenGetter) Close() error {
	err := g.c.Close()
	g.hc.CloseIdleConnections()
	if g.rdb != nil {
		if cerr := g.rdb.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
