package redisstore

import (
	"context"
	"time"
)

// renewEvery is how often a held lock's lease is extended: three times a
// lease, so that two renewals in a row can fail before it lapses.
func renewEvery(lease time.Duration) time.Duration {
	return max(lease/3, time.Millisecond)
}

// keeper renews one held lock's lease on a goroutine of its own.
type keeper struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startKeeper runs keepAlive until stop. renew extends the lease and reports
// whether the lock was still held; last is when the lease was last set.
func startKeeper(lease time.Duration, last time.Time, renew func(context.Context) (bool, error)) *keeper {
	ctx, cancel := context.WithCancel(context.Background())
	k := &keeper{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(k.done)
		keepAlive(ctx, lease, last, renew)
	}()
	return k
}

// stop ends the renewals and returns once the goroutine has, so that no
// renewal runs after the lock is released. It is idempotent.
func (k *keeper) stop() {
	k.cancel()
	<-k.done
}

// keepAlive calls renew every renewEvery(lease) until ctx ends, renew reports
// the lock gone, or no renewal has succeeded for a whole lease since last:
// the lock has lapsed then, and another process may hold it.
func keepAlive(ctx context.Context, lease time.Duration, last time.Time, renew func(context.Context) (bool, error)) {
	t := time.NewTicker(renewEvery(lease))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A renewed lease ends no earlier than a lease after it was sent.
		sent := time.Now()
		held, err := renew(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && !held:
			return
		case err == nil:
			last = sent
		case time.Since(last) >= lease:
			return
		}
	}
}
