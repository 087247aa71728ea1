package wxtoken_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
	"github.com/wxtoken/wxtoken/wxtest"
)

// With Redis down and go-redis at its defaults (command retries with
// backoff, several dials per attempt: 5.2 s per call), a cold Get still
// answers in about the store timeout: the Client bounds its own Store calls,
// does not try the lock of a Store it could not read, and hands the token out
// before the failing Save.
func TestRedisDownColdGetIsBoundedWithDefaultClientOptions(t *testing.T) {
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()}) // go-redis defaults
	t.Cleanup(func() { _ = rdb.Close() })
	rs.Stop()
	srv := wxtest.NewHandler()
	c := newReplica(t, srv, redisstore.New(rdb))

	start := time.Now()
	tok, err := c.Get(t.Context())
	elapsed := time.Since(start)
	require.NoError(t, err)
	assert.Equal(t, srv.CurrentToken(appID), tok)
	assert.Equal(t, int64(1), c.Stats().Fetches)
	t.Logf("cold Get with Redis down, default go-redis options: %s (store timeout %s)",
		elapsed.Round(time.Millisecond), wxtoken.DefaultStoreTimeout)
	// A generous bound on a real-time call: it took 5.2 s before the fix.
	assert.Less(t, elapsed, 3*wxtoken.DefaultStoreTimeout)
}
