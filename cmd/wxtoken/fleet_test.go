package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
	"github.com/wxtoken/wxtoken/wxtest"
)

// fleetToken has a service's Client, on rdb, fetch the account's token, as a
// fleet sharing that Redis would have.
func fleetToken(t *testing.T, srv *wxtest.Server, store wxtoken.Store) string {
	t.Helper()
	c, err := wxtoken.New(appID, secret, wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(store),
		wxtoken.WithBackgroundRefresh(false))
	require.NoError(t, err)
	defer c.Close()
	tok, err := c.Get(context.Background())
	require.NoError(t, err)
	return tok
}

func TestGetWithRedisSharesTheFleetsToken(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	srv := newServer(t)
	fleet := fleetToken(t, srv, redisstore.New(redis.NewClient(t)))
	require.Equal(t, 1, srv.TokenCalls())

	args := []string{"get", "--base-url", srv.URL(), "--redis", "redis://" + redis.Addr() + "/0"}
	r := runArgs(credentials, args...)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, fleet+"\n", r.stdout)
	assert.Empty(t, r.stderr)

	j := runArgs(credentials, append(args, "--json")...)
	require.Equal(t, exitOK, j.code, j.stderr)
	var out tokenJSON
	require.NoError(t, json.Unmarshal([]byte(j.stdout), &out))
	assert.Equal(t, fleet, out.AccessToken)
	assert.Equal(t, "store", out.Source)
	assert.Equal(t, 1, srv.TokenCalls(), "the command fetched nothing: Redis held the fleet's token")
}

func TestGetWithRedisFetchesOnceAndSavesForTheFleet(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	srv := newServer(t)
	args := []string{"get", "--base-url", srv.URL(), "--redis", "redis://" + redis.Addr(),
		"--redis-prefix", "svc:", "--store-key", "shop"}
	r := runArgs(credentials, args...)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, 1, srv.TokenCalls())
	saved, err := redisstore.New(redis.NewClient(t), redisstore.WithPrefix("svc:")).Load(context.Background(), "shop")
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(r.stdout), saved.AccessToken)
}

func TestGetRefusesToFetchWhenRedisDoesNotAnswer(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	start := time.Now()
	r := runArgs(credentials, "get", "--base-url", srv.URL(), "--redis", "redis://:hunter2pass@"+addr)
	assert.Less(t, time.Since(start), 3*time.Second, "one dial, not five")
	assert.Equal(t, exitError, r.code)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "does not answer, so the fleet's token cannot be read; not fetching")
	assert.NotContains(t, r.stderr, "hunter2pass")
	assert.Zero(t, srv.TokenCalls())
}

func TestRedisURLs(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"redis://:pw@10.0.0.1:6380/2":                                "*redis.Client 10.0.0.1:6380",
		"rediss://10.0.0.1:6380":                                     "*redis.Client 10.0.0.1:6380",
		"redis+cluster://10.0.0.1:7000?addr=10.0.0.2:7000":           "*redis.ClusterClient 10.0.0.1:7000",
		"redis+sentinel://:pw@10.0.0.1:26379/1?master=main&addr=h:1": "*redis.Client 10.0.0.1:26379",
	} {
		rdb, addr, err := redisClient(raw)
		require.NoError(t, err, raw)
		assert.Equal(t, want, fmt.Sprintf("%T %s", rdb, addr), raw)
		_ = rdb.Close()
	}
	for _, raw := range []string{"10.0.0.1:6379", "http://:pw@h:1", "redis+sentinel://:pw@h:1", "redis://:pw@h:1/notadb"} {
		_, _, err := redisClient(raw)
		require.Error(t, err, raw)
		assert.NotContains(t, err.Error(), "pw@", raw)
		assert.Contains(t, err.Error(), "--redis: ", raw)
	}
}
