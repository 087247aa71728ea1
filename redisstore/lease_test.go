package redisstore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// renewals is a fake renew function: it answers with the results in turn,
// repeating the last, and counts its calls.
type renewals struct {
	calls   atomic.Int32
	results []renewResult
}

type renewResult struct {
	held bool
	err  error
}

var errRedisDown = errors.New("redis down")

func (r *renewals) renew(ctx context.Context) (bool, error) {
	i := int(r.calls.Add(1)) - 1
	res := r.results[min(i, len(r.results)-1)]
	return res.held, res.err
}

func TestKeeperRenewsEveryThirdOfTheLeaseUntilStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &renewals{results: []renewResult{{held: true}}}
		k := startKeeper(3*time.Second, time.Now(), r.renew)
		time.Sleep(10*time.Second + time.Millisecond)
		assert.EqualValues(t, 10, r.calls.Load(), "one renewal a second for a 3 s lease")
		k.stop()
		k.stop() // idempotent
		time.Sleep(time.Minute)
		assert.EqualValues(t, 10, r.calls.Load(), "no renewal after stop")
	})
}

func TestKeeperStopsWhenTheLockIsGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &renewals{results: []renewResult{{held: true}, {held: false}}}
		k := startKeeper(3*time.Second, time.Now(), r.renew)
		time.Sleep(2*time.Second + time.Millisecond)
		synctest.Wait()
		select {
		case <-k.done:
		default:
			require.FailNow(t, "the keeper still runs for a lock somebody else holds")
		}
		assert.EqualValues(t, 2, r.calls.Load())
	})
}

func TestKeeperGivesUpAfterFailingForALease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &renewals{results: []renewResult{{err: errRedisDown}}}
		k := startKeeper(3*time.Second, time.Now(), r.renew)
		time.Sleep(3*time.Second - time.Millisecond)
		synctest.Wait()
		select {
		case <-k.done:
			require.FailNow(t, "gave up before the lease ran out")
		default:
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		select {
		case <-k.done:
		default:
			require.FailNow(t, "still renewing a lock that has lapsed")
		}
		assert.EqualValues(t, 3, r.calls.Load())
	})
}

func TestKeeperCarriesOnAfterShortFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &renewals{results: []renewResult{
			{err: errRedisDown}, {err: errRedisDown}, {held: true},
			{err: errRedisDown}, {err: errRedisDown}, {held: true},
		}}
		k := startKeeper(3*time.Second, time.Now(), r.renew)
		time.Sleep(9*time.Second + time.Millisecond)
		synctest.Wait()
		select {
		case <-k.done:
			require.FailNow(t, "two failures in a row are within the lease")
		default:
		}
		assert.EqualValues(t, 9, r.calls.Load())
		k.stop()
	})
}

func TestKeeperStopDoesNotWaitForAHungRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := startKeeper(3*time.Second, time.Now(), func(ctx context.Context) (bool, error) {
			<-ctx.Done()
			return false, ctx.Err()
		})
		time.Sleep(time.Second + time.Millisecond) // the first renewal hangs
		began := time.Now()
		k.stop()
		assert.Zero(t, time.Since(began), "stop waited for the renewal")
	})
}
