package redisstore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
)

// aclClient creates the ACL user name with the rules given after ~* +@all
// and returns a client logged in as it.
func aclClient(t *testing.T, admin *redis.Client, srv *redistest.Server, name string, rules ...string) *redis.Client {
	t.Helper()
	args := []any{"ACL", "SETUSER", name, "reset", "on", ">pw", "~*", "+@all"}
	for _, r := range rules {
		args = append(args, r)
	}
	require.NoError(t, admin.Do(t.Context(), args...).Err())
	rdb := redis.NewClient(&redis.Options{
		Addr: srv.Addr(), Username: name, Password: "pw", MaxRetries: -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// A user that may not publish on the channel (Redis 7's default for a new
// ACL user, acl-pubsub-default resetchannels) still saves: the record is
// written, Save returns nil, and SaveUnlock releases its lock.
func TestSaveByAUserWithoutTheChannel(t *testing.T) {
	t.Parallel()
	_, admin, srv := setup(t)
	st := New(aclClient(t, admin, srv, "app", "resetchannels"))
	ctx := t.Context()
	tok := tokenAt(time.Now(), "tok-1")

	require.NoError(t, st.Save(ctx, "k1", tok))
	got, err := st.Load(ctx, "k1")
	require.NoError(t, err)
	requireSameToken(t, tok, got)

	lk, rec, err := st.LockLoad(ctx, "k2", time.Minute)
	require.NoError(t, err)
	require.ErrorIs(t, rec.Err, wxtoken.ErrNotFound)
	require.NoError(t, lk.SaveUnlock(ctx, tok))
	assert.Zero(t, admin.Exists(ctx, st.lockKey("k2")).Val(), "the lock is released")
	got, err = st.Load(ctx, "k2")
	require.NoError(t, err)
	requireSameToken(t, tok, got)
}

// With the channel granted (&<prefix>changed), the same user's Saves are
// announced: the permission the README asks for is enough.
func TestSaveByAUserWithTheChannelIsAnnounced(t *testing.T) {
	t.Parallel()
	_, admin, srv := setup(t)
	rdb := aclClient(t, admin, srv, "app", "resetchannels", "&"+DefaultPrefix+"changed")
	st := New(rdb, WithChangeFeed())
	w := newChanges()
	require.NoError(t, st.Watch(t.Context(), w.notify))
	require.NoError(t, st.Save(t.Context(), "k1", tokenAt(time.Now(), "tok-1")))
	assert.Equal(t, wxtoken.StoreChange{Key: "k1"}, w.next(t))
}

// scriptHook runs fn around every run of the script with the given hash.
type scriptHook struct {
	hash string
	fn   func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error
}

func (h *scriptHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *scriptHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *scriptHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); len(a) > 1 && a[0] == "evalsha" && a[1] == h.hash {
			return h.fn(ctx, cmd, next)
		}
		return next(ctx, cmd)
	}
}

// hooked returns a Store whose client passes runs of the script that pick
// selects through fn, and a plain client of the same server.
func hooked(t *testing.T, pick func(*Store) *redis.Script, fn func(context.Context, redis.Cmder, redis.ProcessHook) error) (*Store, *redis.Client) {
	t.Helper()
	_, admin, srv := setup(t)
	rdb := srv.NewClient(t)
	st := New(rdb)
	warmScripts(t, st)
	rdb.AddHook(&scriptHook{hash: pick(st).Hash(), fn: fn})
	return st, admin
}

// A SaveUnlock whose script fails (here before it reached Redis, as a
// timeout would) still releases the lock, instead of leaving it to lapse a
// whole lease later.
func TestSaveUnlockReleasesWhenTheScriptFails(t *testing.T) {
	t.Parallel()
	injected := errors.New("injected failure")
	st, admin := hooked(t, func(s *Store) *redis.Script { return s.saveUnl },
		func(_ context.Context, cmd redis.Cmder, _ redis.ProcessHook) error {
			cmd.SetErr(injected)
			return injected
		})
	ctx := t.Context()
	lk, _, err := st.LockLoad(ctx, "k", time.Minute)
	require.NoError(t, err)
	err = lk.SaveUnlock(ctx, tokenAt(time.Now(), "tok-1"))
	require.ErrorIs(t, err, injected)
	assert.Zero(t, admin.Exists(ctx, st.lockKey("k")).Val(), "the lock is released")
}

// When the record changed under the lock, SaveUnlock's script does not write
// and must not release either: the lock is still held while the fallback
// compare-and-set runs, so that no other replica takes it, reads the old
// record and fetches a duplicate. It is released after.
func TestSaveUnlockHoldsTheLockThroughItsFallback(t *testing.T) {
	t.Parallel()
	var lockedDuringFallback atomic.Int64
	lockedDuringFallback.Store(-1)
	var st *Store
	var admin *redis.Client
	st, admin = hooked(t, func(s *Store) *redis.Script { return s.saveUnl },
		func(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
			err := next(ctx, cmd)
			if n, _ := cmd.(*redis.Cmd).Int(); n == 0 {
				lockedDuringFallback.Store(admin.Exists(ctx, st.lockKey("k")).Val())
			}
			return err
		})
	ctx := t.Context()
	now := time.Now()
	require.NoError(t, st.Save(ctx, "k", tokenAt(now.Add(-118*time.Minute), "tok-0")))
	lk, _, err := st.LockLoad(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.NoError(t, New(admin).Save(ctx, "k", tokenAt(now.Add(-115*time.Minute), "tok-b"))) // lockless, stale

	require.NoError(t, lk.SaveUnlock(ctx, tokenAt(now, "tok-a")))
	assert.Equal(t, int64(1), lockedDuringFallback.Load(), "the lock is held while the fallback save runs")
	assert.Zero(t, admin.Exists(ctx, st.lockKey("k")).Val(), "released after")
	got, err := st.Load(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "tok-a", got.AccessToken)
}

// On a redis.Ring the feed would hear only the Saves of the shard its
// channel hashes to while claiming to be up: Watch refuses, so that the
// engine keeps re-reading periodically, and no subscription is opened.
func TestWatchOnARingIsUnsupported(t *testing.T) {
	t.Parallel()
	a, b := redistest.Start(t), redistest.Start(t)
	ring := redis.NewRing(&redis.RingOptions{
		Addrs:      map[string]string{"a": a.Addr(), "b": b.Addr()},
		MaxRetries: -1,
	})
	t.Cleanup(func() { _ = ring.Close() })
	st := New(ring, WithChangeFeed())
	err := st.Watch(t.Context(), func(wxtoken.StoreChange) {})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	for _, srv := range []*redistest.Server{a, b} {
		assert.Zero(t, numSub(t, srv.NewClient(t), st.channel()), "no subscription on %s", srv.Addr())
	}
	require.NoError(t, st.Save(t.Context(), "k", tokenAt(time.Now(), "tok-1")), "the Store works otherwise")
}
