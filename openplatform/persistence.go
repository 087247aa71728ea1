package openplatform

import (
	"context"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ConfigGetter is the part of a go-redis client that the persistence check
// needs; redis.UniversalClient has it.
type ConfigGetter interface {
	ConfigGet(ctx context.Context, parameter string) *redis.MapStringStringCmd
}

// Persistence is what CONFIG GET says of a Redis's durability.
type Persistence struct {
	AppendOnly bool   // appendonly yes: every write is logged
	Save       string // the RDB snapshot rule ("" : no snapshots)
}

// Durable reports whether Redis keeps its data across a restart: an
// append-only file, or RDB snapshots (which may lose the last minutes).
func (p Persistence) Durable() bool { return p.AppendOnly || strings.TrimSpace(p.Save) != "" }

// CheckRedisPersistence asks rdb for appendonly and save. The error is
// CONFIG's own: managed Redis services often forbid CONFIG.
func CheckRedisPersistence(ctx context.Context, rdb ConfigGetter) (Persistence, error) {
	aof, err := rdb.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return Persistence{}, err
	}
	save, err := rdb.ConfigGet(ctx, "save").Result()
	if err != nil {
		return Persistence{}, err
	}
	return Persistence{AppendOnly: strings.EqualFold(aof["appendonly"], "yes"), Save: save["save"]}, nil
}

// WarnIfNotPersistent checks rdb's persistence and logs at Error when Redis
// keeps nothing across a restart: the authorizers' refresh tokens would be
// lost with it, and every merchant would have to authorize again unless
// Recover finds them. A Redis that forbids CONFIG is logged at Warn, as
// unknown. It reports whether the data is known to be durable.
func WarnIfNotPersistent(ctx context.Context, rdb ConfigGetter, log *slog.Logger) bool {
	p, err := CheckRedisPersistence(ctx, rdb)
	switch {
	case err != nil:
		log.Warn("openplatform: could not check Redis persistence (CONFIG forbidden?); make sure it persists: refresh tokens live only as long as Redis keeps them",
			"err", err)
		return false
	case !p.Durable():
		log.Error("openplatform: REDIS PERSISTS NOTHING (appendonly no, save \"\"): a Redis restart loses every authorizer's refresh token; turn on appendonly yes",
			"appendonly", p.AppendOnly, "save", p.Save)
		return false
	case !p.AppendOnly:
		log.Warn("openplatform: Redis persists by RDB snapshots only: a restart may lose refresh tokens rotated since the last snapshot; appendonly yes is safer",
			"save", p.Save)
	}
	return true
}
