package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/redistest"
)

// A holder whose work outlasts the lease keeps the lock: its lease is renewed
// until it unlocks, so a second replica cannot take the lock and fetch too.
// Real time on a real server (synctest cannot drive Redis's clock); the test
// asserts on the lock key, and its loop is bounded by the hold time.
func TestLockIsRenewedWhileHeld(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t, WithLockRetry(time.Millisecond, 5*time.Millisecond))
	ctx := t.Context()
	const lease = 300 * time.Millisecond
	const hold = 2 * time.Second
	lk := "wxtoken:{wxapp1}:lock"

	unlock, err := st.Lock(ctx, "wxapp1", lease)
	require.NoError(t, err)
	owner, err := rdb.Get(ctx, lk).Result()
	require.NoError(t, err)

	attempts := 0
	for end := time.Now().Add(hold); time.Now().Before(end); attempts++ {
		got, err := rdb.Get(ctx, lk).Result()
		require.NoError(t, err, "the lock lapsed while its holder was alive (attempt %d)", attempts)
		require.Equal(t, owner, got)
		ttl, err := rdb.PTTL(ctx, lk).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, time.Duration(0))
		require.LessOrEqual(t, ttl, lease)

		other, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err = st.Lock(other, "wxapp1", lease)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "a second Lock got the lock")
	}
	assert.Greater(t, attempts, 10)

	require.NoError(t, unlock(ctx))
	n, err := rdb.Exists(ctx, lk).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "unlock deletes the lock")
	// The renewals have stopped: nothing brings the key back.
	unlockNext, err := st.Lock(ctx, "wxapp1", lease)
	require.NoError(t, err)
	require.NoError(t, unlockNext(ctx))
}

// A lock key set without a TTL (by hand, or by an older tool) lapses one lease
// after a Lock first sees it, instead of blocking every fetch until deleted.
func TestLockKeyWithoutTTLLapsesAfterTheLease(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t, WithLockRetry(time.Millisecond, 10*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	lk := "wxtoken:{wxapp1}:lock"
	require.NoError(t, rdb.Set(ctx, lk, "left-behind", 0).Err())

	unlock, err := st.Lock(ctx, "wxapp1", 200*time.Millisecond)
	require.NoError(t, err, "a lock key without TTL blocked Lock")
	got, err := rdb.Get(ctx, lk).Result()
	require.NoError(t, err)
	assert.NotEqual(t, "left-behind", got)
	require.NoError(t, unlock(ctx))
}

// A lock key with a TTL of its own keeps it: only a key without one is
// given the lease.
func TestLockLeavesAnotherHoldersTTLAlone(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	lk := "wxtoken:{wxapp1}:lock"
	require.NoError(t, rdb.Set(t.Context(), lk, "other", time.Hour).Err())

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := st.Lock(ctx, "wxapp1", time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	ttl, err := rdb.PTTL(t.Context(), lk).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 59*time.Minute)
}

// A holder that lost its lock (deleted by an operator, say) stops renewing:
// it does not bring the key back for whoever takes the lock next.
func TestRenewalsStopWhenTheLockIsTaken(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	const lease = 300 * time.Millisecond
	lk := "wxtoken:{wxapp1}:lock"

	unlockA, err := st.Lock(ctx, "wxapp1", lease)
	require.NoError(t, err)
	require.NoError(t, rdb.Set(ctx, lk, "other", 0).Err()) // no TTL: only A's renewal could add one

	// A's next renewal finds another owner; had it extended the key, it
	// would have a TTL. Poll through a few renewal periods.
	for end := time.Now().Add(3 * lease); time.Now().Before(end); {
		ttl, err := rdb.PTTL(ctx, lk).Result()
		require.NoError(t, err)
		require.Equal(t, time.Duration(-1), ttl, "A renewed a lock it no longer holds")
	}
	require.NoError(t, unlockA(ctx))
	got, err := rdb.Get(ctx, lk).Result()
	require.NoError(t, err)
	assert.Equal(t, "other", got, "A's unlock left the other owner's lock alone")
}

// holdHook holds every command to script sha until release is closed, then
// sends it whatever its context says, as a command already on the wire would
// reach Redis.
type holdHook struct {
	sha     string
	release chan struct{}
}

func (h *holdHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); len(args) > 1 && cmd.Name() == "evalsha" && args[1] == h.sha {
			<-h.release
			return next(context.WithoutCancel(ctx), cmd)
		}
		return next(ctx, cmd)
	}
}
func (h *holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A lock attempt that Redis grants after Lock gave up is released at once:
// nobody holds its unlock, and it would otherwise block the others for a
// whole lease.
func TestLockTakenAfterLockGaveUpIsReleased(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.NewClient(t)
	// Loaded, so that the held EVALSHA alone takes the lock.
	sha, err := redis.NewScript(luaLock).Load(t.Context(), rdb).Result()
	require.NoError(t, err)
	h := &holdHook{sha: sha, release: make(chan struct{})}
	rdb.AddHook(h)
	st := New(rdb, WithTimeout(50*time.Millisecond))

	_, err = st.Lock(t.Context(), "wxapp1", time.Hour)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(h.release) // the attempt reaches Redis now, and takes the lock
	st.inflight.Wait()

	n, err := srv.NewClient(t).Exists(t.Context(), "wxtoken:{wxapp1}:lock").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the late lock was left for its lease")
}
