package wxtoken

// Regression tests for user code the Client calls (Stores, Lockers,
// RoundTripTrippers): a panic there never crashes the process, a hang there
// never hangs a caller past its bounds, a callback that calls Close returns,
// and a slow or failing Save delays no caller. Each failed (a crash, a
// deadlock reported by synctest, or a wrong answer) on the engine before user
// code was called through callouts and tokens were handed out before saving.

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

// trickyStore is a MemoryStore whose methods can be made to panic, block or
// call back into the Client.
type trickyStore struct {
	*MemoryStore
	loads        atomic.Int64
	panicLoadsAt int64 // Loads from this one on panic (0: never)
	panicSave    atomic.Bool
	blockLoad    chan struct{} // when set, Load blocks on it, ignoring ctx
	blockSave    chan struct{} // when set, Save blocks on it, ignoring ctx
	onLoad       func()
}

func (s *trickyStore) Load(ctx context.Context, key string) (Token, error) {
	n := s.loads.Add(1)
	if s.onLoad != nil {
		s.onLoad()
	}
	if s.panicLoadsAt > 0 && n >= s.panicLoadsAt {
		panic("store exploded")
	}
	if s.blockLoad != nil {
		<-s.blockLoad
	}
	return s.MemoryStore.Load(ctx, key)
}

func (s *trickyStore) Save(ctx context.Context, key string, tok Token) error {
	if s.panicSave.Load() {
		panic(tok) // prints the whole Token, access_token included
	}
	if s.blockSave != nil {
		<-s.blockSave
	}
	return s.MemoryStore.Save(ctx, key, tok)
}

// A Store that panics during the store sync does not crash the process: the
// Client logs it and keeps serving.
func TestPanickingStoreDuringSyncIsRecovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &trickyStore{MemoryStore: NewMemoryStore(), panicLoadsAt: 2}
		logs := &logbuf.Buffer{}
		c := newTestClient(t, newUpstream(t, countingTokens().responder), WithStore(st),
			WithLogger(logs.Logger(slog.LevelWarn)))
		require.Equal(t, "token-1", mustGet(t, c))
		advance(3 * DefaultStoreSync) // each sync's Load panics
		assert.GreaterOrEqual(t, st.loads.Load(), int64(3))
		assert.Equal(t, "token-1", mustGet(t, c))
		assert.Contains(t, logs.String(), "panic in Store.Load: store exploded")
	})
}

// A Save that panics after a fetch loses nothing: the fetched token is served,
// and neither the error nor the log holds the full token.
func TestPanickingSaveKeepsTheFetchedToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &trickyStore{MemoryStore: NewMemoryStore()}
		st.panicSave.Store(true)
		logs := &logbuf.Buffer{}
		c := newTestClient(t, newUpstream(t, countingTokens().responder), WithStore(st),
			WithLogger(logs.Logger(slog.LevelDebug)))
		assert.Equal(t, "token-1", mustGet(t, c))
		c.waitIdle()
		assert.Equal(t, "token-1", mustGet(t, c))
		assert.Contains(t, logs.String(), "panic in Store.Save")
		assert.NotContains(t, logs.String(), "token-1")
	})
}

// A Store callback that calls Close returns; so does the Get that ran it.
func TestCloseFromAStoreCallbackReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &trickyStore{MemoryStore: NewMemoryStore()}
		c := newTestClient(t, newUpstream(t, countingTokens().responder), WithStore(st))
		st.onLoad = func() { assert.NoError(t, c.Close()) }
		_, err := c.Get(context.Background())
		require.ErrorIs(t, err, ErrClosed)
	})
}

// closingTransport closes the Client from inside RoundTrip.
type closingTransport struct{ c *atomic.Pointer[Client] }

func (t closingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.c.Load().Close()
	return okToken(1, 7200)
}

// A RoundTripper that calls Close returns too.
func TestCloseFromARoundTripperReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cp atomic.Pointer[Client]
		c, err := New(testAppID, testSecret, WithHTTPClient(&http.Client{Transport: closingTransport{&cp}}),
			WithStore(NewMemoryStore()), WithLogger(quietLogger()))
		require.NoError(t, err)
		cp.Store(c)
		_, err = c.Get(context.Background())
		require.ErrorIs(t, err, ErrClosed)
	})
}

// A Save that takes its time delays no caller: the waiters get the token as
// soon as WeChat answered, and the Store gets it afterwards.
func TestSlowSaveDelaysNoCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &trickyStore{MemoryStore: NewMemoryStore(), blockSave: make(chan struct{})}
		c := newTestClient(t, newUpstream(t, countingTokens().responder), WithStore(st))
		assert.Equal(t, "token-1", mustGet(t, c), "returned while Save is still blocked")
		close(st.blockSave)
		c.waitIdle()
		stored, err := st.MemoryStore.Load(context.Background(), testAppID)
		require.NoError(t, err)
		assert.Equal(t, "token-1", stored.AccessToken)
	})
}

// A Store that hangs, ignoring its context (a FIFO, a stopped server), costs
// a cold caller the store timeout, not forever: it then fetches without the
// Store. Close does not wait for the hung call either.
func TestHungStoreIsBoundedByTheStoreTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := make(chan struct{})
		defer close(hang) // lets the abandoned call end with the test
		st := &trickyStore{MemoryStore: NewMemoryStore(), blockLoad: hang, blockSave: hang}
		c := newTestClient(t, newUpstream(t, countingTokens().responder), WithStore(st))
		start := time.Now()
		assert.Equal(t, "token-1", mustGet(t, c))
		assert.Equal(t, DefaultStoreTimeout, time.Since(start), "one store timeout, in fake time")
		require.NoError(t, c.Close())
	})
}

// The panic text of user code never carries the secret, plain or escaped.
func TestPanicTextHoldsNoSecret(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &trickyStore{MemoryStore: NewMemoryStore()}
		st.onLoad = func() { panic("bad config: secret=" + testSecret) }
		logs := &logbuf.Buffer{}
		c := newTestClient(t, newUpstream(t, countingTokens().responder), WithStore(st),
			WithLogger(logs.Logger(slog.LevelDebug)))
		assert.Equal(t, "token-1", mustGet(t, c), "a panicking Load is a miss")
		assert.Contains(t, logs.String(), "panic in Store.Load")
		assert.False(t, strings.Contains(logs.String(), testSecret))
	})
}
