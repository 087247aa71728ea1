package openplatform_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/openplatform"
	"github.com/wxtoken/wxtoken/wxtest"
)

// deliverOK delivers ev to p, which must answer success.
func deliverOK(t *testing.T, srv *wxtest.Server, p *openplatform.Platform, ev wxtest.PlatformEvent) {
	t.Helper()
	status, body, err := srv.Deliver(p, ev)
	require.NoError(t, err)
	require.Equal(t, "success", body, status)
}

// An unauthorized event that arrives after a later authorization (WeChat
// retrying a delivery, a replay) changes nothing: the merchant's record and
// refresh token stay, on this replica and a new one.
func TestLateUnauthorizedKeepsNewerAuthorization(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		p, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		unauth, err := srv.Unauthorize(wxtest.DefaultComponentAppID, merchant)
		require.NoError(t, err)
		time.Sleep(time.Minute)
		authorize(t, srv, p, merchant) // the merchant authorizes again
		kept := load(t, store, authorizerKey(merchant))
		time.Sleep(time.Minute)
		deliverOK(t, srv, p, unauth) // the earlier event, late

		assert.Equal(t, kept, load(t, store, authorizerKey(merchant)), "the record is untouched")
		tok, err := p.Token(t.Context(), merchant)
		require.NoError(t, err)
		assert.Zero(t, srv.CheckToken(tok), "a token WeChat accepts")
		other, _ := newPlatform(t, srv, store, component)
		_, err = other.Token(t.Context(), merchant)
		require.NoError(t, err)
	})
}

// An unauthorized event over an hour old is refused (a replay): the
// authorization time that would tell it late is kept for a day only, and
// WeChat retries a delivery for minutes, not hours. Here the authorization
// after it was never delivered, so only the event's age tells.
func TestUnauthorizedEventOverAnHourOldChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		p, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		unauth, err := srv.Unauthorize(wxtest.DefaultComponentAppID, merchant)
		require.NoError(t, err)
		_, err = srv.Authorize(wxtest.DefaultComponentAppID, merchant, 1) // back again; that event is lost
		require.NoError(t, err)

		time.Sleep(2 * time.Hour)
		pushTicket(t, srv, p)
		deliverOK(t, srv, p, unauth)
		time.Sleep(2 * time.Second)
		tok, err := p.Token(t.Context(), merchant)
		require.NoError(t, err)
		assert.Zero(t, srv.CheckToken(tok))
	})
}

// A tombstone that an authorization newer than its event superseded (the
// authorized event lost) is lifted by Recover, with the listed refresh token.
func TestRecoverLiftsTombstoneOfReauthorizedAccount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		p, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		time.Sleep(time.Minute)
		unauth, err := srv.Unauthorize(wxtest.DefaultComponentAppID, merchant)
		require.NoError(t, err)
		deliverOK(t, srv, p, unauth)
		_, err = p.Token(t.Context(), merchant)
		require.ErrorIs(t, err, openplatform.ErrNotAuthorized)

		time.Sleep(time.Minute)
		_, err = srv.Authorize(wxtest.DefaultComponentAppID, merchant, 1) // its event never arrives
		require.NoError(t, err)
		rep, err := p.Recover(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{merchant}, rep.Reauthorized)
		assert.Equal(t, srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, merchant),
			load(t, store, authorizerKey(merchant)).Refresh)
		tok, err := p.Token(t.Context(), merchant)
		require.NoError(t, err)
		assert.Zero(t, srv.CheckToken(tok))

		// A tombstone no older than the listed authorization stays.
		time.Sleep(time.Minute)
		unauth, err = srv.Unauthorize(wxtest.DefaultComponentAppID, merchant)
		require.NoError(t, err)
		deliverOK(t, srv, p, unauth)
		rep, err = p.Recover(t.Context())
		require.NoError(t, err)
		assert.Empty(t, rep.Reauthorized)
		assert.Zero(t, rep.Listed, "WeChat lists it no more")
	})
}

// Other replicas learn of an unauthorized event at their next store sync
// (without a change feed): from then on ErrNotAuthorized, no upstream call.
func TestUnauthorizedReachesOtherReplicasAtStoreSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		p, _ := newPlatform(t, srv, store, component)
		other, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		_, err := other.Token(t.Context(), merchant)
		require.NoError(t, err)
		time.Sleep(time.Minute)

		unauth, err := srv.Unauthorize(wxtest.DefaultComponentAppID, merchant)
		require.NoError(t, err)
		deliverOK(t, srv, p, unauth)
		calls := srv.PlatformCalls(wxtest.PathAuthorizerToken) + srv.PlatformCalls(wxtest.PathAuthorizerList)
		time.Sleep(5 * time.Minute) // the Registry's store sync: 4 min ± 10 %
		for range 10 {
			_, err = other.Token(t.Context(), merchant)
			require.ErrorIs(t, err, openplatform.ErrNotAuthorized)
			time.Sleep(time.Minute)
		}
		assert.Equal(t, calls, srv.PlatformCalls(wxtest.PathAuthorizerToken)+srv.PlatformCalls(wxtest.PathAuthorizerList))
	})
}

// panicOnce panics on the first request for the authorizer list.
type panicOnce struct {
	rt    http.RoundTripper
	fired atomic.Bool
}

func (p *panicOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == wxtest.PathAuthorizerList && p.fired.CompareAndSwap(false, true) {
		panic("transport bug")
	}
	return p.rt.RoundTrip(r)
}

// A panic in a user's RoundTripper during a walk of the authorizer list is
// that walk's error; the next walk runs.
func TestPanicInListWalkDoesNotBlockLaterWalks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		hc := *srv.Client()
		hc.Transport = &panicOnce{rt: srv.Client().Transport}
		p, _ := newPlatform(t, srv, wxtoken.NewMemoryStore(), component, openplatform.WithHTTPClient(&hc))
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		_, err := p.Recover(t.Context())
		require.ErrorContains(t, err, "panicked")
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		rep, err := p.Recover(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, rep.Listed)
	})
}

// A 61023 whose authorizer list cannot be read is retryable, not
// ErrNotAuthorized: once WeChat answers again, the token comes.
func TestListFailureAfter61023IsRetryable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler(wxtest.WithRefreshTokenRotation())
		p, _ := newPlatform(t, srv, wxtoken.NewMemoryStore(), component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		time.Sleep(2 * time.Hour)
		pushTicket(t, srv, p)
		srv.Inject(wxtest.FaultErrcode(openplatform.CodeRefreshTokenInvalid, "").On(wxtest.PathAuthorizerToken))
		srv.Inject(wxtest.FaultErrcode(-1, "system busy").On(wxtest.PathAuthorizerList))
		_, err := p.Token(t.Context(), merchant)
		require.Error(t, err)
		assert.NotErrorIs(t, err, openplatform.ErrNotAuthorized)
		assert.True(t, wxtoken.IsRetryable(err), "%v", err)
		time.Sleep(30 * time.Second)
		_, err = p.Token(t.Context(), merchant)
		require.NoError(t, err)
	})
}

// The walk of the list runs on a context of its own: the caller that
// started it leaving does not fail it for the others sharing it.
func TestListWalkOutlivesItsFirstCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		p, _ := newPlatform(t, srv, wxtoken.NewMemoryStore(), component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		_, err := p.Component().Get(t.Context())
		require.NoError(t, err)
		srv.Inject(wxtest.FaultDelay(10 * time.Second).On(wxtest.PathAuthorizerList))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		firstErr := make(chan error, 1)
		go func() {
			_, err := p.Recover(ctx)
			firstErr <- err
		}()
		synctest.Wait() // the walk is under way
		rep, err := p.Recover(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, rep.Listed)
		require.ErrorIs(t, <-firstErr, context.DeadlineExceeded)
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathAuthorizerList), "one walk, shared")
	})
}

// A walk from before the failing exchange is not reused: it may list the
// refresh token that another replica rotated since.
func TestWalkFromBeforeTheExchangeIsNotReused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler(wxtest.WithRefreshTokenRotation())
		store := wxtoken.NewMemoryStore()
		p, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		stale := load(t, store, authorizerKey(merchant))
		elsewhere := wxtoken.NewMemoryStore()
		require.NoError(t, elsewhere.Save(t.Context(), authorizerKey(merchant), stale))
		other, _ := newPlatform(t, srv, elsewhere, component)
		time.Sleep(2 * time.Hour)
		pushTicket(t, srv, p)
		_, err := p.Recover(t.Context()) // lists R0
		require.NoError(t, err)
		time.Sleep(5 * time.Second)
		_, err = srv.PushTicket(other, wxtest.DefaultComponentAppID)
		require.NoError(t, err)
		_, err = other.Token(t.Context(), merchant) // rotates R0 to R1; p does not hear of it
		require.NoError(t, err)
		time.Sleep(5 * time.Second)
		pushTicket(t, srv, p)
		_, err = p.Token(t.Context(), merchant) // R0: 61023; the list now says R1
		require.NoError(t, err)
		assert.Equal(t, 2, srv.PlatformCalls(wxtest.PathAuthorizerList))
	})
}

// A 61003 from api_authorizer_token (the unauthorized event lost) is
// ErrNotAuthorized with the appid, and permanent.
func Test61003IsNotAuthorized(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		p, _ := newPlatform(t, srv, wxtoken.NewMemoryStore(), component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		_, err := srv.Unauthorize(wxtest.DefaultComponentAppID, merchant) // its event is lost
		require.NoError(t, err)
		time.Sleep(2 * time.Hour)
		pushTicket(t, srv, p)
		_, err = p.Token(t.Context(), merchant)
		require.ErrorIs(t, err, openplatform.ErrNotAuthorized)
		var na *openplatform.NotAuthorizedError
		require.ErrorAs(t, err, &na)
		assert.Equal(t, merchant, na.AppID)
		assert.Equal(t, openplatform.CodeNotAuthorized, apiCodeOf(err))
		assert.True(t, wxtoken.IsPermanent(err))
	})
}

// failAuthorizerSaves fails the next n Saves of records with a refresh token.
type failAuthorizerSaves struct {
	*wxtoken.MemoryStore
	n atomic.Int32
}

func (s *failAuthorizerSaves) Save(ctx context.Context, key string, tok wxtoken.Token) error {
	if tok.Refresh != "" && s.n.Add(-1) >= 0 {
		return errors.New("redis: connection reset")
	}
	return s.MemoryStore.Save(ctx, key, tok)
}

// A Save that fails during an authorized event is tried again within the
// event's deadline; one that keeps failing is retried in the background
// until the Store takes it, and logged at Error; never dropped.
func TestAuthorizeSaveFailureIsRetried(t *testing.T) {
	t.Run("within the event", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			store := &failAuthorizerSaves{MemoryStore: wxtoken.NewMemoryStore()}
			p, _ := newPlatform(t, srv, store, component)
			pushTicket(t, srv, p)
			store.n.Store(2)
			authorize(t, srv, p, merchant) // answered success: saved on the third try
			assert.NotEmpty(t, load(t, store, authorizerKey(merchant)).Refresh)
		})
	})
	t.Run("in the background", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			store := &failAuthorizerSaves{MemoryStore: wxtoken.NewMemoryStore()}
			p, logs := newPlatform(t, srv, store, component)
			pushTicket(t, srv, p)
			store.n.Store(8)
			ev, err := srv.Authorize(wxtest.DefaultComponentAppID, merchant, 1)
			require.NoError(t, err)
			status, _, err := srv.Deliver(p, ev)
			require.NoError(t, err)
			assert.Equal(t, http.StatusInternalServerError, status, "not saved yet: WeChat sends it again")
			tok, err := p.Token(t.Context(), merchant)
			require.NoError(t, err, "served from memory meanwhile")
			assert.Zero(t, srv.CheckToken(tok))
			time.Sleep(10 * time.Minute)
			synctest.Wait()
			rec := load(t, store, authorizerKey(merchant))
			assert.Equal(t, srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, merchant), rec.Refresh)
			assert.Contains(t, logs.String(), "level=ERROR")
		})
	})
}

// WeChat's refusal of a ticket (61006) is kept in the Store: a restarted
// process does not send it again, and the next push ends the wait.
func TestRefusedTicketIsNotSentAgainAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		first, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, first)
		srv.Inject(wxtest.FaultErrcode(openplatform.CodeTicketInvalid, "").On(wxtest.PathComponentToken))
		_, err := first.Component().Get(t.Context())
		require.ErrorIs(t, err, openplatform.ErrNoVerifyTicket)
		first.Close()

		second, _ := newPlatform(t, srv, store, component)
		_, err = second.Component().Get(t.Context())
		require.ErrorIs(t, err, openplatform.ErrNoVerifyTicket)
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathComponentToken), "the refused ticket is not sent again")
		pushTicket(t, srv, second)
		_, err = second.Component().Get(t.Context())
		require.NoError(t, err)
	})
}

// Without a ticket, an hour of callers hammering Get costs no
// api_component_token call and at most one api_start_push_ticket per
// 10 minutes; a push ends the wait at once on the replica it reaches, and
// within a second on another.
func TestPushEndsTheWaitAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		p, _ := newPlatform(t, srv, store, component)
		other, _ := newPlatform(t, srv, store, component)
		for range 3600 * 4 { // an hour, both replicas four times a second
			_, err := p.Component().Get(t.Context())
			require.ErrorIs(t, err, openplatform.ErrNoVerifyTicket)
			_, err = other.Component().Get(t.Context())
			require.ErrorIs(t, err, openplatform.ErrNoVerifyTicket)
			time.Sleep(250 * time.Millisecond)
		}
		assert.Zero(t, srv.PlatformCalls(wxtest.PathComponentToken))
		pushes := srv.PlatformCalls(wxtest.PathStartPushTicket)
		assert.LessOrEqual(t, pushes, 12, "six an hour for each replica")
		t.Logf("an hour without a ticket, two replicas: %d api_start_push_ticket, 0 api_component_token", pushes)

		pushTicket(t, srv, p)
		_, err := p.Component().Get(t.Context()) // no time passed since the last failure
		require.NoError(t, err)
		time.Sleep(time.Second)
		_, err = other.Component().Get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathComponentToken), "the other replica reads the token from the Store")
	})
}
