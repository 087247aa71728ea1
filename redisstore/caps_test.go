package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
)

// trips counts what a go-redis client sends: round trips (a pipeline is one)
// and commands (a pipeline's each).
type trips struct{ rounds, cmds atomic.Int64 }

func (c *trips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *trips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.rounds.Add(1)
		c.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (c *trips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.rounds.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// counted returns a Store whose client counts its round trips.
func counted(t *testing.T, opts ...Option) (*Store, *redis.Client, *trips) {
	t.Helper()
	_, rdb, srv := setup(t)
	counting := srv.NewClient(t)
	tr := &trips{}
	counting.AddHook(tr)
	return New(counting, opts...), rdb, tr
}

// LoadMany answers every key as Load does, in order and in one round trip:
// tokens, missing keys, duplicates, a key of another type and an oversized
// value (corrupt, and never transferred).
func TestLoadManyMatchesLoad(t *testing.T) {
	t.Parallel()
	st, rdb, tr := counted(t)
	ctx := t.Context()
	now := time.Now()
	require.NoError(t, st.Save(ctx, "a", tokenAt(now, "tok-a")))
	require.NoError(t, st.Save(ctx, "b", tokenAt(now.Add(-time.Minute), "tok-b")))
	require.NoError(t, rdb.HSet(ctx, st.tokenKey("hash"), "f", "v").Err())
	require.NoError(t, rdb.Set(ctx, st.tokenKey("huge"), strings.Repeat("x", MaxRecordLen+1), 0).Err())
	require.NoError(t, rdb.Set(ctx, st.tokenKey("junk"), "{not json", 0).Err())
	keys := []string{"a", "missing", "b", "hash", "huge", "junk", "a"}
	_, _ = st.LoadMany(ctx, keys) // loads the script
	tr.rounds.Store(0)

	res, err := st.LoadMany(ctx, keys)
	require.NoError(t, err)
	assert.Equal(t, int64(1), tr.rounds.Load(), "round trips for one batch")
	require.Len(t, res, len(keys))
	for i, k := range keys {
		want, wantErr := st.Load(ctx, k)
		if wantErr != nil {
			assert.Equal(t, wantErr.Error(), res[i].Err.Error(), "key %s", k)
			continue
		}
		require.NoError(t, res[i].Err, "key %s", k)
		requireSameToken(t, want, res[i].Token)
	}
	assert.ErrorIs(t, res[1].Err, wxtoken.ErrNotFound)
	for _, i := range []int{3, 4, 5} {
		assert.ErrorIs(t, res[i].Err, wxtoken.ErrCorrupt, "key %s", keys[i])
	}
	none, err := st.LoadMany(ctx, nil)
	assert.NoError(t, err)
	assert.Empty(t, none)
}

// Through a client other than *redis.Client (a Cluster's, here a Ring of one
// shard standing in for it), LoadMany pipelines one read per key, loading the
// script after NOSCRIPT, and answers the same.
func TestLoadManyPipelined(t *testing.T) {
	t.Parallel()
	_, rdb, srv := setup(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": srv.Addr()}})
	t.Cleanup(func() { _ = ring.Close() })
	st := New(ring)
	ctx := t.Context()
	require.NoError(t, st.Save(ctx, "a", tokenAt(time.Now(), "tok-a")))
	require.NoError(t, rdb.LPush(ctx, st.tokenKey("list"), "x").Err())
	require.NoError(t, rdb.ScriptFlush(ctx).Err()) // the pipeline meets NOSCRIPT first

	res, err := st.LoadMany(ctx, []string{"a", "list", "nope"})
	require.NoError(t, err)
	require.Len(t, res, 3)
	require.NoError(t, res[0].Err)
	assert.Equal(t, "tok-a", res[0].Token.AccessToken)
	assert.ErrorIs(t, res[1].Err, wxtoken.ErrCorrupt)
	assert.ErrorIs(t, res[2].Err, wxtoken.ErrNotFound)
}

// With Redis gone, LoadMany fails as a whole within the timeout.
func TestLoadManyRedisDown(t *testing.T) {
	t.Parallel()
	st, _, srv := setup(t, WithTimeout(200*time.Millisecond))
	srv.Stop()
	res, err := st.LoadMany(t.Context(), []string{"a", "b"})
	require.Error(t, err)
	assert.Nil(t, res)
}

// A renewal's Store work is two round trips: LockLoad (lock and read) and
// SaveUnlock (save and release); the new record is stored and announced, and
// the lock is gone.
func TestLockLoadSaveUnlockTwoRoundTrips(t *testing.T) {
	t.Parallel()
	st, rdb, tr := counted(t)
	ctx := t.Context()
	old := tokenAt(time.Now().Add(-time.Hour), "tok-old")
	require.NoError(t, st.Save(ctx, "k", old))
	warmScripts(t, st)
	sub := rdb.Subscribe(ctx, st.channel())
	t.Cleanup(func() { _ = sub.Close() })
	_, err := sub.Receive(ctx)
	require.NoError(t, err)

	tr.rounds.Store(0)
	lk, rec, err := st.LockLoad(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.NoError(t, rec.Err)
	requireSameToken(t, old, rec.Token)
	assert.Equal(t, int64(1), rdb.Exists(ctx, st.lockKey("k")).Val(), "locked")
	renewed := tokenAt(time.Now(), "tok-new")
	require.NoError(t, lk.SaveUnlock(ctx, renewed))
	assert.Equal(t, int64(2), tr.rounds.Load(), "round trips of a renewal's Store work")
	require.NoError(t, lk.Unlock(ctx), "Unlock after SaveUnlock does nothing")
	assert.Equal(t, int64(2), tr.rounds.Load())

	assert.Zero(t, rdb.Exists(ctx, st.lockKey("k")).Val(), "the lock is released")
	got, err := st.Load(ctx, "k")
	require.NoError(t, err)
	requireSameToken(t, renewed, got)
	msg, err := sub.ReceiveMessage(ctx)
	require.NoError(t, err)
	assert.Equal(t, "k", msg.Payload, "the save was announced with the key")
}

// warmScripts loads every script, so that counts do not include the first
// NOSCRIPT answer.
func warmScripts(t *testing.T, st *Store) {
	t.Helper()
	for _, sc := range []*redis.Script{st.read, st.swap, st.lock, st.renew, st.unlock, st.readMany, st.lockRead, st.saveUnl} {
		require.NoError(t, sc.Load(t.Context(), st.rdb).Err())
	}
}

// SaveUnlock keeps a newer record, written under the lock by a process that
// did not take it, and still releases the lock; a record that changed to an
// older one is replaced by compare-and-set.
func TestSaveUnlockRecordChangedUnderTheLock(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	now := time.Now()

	lk, rec, err := st.LockLoad(ctx, "k", time.Minute)
	require.NoError(t, err)
	assert.ErrorIs(t, rec.Err, wxtoken.ErrNotFound)
	newer := tokenAt(now, "tok-newer")
	require.NoError(t, st.Save(ctx, "k", newer)) // without the lock
	err = lk.SaveUnlock(ctx, tokenAt(now.Add(-time.Minute), "tok-older"))
	assert.ErrorIs(t, err, wxtoken.ErrNewerToken)
	assert.Zero(t, rdb.Exists(ctx, st.lockKey("k")).Val(), "released anyway")
	got, _ := st.Load(ctx, "k")
	assert.Equal(t, "tok-newer", got.AccessToken)

	lk, _, err = st.LockLoad(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.NoError(t, rdb.Set(ctx, st.tokenKey("k"), "garbage", 0).Err())
	require.NoError(t, lk.SaveUnlock(ctx, tokenAt(now.Add(time.Second), "tok-last")))
	got, _ = st.Load(ctx, "k")
	assert.Equal(t, "tok-last", got.AccessToken)
	assert.Zero(t, rdb.Exists(ctx, st.lockKey("k")).Val())
}

// LockLoad waits for a holder like Lock, and reads a corrupt record as
// corrupt.
func TestLockLoadWaitsAndReadsCorrupt(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	require.NoError(t, rdb.HSet(ctx, st.tokenKey("k"), "f", "v").Err())
	unlock, err := st.Lock(ctx, "k", time.Minute)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, _, err = st.LockLoad(short, "k", time.Minute)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "held by another")
	require.NoError(t, unlock(ctx))

	lk, rec, err := st.LockLoad(ctx, "k", time.Minute)
	require.NoError(t, err)
	assert.ErrorIs(t, rec.Err, wxtoken.ErrCorrupt)
	require.NoError(t, lk.Unlock(ctx))
	assert.Zero(t, rdb.Exists(ctx, st.lockKey("k")).Val())
}

// changes collects what a watcher was told.
type changes struct {
	mu   sync.Mutex
	got  []wxtoken.StoreChange
	more chan struct{}
}

func newChanges() *changes { return &changes{more: make(chan struct{}, 1000)} }

func (c *changes) notify(ch wxtoken.StoreChange) {
	c.mu.Lock()
	c.got = append(c.got, ch)
	c.mu.Unlock()
	c.more <- struct{}{}
}

// next waits for the next notification, failing t after a while.
func (c *changes) next(t *testing.T) wxtoken.StoreChange {
	t.Helper()
	select {
	case <-c.more:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10 s")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.got[0]
	c.got = c.got[1:]
	return ch
}

// Without WithChangeFeed, Watch reports errors.ErrUnsupported and starts
// nothing.
func TestWatchOffByDefault(t *testing.T) {
	t.Parallel()
	st, _, _ := setup(t)
	err := st.Watch(t.Context(), func(wxtoken.StoreChange) {})
	assert.ErrorIs(t, err, errors.ErrUnsupported)
}

// Every watcher of a Store hears every Save of every Store on the same Redis
// and prefix, over one subscription; garbage on the channel and Saves under
// another prefix are not passed on; once every watcher's context ended the
// subscription is gone (goleak checks the goroutines at the end).
func TestWatchSharesOneSubscription(t *testing.T) {
	t.Parallel()
	st, rdb, srv := setup(t, WithChangeFeed())
	other := New(srv.NewClient(t)) // another replica, feed off: it publishes all the same
	foreign := New(srv.NewClient(t), WithPrefix("other:"))
	ctx := t.Context()
	w1, w2 := newChanges(), newChanges()
	ctx1, stop1 := context.WithCancel(ctx)
	ctx2, stop2 := context.WithCancel(ctx)
	require.NoError(t, st.Watch(ctx1, w1.notify))
	require.NoError(t, st.Watch(ctx2, w2.notify))
	assert.Equal(t, int64(1), numSub(t, rdb, st.channel()), "one subscription for both watchers")

	require.NoError(t, foreign.Save(ctx, "x", tokenAt(time.Now(), "tok-x")))
	for _, junk := range []string{"", strings.Repeat("k", 10_000), "bad key!", "\x00\xff", "{k}"} {
		require.NoError(t, rdb.Publish(ctx, st.channel(), junk).Err())
	}
	require.NoError(t, other.Save(ctx, "wx1", tokenAt(time.Now(), "tok-1")))
	assert.Equal(t, wxtoken.StoreChange{Key: "wx1"}, w1.next(t), "garbage is skipped, the key comes through")
	assert.Equal(t, wxtoken.StoreChange{Key: "wx1"}, w2.next(t))

	stop1()
	require.NoError(t, other.Save(ctx, "wx2", tokenAt(time.Now(), "tok-2")))
	assert.Equal(t, wxtoken.StoreChange{Key: "wx2"}, w2.next(t))
	stop2()
	require.Eventually(t, func() bool { return numSub(t, rdb, st.channel()) == 0 },
		10*time.Second, 10*time.Millisecond, "the subscription ends with the last watcher")
	w1.mu.Lock()
	assert.Empty(t, w1.got, "nothing after its context ended")
	w1.mu.Unlock()
}

// numSub returns how many subscribers Redis counts on channel.
func numSub(t *testing.T, rdb *redis.Client, channel string) int64 {
	n, err := rdb.PubSubNumSub(t.Context(), channel).Result()
	require.NoError(t, err)
	return n[channel]
}

// After Redis restarts, the feed subscribes again by itself and tells every
// watcher to resynchronize; later Saves come through again.
func TestWatchResyncsAfterRestart(t *testing.T) {
	t.Parallel()
	st, _, srv := setup(t, WithChangeFeed())
	writer := New(srv.NewClient(t))
	w := newChanges()
	require.NoError(t, st.Watch(t.Context(), w.notify))

	srv.Stop()
	srv.Restart()
	assert.Equal(t, wxtoken.StoreChange{Resync: true}, w.next(t))
	require.NoError(t, writer.Save(t.Context(), "wx1", tokenAt(time.Now(), "tok-1")))
	assert.Equal(t, wxtoken.StoreChange{Key: "wx1"}, w.next(t))
}

// With Redis down, Watch fails within the Store's timeout.
func TestWatchRedisDown(t *testing.T) {
	t.Parallel()
	st, _, srv := setup(t, WithChangeFeed(), WithTimeout(300*time.Millisecond))
	srv.Stop()
	start := time.Now()
	err := st.Watch(t.Context(), func(wxtoken.StoreChange) {})
	require.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second)
}

// A message on the channel becomes a change only when it is a key wxtoken
// could use; nothing panics.
func FuzzFeedMessage(f *testing.F) {
	for _, seed := range []string{"wx1", "", "a.b-c_d", strings.Repeat("k", 129), "{x}", "..", "\n"} {
		f.Add(seed)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1",
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	f.Cleanup(func() { _ = rdb.Close() })
	st := New(rdb) // never reaches Redis: dispatch is fed directly
	f.Fuzz(func(t *testing.T, payload string) {
		var got []wxtoken.StoreChange
		st.feed.watchers = map[*watcher]struct{}{{notify: func(ch wxtoken.StoreChange) { got = append(got, ch) }}: {}}
		st.dispatch(&redis.Message{Channel: st.channel(), Payload: payload})
		st.dispatch(&redis.Message{Channel: "elsewhere", Payload: payload})
		if len(got) > 1 || (len(got) == 1 && got[0] != wxtoken.StoreChange{Key: payload}) {
			t.Fatalf("payload %q gave %v", payload, got)
		}
		if len(got) == 1 && (len(payload) > 128 || strings.ContainsAny(payload, "{}: \n")) {
			t.Fatalf("payload %q passed as a key", payload)
		}
	})
}

// A confirmation of the subscription other than the first means go-redis
// reconnected by itself and messages may be lost: every watcher resyncs. A
// PONG is nothing.
func TestDispatchReconfirmationResyncs(t *testing.T) {
	t.Parallel()
	st, _, _ := setup(t)
	var got []wxtoken.StoreChange
	st.feed.watchers = map[*watcher]struct{}{{notify: func(ch wxtoken.StoreChange) { got = append(got, ch) }}: {}}
	st.dispatch(&redis.Pong{})
	st.dispatch(&redis.Subscription{Kind: "subscribe", Channel: st.channel(), Count: 1})
	assert.Equal(t, []wxtoken.StoreChange{{Resync: true}}, got)
}

// No error of LoadMany, LockLoad or SaveUnlock quotes a token: not from a
// record that fails to decode, not from a Save that Redis did not answer.
func TestCapabilityErrorsQuoteNoToken(t *testing.T) {
	t.Parallel()
	st, rdb, srv := setup(t, WithTimeout(300*time.Millisecond))
	ctx := t.Context()
	bad := `{"access_token":"` + secretToken + `","expires_in":-5,"createTime":"2020-01-01T00:00:00Z"}`
	require.NoError(t, rdb.Set(ctx, st.tokenKey("k"), bad, 0).Err())

	res, err := st.LoadMany(ctx, []string{"k"})
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, wxtoken.ErrCorrupt)
	lk, rec, err := st.LockLoad(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.ErrorIs(t, rec.Err, wxtoken.ErrCorrupt)
	srv.Stop()
	saveErr := lk.SaveUnlock(ctx, tokenAt(time.Now(), secretToken))
	require.Error(t, saveErr)
	_, loadErr := st.LoadMany(ctx, []string{"k"})
	require.Error(t, loadErr)
	for _, e := range []error{res[0].Err, rec.Err, saveErr, loadErr} {
		for u := e; u != nil; u = errors.Unwrap(u) {
			assert.NotContains(t, u.Error(), secretToken)
		}
	}
}
