package openplatform_test

// Tests against a real Redis, in fake time: Redis inside the synctest bubble
// works as fleet_test.go at the root explains (a goroutine waiting on a socket
// is not durably blocked, so the fake clock stands still during a round trip).
// redistest starts the server outside the bubble; its restarts are done by a
// goroutine outside the bubble too, since redistest polls in real time.

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/logbuf"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/openplatform"
	"github.com/wxtoken/wxtoken/redisstore"
	"github.com/wxtoken/wxtoken/wxtest"
)

// restarter restarts rs on request from inside a bubble: send on ask, then
// receive from done. Its channels are made outside the bubble.
type restarter struct {
	ask  chan struct{}
	done chan struct{}
}

func newRestarter(t *testing.T, rs *redistest.Server) restarter {
	r := restarter{ask: make(chan struct{}), done: make(chan struct{})}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-r.ask:
				rs.Stop()
				rs.Restart()
				r.done <- struct{}{}
			case <-stop:
				return
			}
		}
	})
	t.Cleanup(func() { close(stop); wg.Wait() })
	return r
}

func (r restarter) restart() {
	r.ask <- struct{}{}
	<-r.done
}

// reconnect pings until rdb answers again after a restart: the pool's old
// connections fail once each.
func reconnect(t *testing.T, rdb *redis.Client) {
	t.Helper()
	for range 50 {
		if rdb.Ping(context.Background()).Err() == nil {
			return
		}
	}
	t.Fatal("Redis did not answer after its restart")
}

func TestAuthorizer48HoursWithRotationOnRedis(t *testing.T) {
	rs := redistest.StartPersistent(t)
	restarts := newRestarter(t, rs)
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler(wxtest.WithRefreshTokenRotation())
		rdb := rs.NewClient(t)
		store := redisstore.New(rdb)
		p, logs := newPlatform(t, srv, store, component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)

		for step := time.Duration(0); step < 48*time.Hour; step += 10 * time.Minute {
			if step == 24*time.Hour {
				synctest.Wait()
				before := load(t, store, authorizerKey(merchant))
				restarts.restart() // with appendonly yes
				reconnect(t, rdb)
				require.Equal(t, before, load(t, store, authorizerKey(merchant)), "the record survived the restart")
			}
			if step == 47*time.Hour {
				// A replica started at hour 47: a new Platform with fresh state.
				late, _ := newPlatform(t, srv, store, component)
				tok, err := late.Token(t.Context(), merchant)
				require.NoError(t, err, "the late replica works without a re-authorization")
				assert.Equal(t, wxtest.CodeOK, srv.CheckToken(tok))
			}
			pushTicket(t, srv, p) // WeChat's ten-minute push
			tok, err := p.Token(t.Context(), merchant)
			require.NoError(t, err, "at %v", step)
			require.Equal(t, wxtest.CodeOK, srv.CheckToken(tok), "at %v", step)
			time.Sleep(10 * time.Minute)
		}
		synctest.Wait()
		exchanges := srv.PlatformCalls(wxtest.PathAuthorizerToken)
		issued := srv.RefreshTokensIssued(wxtest.DefaultComponentAppID, merchant)
		t.Logf("48 h: %d exchanges, %d refresh tokens issued, %d 61023 answers, %d authorizations",
			exchanges, issued, srv.Rejections()[openplatform.CodeRefreshTokenInvalid], srv.PlatformCalls(wxtest.PathQueryAuth))
		assert.GreaterOrEqual(t, exchanges, 24, "renewed every 2 h")
		assert.Equal(t, exchanges+1, issued, "every exchange rotated")
		assert.Zero(t, srv.Rejections()[openplatform.CodeRefreshTokenInvalid], "0 refresh tokens lost")
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathQueryAuth), "0 re-authorizations")
		assert.Equal(t, srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, merchant),
			load(t, store, authorizerKey(merchant)).Refresh)
		assert.NotContains(t, logs.String(), srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, merchant))
	})
}

func TestFleetOfAuthorizersOnRedis(t *testing.T) {
	authorizers, day := 1000, 24*time.Hour
	if testing.Short() {
		authorizers, day = 100, 6*time.Hour
	}
	rs := redistest.Start(t)
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler(wxtest.WithRefreshTokenRotation(), wxtest.WithExchangeLatency(200*time.Millisecond))
		rdb := rs.NewClient(t)
		store := redisstore.New(rdb)
		quiet := slog.New(slog.DiscardHandler)
		var replicas []*openplatform.Platform
		for range 4 {
			p, err := openplatform.New(component, openplatform.WithStore(store),
				openplatform.WithBaseURL(srv.URL()), openplatform.WithHTTPClient(srv.Client()),
				openplatform.WithLogger(quiet), openplatform.WithClientOptions(wxtoken.WithStoreSync(0)))
			require.NoError(t, err)
			replicas = append(replicas, p)
		}
		pushTicket(t, srv, replicas[0])
		appIDs := make([]string, authorizers)
		for i := range appIDs {
			appIDs[i] = fmt.Sprintf("wx%016x", i+1)
			authorize(t, srv, replicas[i%4], appIDs[i])
		}
		var wg sync.WaitGroup
		for _, p := range replicas { // cold replicas: every authorizer on each
			wg.Go(func() {
				for _, id := range appIDs {
					_, err := p.Token(context.Background(), id)
					assert.NoError(t, err)
				}
			})
		}
		wg.Wait()
		for elapsed := time.Duration(0); elapsed < day; elapsed += 10 * time.Minute {
			pushTicket(t, srv, replicas[int(elapsed/(10*time.Minute))%4])
			time.Sleep(10 * time.Minute) // the Registries renew in the background meanwhile
		}
		synctest.Wait()
		lost := 0
		for _, id := range appIDs {
			rec, err := store.Load(context.Background(), authorizerKey(id))
			if err != nil || rec.Refresh != srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, id) {
				lost++
			}
		}
		exchanges := srv.PlatformCalls(wxtest.PathAuthorizerToken)
		t.Logf("%d authorizers, 4 replicas, %v: %d exchanges (%.1f per authorizer), %d overlapping, %d refresh tokens lost, %d 61023",
			authorizers, day, exchanges, float64(exchanges)/float64(authorizers), srv.OverlappingExchanges(), lost,
			srv.Rejections()[openplatform.CodeRefreshTokenInvalid])
		assert.Zero(t, srv.OverlappingExchanges(), "one replica exchanges a refresh token at a time")
		assert.Zero(t, lost, "every final refresh token is the one wxtest issued last")
		assert.Zero(t, srv.Rejections()[openplatform.CodeRefreshTokenInvalid])
		assert.LessOrEqual(t, exchanges, authorizers*(int(day/(6870*time.Second))+1), "one exchange per authorizer per renewal")
		for _, p := range replicas {
			p.Close()
		}
	})
}

func TestRedisPersistenceCheck(t *testing.T) {
	off := redistest.Start(t)
	logs := &logbuf.Buffer{}
	assert.False(t, openplatform.WarnIfNotPersistent(t.Context(), off.NewClient(t), logs.Logger(slog.LevelInfo)))
	assert.Contains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "REDIS PERSISTS NOTHING")

	on := redistest.StartPersistent(t)
	p, err := openplatform.CheckRedisPersistence(t.Context(), on.NewClient(t))
	require.NoError(t, err)
	assert.True(t, p.AppendOnly)
	assert.True(t, p.Durable())
}

// forbidding is a Redis that refuses CONFIG, as managed services do.
type forbidding struct{}

func (forbidding) ConfigGet(ctx context.Context, parameter string) *redis.MapStringStringCmd {
	cmd := redis.NewMapStringStringCmd(ctx, "config", "get", parameter)
	cmd.SetErr(fmt.Errorf("ERR unknown command 'CONFIG'"))
	return cmd
}

func TestPersistenceCheckToleratesForbiddenConfig(t *testing.T) {
	logs := &logbuf.Buffer{}
	assert.False(t, openplatform.WarnIfNotPersistent(t.Context(), forbidding{}, logs.Logger(slog.LevelInfo)))
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "could not check")
}

// TestFleetWithoutLockOverlaps is the control of TestFleetOfAuthorizersOnRedis:
// the same Redis with its lock hidden, so that the count of overlapping
// exchanges is seen to catch what the lock prevents.
func TestFleetWithoutLockOverlaps(t *testing.T) {
	rs := redistest.Start(t)
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler(wxtest.WithRefreshTokenRotation(), wxtest.WithExchangeLatency(200*time.Millisecond))
		store := struct{ wxtoken.Store }{redisstore.New(rs.NewClient(t))} // a Store, not a Locker
		var replicas []*openplatform.Platform
		for range 4 {
			p, _ := newPlatform(t, srv, store, component)
			replicas = append(replicas, p)
		}
		pushTicket(t, srv, replicas[0])
		authorize(t, srv, replicas[0], merchant)
		time.Sleep(2 * time.Hour)
		var wg sync.WaitGroup
		for _, p := range replicas {
			wg.Go(func() { _, _ = p.Token(context.Background(), merchant) })
		}
		wg.Wait()
		t.Logf("without the lock: %d overlapping exchanges, %d 61023", srv.OverlappingExchanges(),
			srv.Rejections()[openplatform.CodeRefreshTokenInvalid])
		assert.Positive(t, srv.OverlappingExchanges())
	})
}
