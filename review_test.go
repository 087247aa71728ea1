package wxtoken

// Regression tests for defects a review of the engine and the Registry found;
// each failed before its fix (a hot loop, a hang, an empty token, a leak).

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
	"github.com/wxtoken/wxtoken/wxtest"
)

// A ticket whose getticket rejects every token must back off like any other
// failure: its error wraps the token Client's own refusal, which for the
// ticket Client is a failure, not a refusal of its own (it spun at 20,000
// getticket calls in 3 s).
func TestTicketFailureWrappingAnotherClientsRefusalBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		srv.InjectN(1<<30, wxtest.FaultErrcode(CodeInvalidCredential, "invalid credential").On(wxtest.PathTicket))
		st := NewMemoryStore()
		tokens := faultClient(t, srv, WithStore(st))
		stale := Token{AccessToken: "ticket0", ExpiresIn: 7200, CreateTime: time.Now().Add(-7000 * time.Second)}
		require.NoError(t, st.Save(context.Background(), wxtest.DefaultAppID+".ticket.jsapi", stale))
		tc, err := NewTicket(tokens, TicketJSAPI)
		require.NoError(t, err)
		defer tc.Close()
		got, err := tc.Get(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "ticket0", got, "the stale ticket is served meanwhile")
		time.Sleep(3 * time.Second)
		synctest.Wait()
		assert.LessOrEqual(t, srv.TicketCalls("jsapi"), 6, "getticket calls in 3 idle seconds")
	})
}

// sameSource hands back the same token while it is valid, as WeCom's
// gettoken does.
type sameSource struct{ fetches atomic.Int64 }

func (s *sameSource) Fetch(context.Context, FetchRequest) (Token, error) {
	s.fetches.Add(1)
	return Token{AccessToken: "SAME", ExpiresIn: 7200, CreateTime: time.Now()}, nil
}

// An issuer that hands the rejected token back: the token is served (it was
// "", nil forever, with a fetch per call), and rejecting it again backs off.
func TestHandedBackTokenIsServedAndBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &sameSource{}
		c := newSourceClient(t, "corp.cold", src)
		tok, err := c.Invalidate(context.Background(), "SAME")
		if err == nil {
			assert.Equal(t, "SAME", tok)
		}
		for range 3 {
			assert.Equal(t, "SAME", mustGet(t, c))
		}
		assert.Equal(t, int64(1), src.fetches.Load())

		warm := &sameSource{}
		st := NewMemoryStore()
		old := Token{AccessToken: "SAME", ExpiresIn: 7200, CreateTime: time.Now().Add(-time.Hour)}
		require.NoError(t, st.Save(context.Background(), "corp.warm", old))
		c2 := newSourceClient(t, "corp.warm", warm, WithStore(st))
		assert.Equal(t, "SAME", mustGet(t, c2))
		for range 5 {
			_, err := c2.Invalidate(context.Background(), "SAME")
			require.ErrorIs(t, err, ErrRejectedTooSoon)
		}
		assert.Equal(t, int64(1), warm.fetches.Load(), "handed back once, then the backoff holds")
	})
}

// A cold Client told of a rejection of a token it never cached learns its
// age and count from the Store: the backoff applies (each cold Client fetched
// at once, resetting the count).
func TestColdClientsKeepTheRejectionBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := countingTokens()
		st := NewMemoryStore()
		up := newUpstream(t, s.responder)
		warm := newTestClient(t, up, WithStore(st))
		bad := mustGet(t, warm)
		warm.waitIdle()
		for range 5 {
			cold := newTestClient(t, up, WithStore(st))
			_, err := cold.Invalidate(context.Background(), bad)
			require.ErrorIs(t, err, ErrRejectedTooSoon)
		}
		assert.Equal(t, int64(1), s.calls.Load(), "no cold Client refetched a token moments old")
	})
}

// panicOnCached is a slog handler that panics on the "token cached" line.
type panicOnCached struct{}

func (panicOnCached) Enabled(context.Context, slog.Level) bool { return true }
func (panicOnCached) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "token cached") {
		panic("handler broke")
	}
	return nil
}
func (h panicOnCached) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h panicOnCached) WithGroup(string) slog.Handler      { return h }

// A logger that panics while the outcome is recorded neither hangs the
// waiters (they waited forever) nor crashes the process.
func TestPanickingLoggerDoesNotHangWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := NewClient("k", &sameSource{}, WithStore(NewMemoryStore()), WithLogger(slog.New(panicOnCached{})))
		require.NoError(t, err)
		defer c.Close()
		tok, err := c.Get(context.Background())
		require.NoError(t, err)
		assert.Equal(t, "SAME", tok)
	})
}

// refreshSource returns a credential with a refresh token.
type refreshSource struct{ boom bool }

func (s refreshSource) Fetch(context.Context, FetchRequest) (Token, error) {
	if s.boom {
		panic("upstream exploded")
	}
	return Token{AccessToken: "ACCESS-SECRET-1", ExpiresIn: 7200, CreateTime: time.Now(), Refresh: "REFRESH-SECRET-1"}, nil
}

// panickyStore panics in Save, printing the Token it was given.
type panickyStore struct{ *MemoryStore }

func (s panickyStore) Save(_ context.Context, _ string, tok Token) error { panic(tok) }

// A panic's text never carries a refresh token, nor the token being saved,
// even once the Client is closing (it carried both).
func TestPanicTextHoldsNoRefreshToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &logbuf.Buffer{}
		c, err := NewClient("k", refreshSource{}, WithStore(panickyStore{NewMemoryStore()}),
			WithLogger(logs.Logger(slog.LevelDebug)))
		require.NoError(t, err)
		_, err = c.Get(context.Background())
		require.NoError(t, err)
		require.NoError(t, c.Close())
		assert.Contains(t, logs.String(), "panic in Store.Save")
		assert.NotContains(t, logs.String(), "REFRESH-SECRET")
		assert.NotContains(t, logs.String(), "ACCESS-SECRET")
	})
}

// originSource is a Source whose API lives elsewhere, with a store key of
// its own.
type originSource struct{ sameSource }

func (s *originSource) Info() SourceInfo { return SourceInfo{APIOrigin: "https://qyapi.weixin.qq.com"} }
func (s *originSource) StoreKey() string { return "y" }

// A Registry key's handle closes its own key, not the key its store key
// names; and a Source's API origin holds in a Registry as for a lone Client.
func TestRegistryKeysKeepTheirOriginAndTheirKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := NewRegistry(func(ctx context.Context, key string) (Source, error) {
			if key == "x" {
				return &originSource{}, nil
			}
			return &sameSource{}, nil
		}, WithStore(NewMemoryStore()), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer r.Close()
		x, err := r.Client(context.Background(), "x")
		require.NoError(t, err)
		y, err := r.Client(context.Background(), "y")
		require.NoError(t, err)
		assert.Equal(t, "https://qyapi.weixin.qq.com", x.BaseURL())
		assert.Equal(t, DefaultBaseURL, y.BaseURL())

		require.NoError(t, x.Close())
		assert.Equal(t, 1, r.Len(), "x is forgotten, y is not")
		assert.Equal(t, "SAME", mustGet(t, y))
		_, err = x.Get(context.Background())
		require.ErrorIs(t, err, ErrClosed)
	})
}

// Failed lookups of keys nobody has do not pile up in a Registry.
func TestRegistryDropsFailedLookups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRegistryRig(t)
		rig.fail.Store(true)
		for i := range 100 {
			_, err := rig.r.Get(context.Background(), "probe"+string(rune('a'+i%26))+string(rune('a'+i/26)))
			require.Error(t, err)
		}
		assert.Equal(t, 100, rig.r.Len())
		time.Sleep(DefaultLookupRetry + time.Second)
		synctest.Wait()
		assert.Zero(t, rig.r.Len(), "failed lookups are dropped once they may be retried")
	})
}
