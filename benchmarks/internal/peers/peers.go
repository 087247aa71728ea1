// Package peers builds the access_token caches the benchmarks compare, each
// pointed at the same fake upstream: wxtoken, silenceper/wechat's official
// account token with its memory and its Redis cache, and x/oauth2's
// ReuseTokenSource over a WeChat token source.
package peers

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Env is what a peer needs: the fake WeChat origin, and a Redis address for the
// peers that keep their cache in Redis ("" when there is none).
type Env struct {
	BaseURL   string
	RedisAddr string
}

// Getter is one replica's handle on the access_token.
type Getter interface {
	Get(ctx context.Context) (string, error)
	Close() error
}

// Peer is one library configuration under test.
type Peer struct {
	Name string
	// Redis reports that the cache lives in Redis: every Getter made from the
	// same Env shares it, as replicas of a service would.
	Redis bool
	// New makes one Getter, as one replica (process) of a service would.
	New func(Env) (Getter, error)
	// ExpiresInFor returns the expires_in, in seconds, that makes this peer's
	// own renewal rule start a renewal d after a fetch. The renewal figure
	// uses it so that every peer reaches its renewal point equally soon.
	ExpiresInFor func(d time.Duration) int64
}

// ErrNoRedis is returned by New of a Redis peer when Env has no Redis.
var ErrNoRedis = errors.New("peers: no Redis address given")

// All returns every peer, wxtoken first. Redis peers are included whether or
// not Redis is available; their New fails with ErrNoRedis without one.
func All() []Peer {
	return []Peer{
		{Name: "wxtoken/memory", New: newWxtokenMemory, ExpiresInFor: wxtokenExpiresIn},
		{Name: "wxtoken/redis", Redis: true, New: newWxtokenRedis, ExpiresInFor: wxtokenExpiresIn},
		{Name: "silenceper/memory", New: newSilenceperMemory, ExpiresInFor: silenceperExpiresIn},
		{Name: "silenceper/redis", Redis: true, New: newSilenceperRedis, ExpiresInFor: silenceperExpiresIn},
		{Name: "oauth2/reuse", New: newOAuth2, ExpiresInFor: oauth2ExpiresIn},
	}
}

// seconds rounds d up to whole seconds, the unit of expires_in.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// newHTTPClient gives every peer the same kind of client: Go's default
// transport settings and a finite timeout.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
	}
}
