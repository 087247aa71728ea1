package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keyedSource answers for one key of a registry test, counting fetches.
type keyedSource struct {
	key     string
	fetches *atomic.Int64
	life    int64
}

func (s *keyedSource) Fetch(ctx context.Context, req FetchRequest) (Token, error) {
	n := s.fetches.Add(1)
	return Token{AccessToken: fmt.Sprintf("%s-%d", s.key, n), ExpiresIn: s.life, CreateTime: time.Now()}, nil
}

// registryRig is a Registry whose lookup makes keyedSources, counting lookups.
type registryRig struct {
	r       *Registry
	lookups atomic.Int64
	fetches atomic.Int64
	fail    atomic.Bool
}

func newRegistryRig(t *testing.T, opts ...Option) *registryRig {
	t.Helper()
	rig := &registryRig{}
	lookup := func(ctx context.Context, key string) (Source, error) {
		rig.lookups.Add(1)
		if rig.fail.Load() {
			return nil, errors.New("merchant database unavailable")
		}
		return &keyedSource{key: key, fetches: &rig.fetches, life: 7200}, nil
	}
	r, err := NewRegistry(lookup, append([]Option{WithStore(NewMemoryStore()), WithLogger(quietLogger())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	rig.r = r
	return rig
}

func TestRegistryLooksUpOncePerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRegistryRig(t)
		var wg sync.WaitGroup
		for range 100 {
			for _, key := range []string{"wxa", "wxb"} {
				wg.Go(func() {
					tok, err := rig.r.Get(context.Background(), key)
					assert.NoError(t, err)
					assert.Equal(t, key, tok[:3])
				})
			}
		}
		wg.Wait()
		assert.Equal(t, int64(2), rig.lookups.Load())
		assert.Equal(t, int64(2), rig.fetches.Load())
		assert.Equal(t, 2, rig.r.Len())

		c, err := rig.r.Client(context.Background(), "wxa")
		require.NoError(t, err)
		first := mustGet(t, c)
		time.Sleep(time.Minute)
		next, err := rig.r.Invalidate(context.Background(), "wxa", first)
		require.NoError(t, err)
		assert.NotEqual(t, first, next)
	})
}

// A failed lookup is kept for a while and handed to every caller, not retried
// per call; the caller's context bounds only its wait.
func TestRegistryKeepsALookupFailureBriefly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRegistryRig(t)
		rig.fail.Store(true)
		for range 100 {
			_, err := rig.r.Get(context.Background(), "wxa")
			require.ErrorContains(t, err, "merchant database unavailable")
			time.Sleep(10 * time.Millisecond)
		}
		assert.Equal(t, int64(1), rig.lookups.Load(), "one lookup within the retry time")
		rig.fail.Store(false)
		time.Sleep(DefaultLookupRetry)
		_, err := rig.r.Get(context.Background(), "wxa")
		require.NoError(t, err)
		assert.Equal(t, int64(2), rig.lookups.Load())
	})
}

// Forget, a handle's Close and eviction drop a key; the next use looks it up
// again. Close ends everything with ErrClosed.
func TestRegistryForgetsAndEvicts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRegistryRig(t, WithEvictIdle(10*time.Minute))
		_, err := rig.r.Get(context.Background(), "busy")
		require.NoError(t, err)
		_, err = rig.r.Get(context.Background(), "left")
		require.NoError(t, err)
		for range 20 { // "busy" is used every minute, "left" never again
			time.Sleep(time.Minute)
			_, err = rig.r.Get(context.Background(), "busy")
			require.NoError(t, err)
		}
		assert.Equal(t, 1, rig.r.Len(), "the unused key was evicted")
		assert.Equal(t, int64(2), rig.lookups.Load())

		// A key handed out by Client is used directly: never evicted as idle.
		pinned, err := rig.r.Client(context.Background(), "pinned")
		require.NoError(t, err)
		time.Sleep(30 * time.Minute)
		assert.Equal(t, "pinned", mustGet(t, pinned)[:6])
		require.NoError(t, pinned.Close())
		assert.Equal(t, int64(3), rig.lookups.Load())
		_, err = rig.r.Get(context.Background(), "busy")
		require.NoError(t, err)

		c, err := rig.r.Client(context.Background(), "busy")
		require.NoError(t, err)
		require.NoError(t, c.Close()) // a handle: forgets the key
		assert.Zero(t, rig.r.Len())
		_, err = rig.r.Get(context.Background(), "busy")
		require.NoError(t, err)
		assert.Equal(t, int64(5), rig.lookups.Load())

		require.NoError(t, rig.r.Close())
		_, err = rig.r.Get(context.Background(), "busy")
		require.ErrorIs(t, err, ErrClosed)
		require.NoError(t, rig.r.Close(), "idempotent")
	})
}

// optionedSource asks for options of its own and a store key.
type optionedSource struct{ keyedSource }

func (s *optionedSource) ClientOptions() []Option { return []Option{WithRefreshBefore(time.Hour)} }
func (s *optionedSource) StoreKey() string        { return s.key + ".custom" }

func TestRegistryPerKeySettingsComeFromTheSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fetches atomic.Int64
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
			if key == "plain" {
				return OfficialAccount("wx0123456789abcdef", "s3cr3t", true)
			}
			return &optionedSource{keyedSource{key: key, fetches: &fetches, life: 7200}}, nil
		}, WithStore(NewMemoryStore()), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer r.Close()
		c, err := r.Client(context.Background(), "special")
		require.NoError(t, err)
		assert.Equal(t, "special.custom", c.Key())
		assert.Equal(t, time.Hour, c.cfg.refreshBefore, "the Source's option")
		official, err := r.Client(context.Background(), "plain")
		require.NoError(t, err)
		assert.Equal(t, "wx0123456789abcdef.stable", official.Key())
		assert.Equal(t, DefaultRefreshBefore, official.cfg.refreshBefore)
	})
}

// A lookup runs under the Registry's context: a caller that gives up does not
// cancel it, and the next caller gets the Client it made.
func TestRegistryLookupOutlivesAnImpatientCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fetches atomic.Int64
		var lookups atomic.Int64
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
			lookups.Add(1)
			select {
			case <-time.After(2 * time.Second): // a slow merchant database
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &keyedSource{key: key, fetches: &fetches, life: 7200}, nil
		}, WithStore(NewMemoryStore()), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = r.Get(ctx, "wxa")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		tok, err := r.Get(context.Background(), "wxa")
		require.NoError(t, err)
		assert.Equal(t, "wxa-1", tok)
		assert.Equal(t, int64(1), lookups.Load())
	})
}
