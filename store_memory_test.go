package wxtoken

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/wxtest"
)

// Two Clients of one process sharing a MemoryStore fetch one at a time: the
// second waits for the first's fetch and takes its token from the store.
func TestMemoryStoreClientsShareOneFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		st := NewMemoryStore()
		a := faultClient(t, srv, WithStore(st))
		b := faultClient(t, srv, WithStore(st))

		hold := srv.Hold(wxtest.PathToken)
		defer hold.Release()
		got := make(chan string, 2)
		for _, c := range []*Client{a, b} {
			go func() {
				tok, err := c.Get(context.Background())
				assert.NoError(t, err)
				got <- tok
			}()
		}
		synctest.Wait() // both Clients are as far as they can go
		assert.Equal(t, 1, hold.Held(), "requests at the token endpoint while both Clients wait")
		hold.Release()

		first, second := <-got, <-got
		assert.Equal(t, first, second)
		assert.Equal(t, 1, srv.TokenCalls())
		assert.Equal(t, int64(1), a.Stats().Fetches+b.Stats().Fetches)
		assert.Equal(t, int64(1), a.Stats().StoreLoads+b.Stats().StoreLoads)
	})
}

func TestMemoryStoreLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := NewMemoryStore()
		ctx := context.Background()
		unlockA, err := st.Lock(ctx, "k", time.Minute)
		require.NoError(t, err)

		// Another key is free.
		unlockOther, err := st.Lock(ctx, "j", time.Minute)
		require.NoError(t, err)
		require.NoError(t, unlockOther(ctx))

		// A waiter gives up with its context, exactly when it ends.
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		unlock, err := st.Lock(tctx, "k", time.Minute)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Nil(t, unlock)
		assert.Equal(t, 3*time.Second, time.Since(start))

		// A waiter gets the lock once the holder lets go, and not before.
		acquired := make(chan func(context.Context) error)
		go func() {
			unlockB, err := st.Lock(ctx, "k", time.Minute)
			assert.NoError(t, err)
			acquired <- unlockB
		}()
		synctest.Wait()
		select {
		case <-acquired:
			t.Fatal("second holder got the lock while the first held it")
		default:
		}
		require.NoError(t, unlockA(ctx))
		unlockB := <-acquired

		// A second unlock by the first holder leaves the new holder's lock alone.
		require.NoError(t, unlockA(ctx))
		tctx, cancel = context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = st.Lock(tctx, "k", time.Minute)
		require.ErrorIs(t, err, context.DeadlineExceeded, "the lock is still held by the second holder")

		require.NoError(t, unlockB(ctx))
		require.NoError(t, unlockB(ctx), "unlock is idempotent")
		unlockC, err := st.Lock(ctx, "k", time.Minute)
		require.NoError(t, err)
		require.NoError(t, unlockC(ctx))

		// A context already done never waits.
		done, cancelDone := context.WithCancel(ctx)
		cancelDone()
		_, err = st.Lock(done, "free", time.Minute)
		require.ErrorIs(t, err, context.Canceled)

		// Nothing is kept for keys no longer held or awaited.
		assert.Empty(t, st.locks.locks)
	})
}

func TestMemoryStoreLockExcludes(t *testing.T) {
	st := NewMemoryStore()
	ctx := context.Background()
	var mu sync.Mutex
	holders, entries := 0, 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				unlock, err := st.Lock(ctx, "k", time.Minute)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				holders++
				entries++
				assert.Equal(t, 1, holders)
				mu.Unlock()
				mu.Lock()
				holders--
				mu.Unlock()
				assert.NoError(t, unlock(ctx))
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 400, entries)
	assert.Empty(t, st.locks.locks)
}
