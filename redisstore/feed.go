package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken"
)

// The change feed. Every Save that writes announces it with PUBLISH on the
// Store's channel, prefix + "changed", the message being the wxtoken key (not
// the Redis key), in the script that writes: a Save costs no extra round trip
// and none goes unannounced. Watch listens to that channel. Publishing is
// always on; listening is opt-in (WithChangeFeed).

const (
	// feedIdle is how long the feed's connection may stay silent before it
	// is sent a PING, and, after the PING, before it counts as dead: a
	// paused or partitioned Redis is noticed within twice this.
	feedIdle = 30 * time.Second
	// feedRetryMin and feedRetryMax bound the wait between attempts to
	// subscribe again after the connection was lost.
	feedRetryMin = 50 * time.Millisecond
	feedRetryMax = 5 * time.Second
	// maxFeedKey bounds the messages taken for a key: wxtoken keys are at
	// most 128 bytes.
	maxFeedKey = 128
)

// WithChangeFeed makes Watch work: the engine (a wxtoken.Client or Registry
// on this Store) then re-reads a key when another replica saved it, over one
// subscription per Store, and re-reads every key only rarely (a safety
// re-read every 10 store-sync intervals). Without
// it Watch reports errors.ErrUnsupported and the engine re-reads
// periodically (in batches, through LoadMany).
//
// It is an option because a subscription holds a connection of its own in a
// blocking read for the Store's life: inside a testing/synctest bubble that
// read keeps the fake clock from advancing, and a replica of the previous
// release does not publish its Saves (see the package documentation on
// rolling deploys).
func WithChangeFeed() Option {
	return func(s *Store) { s.feedOn = true }
}

// channel is the Store's change channel.
func (s *Store) channel() string { return s.prefix + "changed" }

// hub multiplexes every Watch of a Store onto one subscription.
type hub struct {
	mu       sync.Mutex
	watchers map[*watcher]struct{}
	sub      *subscription // nil while nobody watches
}

// watcher is one caller of Watch.
type watcher struct{ notify func(wxtoken.StoreChange) }

// Watch starts the change feed for the caller, once the Store's subscription
// to its channel is confirmed (or fails: Redis down, the feed off), and calls
// notify with the key of every Save of any process on the same Redis and
// prefix, until ctx ends. Every Watch of one Store shares one subscription,
// which ends once every watcher's ctx has. When the connection is lost (a
// Redis restart, a failover, a network cut; a silent connection is pinged
// after 30 s), the Store subscribes again, with backoff, and then notifies
// every watcher with Resync set. On a *redis.Ring, Watch reports
// errors.ErrUnsupported, as with the feed off. A message that is not a
// wxtoken key is ignored. notify is called from one goroutine, for one
// watcher after the other; a panic in it is recovered.
func (s *Store) Watch(ctx context.Context, notify func(wxtoken.StoreChange)) error {
	switch {
	case !s.feedOn:
		return fmt.Errorf("redisstore: watch: %w: the change feed is off (WithChangeFeed)", errors.ErrUnsupported)
	case s.onRing():
		return fmt.Errorf("redisstore: watch: %w: a redis.Ring subscribes on one shard but Saves publish on every shard", errors.ErrUnsupported)
	case notify == nil:
		return errors.New("redisstore: watch: nil notify")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: watch: %w", err)
	}
	w := &watcher{notify: notify}
	h := &s.feed
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sub == nil {
		ps, err := s.subscribe(ctx)
		if err != nil {
			return fmt.Errorf("redisstore: watch: %w", err)
		}
		h.sub = newSubscription(ps)
		go s.listen(h.sub)
	}
	if h.watchers == nil {
		h.watchers = make(map[*watcher]struct{})
	}
	h.watchers[w] = struct{}{}
	context.AfterFunc(ctx, func() { s.unwatch(w) })
	return nil
}

// onRing reports whether the Store's client is a redis.Ring. Its Subscribe
// picks one shard by the channel's name, while each Save publishes on the
// shard of its token key: a feed on it would hear a fraction of the Saves
// and claim to be up.
func (s *Store) onRing() bool {
	_, ok := s.rdb.(*redis.Ring)
	return ok
}

// unwatch drops w, and ends the subscription when it was the last watcher.
func (s *Store) unwatch(w *watcher) {
	h := &s.feed
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.watchers, w)
	if len(h.watchers) == 0 && h.sub != nil {
		h.sub.stop()
		h.sub = nil
	}
}

// subscribe opens a subscription to the Store's channel and waits, within the
// Store's timeout, for Redis to confirm it.
func (s *Store) subscribe(ctx context.Context) (*redis.PubSub, error) {
	return call(ctx, s, func(ctx context.Context) (*redis.PubSub, error) {
		ps := s.rdb.Subscribe(ctx, s.channel())
		msg, err := ps.ReceiveTimeout(ctx, s.timeout)
		if err == nil {
			if _, ok := msg.(*redis.Subscription); !ok {
				err = fmt.Errorf("unexpected reply %T to SUBSCRIBE", msg)
			}
		}
		if err != nil {
			_ = ps.Close()
			return nil, err
		}
		return ps, nil
	}, func(ps *redis.PubSub, err error) {
		if err == nil {
			_ = ps.Close() // confirmed after Watch had given up
		}
	})
}

// subscription is the running feed of a Store: its connection, and the
// context that stop cancels.
type subscription struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	ps     *redis.PubSub // nil between a lost connection and the next
}

func newSubscription(ps *redis.PubSub) *subscription {
	ctx, cancel := context.WithCancel(context.Background())
	return &subscription{ctx: ctx, cancel: cancel, ps: ps}
}

// stop ends the feed. Closing the connection ends a read in progress, which
// go-redis does not let a context end.
func (sub *subscription) stop() {
	sub.cancel()
	sub.replace(nil)
}

// replace closes the current connection and makes ps the next; it reports
// false, closing ps, once the feed is stopped.
func (sub *subscription) replace(ps *redis.PubSub) bool {
	sub.mu.Lock()
	old := sub.ps
	stopped := sub.ctx.Err() != nil
	if stopped {
		sub.ps = nil
	} else {
		sub.ps = ps
	}
	sub.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	if stopped && ps != nil {
		_ = ps.Close()
	}
	return !stopped
}

func (sub *subscription) conn() *redis.PubSub {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.ps
}

// listen reads the feed until it is stopped, subscribing again whenever the
// connection fails or falls silent.
func (s *Store) listen(sub *subscription) {
	ctx := sub.ctx
	pinged := false
	for {
		ps := sub.conn()
		if ps == nil {
			return // stopped
		}
		msg, err := ps.ReceiveTimeout(ctx, feedIdle)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			pinged = false
			s.dispatch(msg)
			continue
		}
		if isTimeout(err) && !pinged {
			pinged = true
			if ps.Ping(ctx) == nil {
				continue
			}
		}
		if !s.resubscribe(sub) {
			return
		}
		pinged = false
		s.broadcast(wxtoken.StoreChange{Resync: true})
	}
}

// resubscribe replaces a lost connection with a new subscription, trying with
// backoff until one is confirmed or the feed is stopped.
func (s *Store) resubscribe(sub *subscription) bool {
	if !sub.replace(nil) {
		return false
	}
	for delay := feedRetryMin; ; delay = min(2*delay, feedRetryMax) {
		if wait(sub.ctx, jitter(delay)) != nil {
			return false
		}
		if ps, err := s.subscribe(sub.ctx); err == nil {
			return sub.replace(ps)
		}
	}
}

// dispatch hands a message of the feed to the watchers, when it names a key.
// A confirmation of the subscription after the first, which subscribe
// consumed, means that go-redis reconnected on its own: messages may have
// been lost meanwhile.
func (s *Store) dispatch(msg any) {
	switch m := msg.(type) {
	case *redis.Message:
		if m.Channel == s.channel() && feedKey(m.Payload) {
			s.broadcast(wxtoken.StoreChange{Key: m.Payload})
		} // else garbage someone published
	case *redis.Subscription:
		if m.Kind == "subscribe" {
			s.broadcast(wxtoken.StoreChange{Resync: true})
		}
	}
}

// broadcast calls every watcher's notify with ch, one after the other.
func (s *Store) broadcast(ch wxtoken.StoreChange) {
	s.feed.mu.Lock()
	ws := make([]*watcher, 0, len(s.feed.watchers))
	for w := range s.feed.watchers {
		ws = append(ws, w)
	}
	s.feed.mu.Unlock()
	for _, w := range ws {
		func() {
			defer func() { _ = recover() }() // a watcher's bug must not end the feed of the others
			w.notify(ch)
		}()
	}
}

// feedKey reports whether a message can be a wxtoken key: 1 to 128 bytes of
// A-Z a-z 0-9 . _ -, the rule wxtoken applies to every key.
func feedKey(k string) bool {
	if k == "" || len(k) > maxFeedKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// isTimeout reports whether err is a read that timed out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
