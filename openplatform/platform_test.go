package openplatform_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/openplatform"
	"github.com/wxtoken/wxtoken/wxtest"
)

const merchant = "wx1111111111111111"

func TestPushedTicketGivesComponentToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		p, _ := newPlatform(t, srv, store, component)
		ticket := pushTicket(t, srv, p)

		assert.Equal(t, ticket, load(t, store, wxtest.DefaultComponentAppID+".component.ticket").AccessToken)
		tok, err := p.Component().Get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, srv.CurrentComponentToken(wxtest.DefaultComponentAppID), tok)
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathComponentToken))
		assert.Zero(t, srv.PlatformCalls(wxtest.PathStartPushTicket))
	})
}

func TestNoTicketAsksForPushOnceAndFailsTyped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		p, _ := newPlatform(t, srv, wxtoken.NewMemoryStore(), component)
		for range 30 { // half an hour of callers asking every minute
			_, err := p.Component().Get(t.Context())
			require.ErrorIs(t, err, openplatform.ErrNoVerifyTicket)
			assert.True(t, wxtoken.IsRetryable(err))
			time.Sleep(time.Minute)
		}
		assert.Zero(t, srv.PlatformCalls(wxtest.PathComponentToken), "no ticket, no token call")
		assert.LessOrEqual(t, srv.PlatformCalls(wxtest.PathStartPushTicket), 3, "one ask per 10 min")
		assert.GreaterOrEqual(t, srv.PlatformCalls(wxtest.PathStartPushTicket), 1)

		pushTicket(t, srv, p)
		time.Sleep(2 * time.Minute) // the failure backoff is at most 1.5 min
		_, err := p.Component().Get(t.Context())
		require.NoError(t, err, "the push ends the wait")
	})
}

func TestRestartedPlatformUsesStoredTicket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		first, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, first)
		_, err := first.Component().Get(t.Context())
		require.NoError(t, err)
		first.Close()

		time.Sleep(3 * time.Hour) // the component token expired; the ticket lives 12 h
		// A new process: a new Platform with fresh state on the same Store.
		second, _ := newPlatform(t, srv, store, component)
		_, err = second.Component().Get(t.Context())
		require.NoError(t, err)
		assert.Zero(t, srv.PlatformCalls(wxtest.PathStartPushTicket), "0 waits for a ticket")
		assert.Equal(t, 2, srv.PlatformCalls(wxtest.PathComponentToken))
	})
}

func TestRefusedTicketIsAskedForAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		p, _ := newPlatform(t, srv, wxtoken.NewMemoryStore(), component)
		pushTicket(t, srv, p)
		srv.Inject(wxtest.FaultErrcode(openplatform.CodeTicketInvalid, "").On(wxtest.PathComponentToken))
		_, err := p.Component().Get(t.Context())
		require.ErrorIs(t, err, openplatform.ErrNoVerifyTicket)
		var apiErr *wxtoken.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, wxtest.PathComponentToken, apiErr.Endpoint)
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathStartPushTicket))
	})
}

func TestClientIPNotRegisteredIsPermanent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		p, _ := newPlatform(t, srv, wxtoken.NewMemoryStore(), component)
		pushTicket(t, srv, p)
		srv.Inject(wxtest.FaultErrcode(openplatform.CodeClientIPNotRegistered, "").On(wxtest.PathComponentToken))
		_, err := p.Component().Get(t.Context())
		require.Error(t, err)
		assert.True(t, wxtoken.IsPermanent(err))
		_, err = p.Component().Get(t.Context())
		require.Error(t, err, "the failure is shared")
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathComponentToken), "not hammered")
	})
}

func TestFourColdReplicasFetchOneComponentToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		var replicas []*openplatform.Platform
		for range 4 {
			p, _ := newPlatform(t, srv, store, component)
			replicas = append(replicas, p)
		}
		pushTicket(t, srv, replicas[0])
		var wg sync.WaitGroup
		for _, p := range replicas {
			wg.Go(func() {
				_, err := p.Component().Get(context.Background())
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathComponentToken))
	})
}

// savesWatcher records, at each Save of an authorizer record, what the
// Store held, so that a test can tell whether it came before an answer.
type savesWatcher struct {
	*wxtoken.MemoryStore
	mu    sync.Mutex
	saved map[string]wxtoken.Token
}

func (s *savesWatcher) Save(ctx context.Context, key string, tok wxtoken.Token) error {
	err := s.MemoryStore.Save(ctx, key, tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.saved[key] = tok
	}
	return err
}

func TestAuthorizedEventSavesRecordBeforeSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := &savesWatcher{MemoryStore: wxtoken.NewMemoryStore(), saved: map[string]wxtoken.Token{}}
		var atEvent wxtoken.Token
		var events []openplatform.Event
		cfg := component
		cfg.OnEvent = func(ctx context.Context, ev openplatform.Event) {
			events = append(events, ev)
			if ev.InfoType == openplatform.InfoAuthorized {
				atEvent, _ = store.Load(ctx, authorizerKey(ev.AuthorizerAppID))
			}
		}
		p, _ := newPlatform(t, srv, store, cfg)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)

		rec := load(t, store, authorizerKey(merchant))
		assert.Equal(t, srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, merchant), rec.Refresh)
		assert.Equal(t, rec.Refresh, atEvent.Refresh, "saved before OnEvent and before success")
		require.Len(t, events, 2)
		require.NotNil(t, events[1].Authorization)
		assert.Equal(t, []int{1, 15}, events[1].Authorization.FuncInfo)
		assert.NotContains(t, events[0].String(), srv.CurrentVerifyTicket(wxtest.DefaultComponentAppID))

		tok, err := p.Token(t.Context(), merchant)
		require.NoError(t, err)
		assert.Equal(t, rec.AccessToken, tok, "the exchanged token is served")
		assert.Zero(t, srv.PlatformCalls(wxtest.PathAuthorizerToken))
		assert.Equal(t, wxtest.CodeOK, srv.CheckToken(tok), "business APIs take it")
	})
}

// An unauthorized event: from the moment it is answered, this replica and
// a restarted one get ErrNotAuthorized, never the tombstone's placeholder as
// a token, with no upstream call; time passes between every step, so that
// the tombstone is dated in the past, as in production.
func TestUnauthorizedGivesNotAuthorizedWithoutUpstreamCalls(t *testing.T) {
	for _, warm := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			store := wxtoken.NewMemoryStore()
			p, _ := newPlatform(t, srv, store, component)
			pushTicket(t, srv, p)
			authorize(t, srv, p, merchant)
			if warm {
				_, err := p.Token(t.Context(), merchant)
				require.NoError(t, err)
			}
			time.Sleep(time.Minute)

			ev, err := srv.Unauthorize(wxtest.DefaultComponentAppID, merchant)
			require.NoError(t, err)
			status, body, err := srv.Deliver(p, ev)
			require.NoError(t, err)
			require.Equal(t, "success", body, status)
			before := srv.PlatformCalls(wxtest.PathAuthorizerToken) + srv.PlatformCalls(wxtest.PathAuthorizerList)

			for _, pause := range []time.Duration{0, 300 * time.Millisecond, time.Second, time.Minute} {
				time.Sleep(pause)
				tok, err := p.Token(t.Context(), merchant)
				require.ErrorIs(t, err, openplatform.ErrNotAuthorized, "after %v: got %q", pause, tok)
				var na *openplatform.NotAuthorizedError
				require.ErrorAs(t, err, &na)
				assert.Equal(t, merchant, na.AppID)
				assert.True(t, wxtoken.IsPermanent(err))
			}
			// A restarted replica sees the tombstone in the Store too.
			other, _ := newPlatform(t, srv, store, component)
			tok, err := other.Token(t.Context(), merchant)
			require.ErrorIs(t, err, openplatform.ErrNotAuthorized, "got %q", tok)
			assert.Equal(t, before, srv.PlatformCalls(wxtest.PathAuthorizerToken)+srv.PlatformCalls(wxtest.PathAuthorizerList),
				"no upstream calls for a gone authorizer")

			time.Sleep(time.Minute)
			authorize(t, srv, p, merchant) // authorizes again: the tombstone is lifted
			_, err = p.Token(t.Context(), merchant)
			require.NoError(t, err)
		})
	}
}

func TestTamperedOrReplayedPushChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const otherApp = "wx2222222222222222"
		srv := wxtest.NewHandler(
			wxtest.WithComponent(wxtest.DefaultComponentAppID, wxtest.DefaultComponentSecret, wxtest.DefaultComponentToken, wxtest.DefaultComponentAESKey),
			wxtest.WithComponent(otherApp, wxtest.DefaultComponentSecret, wxtest.DefaultComponentToken, wxtest.DefaultComponentAESKey))
		store := wxtoken.NewMemoryStore()
		p, logs := newPlatform(t, srv, store, component)
		old, err := srv.NewVerifyTicket(wxtest.DefaultComponentAppID)
		require.NoError(t, err)
		time.Sleep(10 * time.Minute)
		current := pushTicket(t, srv, p)
		key := wxtest.DefaultComponentAppID + ".component.ticket"

		// A replay of the older push: answered success, changes nothing.
		status, body, err := srv.Deliver(p, old)
		require.NoError(t, err)
		assert.Equal(t, "success", body, status)
		assert.Equal(t, current, load(t, store, key).AccessToken)

		// A flipped bit in the ciphertext.
		ev, err := srv.NewVerifyTicket(wxtest.DefaultComponentAppID)
		require.NoError(t, err)
		req, err := srv.EventRequest("http://platform.invalid/events", ev)
		require.NoError(t, err)
		raw := readAll(t, req)
		i := strings.Index(raw, "<Encrypt><![CDATA[") + len("<Encrypt><![CDATA[") + 5
		flipped := raw[:i] + string(raw[i]^1) + raw[i+1:]
		assert.Equal(t, http.StatusForbidden, serve(t, p, req, flipped))
		assert.Equal(t, current, load(t, store, key).AccessToken)

		// Addressed to another platform with the same keys: the receiver id differs.
		foreign, err := srv.NewVerifyTicket(otherApp)
		require.NoError(t, err)
		status, _, err = srv.Deliver(p, foreign)
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, status)
		assert.Equal(t, current, load(t, store, key).AccessToken)
		assert.NotContains(t, logs.String(), wxtest.DefaultComponentAESKey)
		assert.NotContains(t, logs.String(), wxtest.DefaultComponentSecret)
		assert.Contains(t, logs.String(), "refused an event")
	})
}

func TestAuthURLCachesPreAuthCode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		p, _ := newPlatform(t, srv, wxtoken.NewMemoryStore(), component)
		pushTicket(t, srv, p)
		var links []string
		for range 5 {
			link, err := p.AuthURL(t.Context(), "https://example.com/back", openplatform.AuthOptions{})
			require.NoError(t, err)
			links = append(links, link)
		}
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathCreatePreAuthCode), "one code for its lifetime")
		assert.True(t, strings.HasPrefix(links[0], "https://mp.weixin.qq.com/cgi-bin/componentloginpage?"), links[0])
		assert.Contains(t, links[0], "auth_type=3")
		mobile, err := p.AuthURL(t.Context(), "https://example.com/back",
			openplatform.AuthOptions{Mobile: true, AuthType: openplatform.AuthMiniPrograms, BizAppID: merchant})
		require.NoError(t, err)
		assert.Contains(t, mobile, "https://open.weixin.qq.com/wxaopen/safe/bindcomponent?")
		assert.Contains(t, mobile, "biz_appid="+merchant)
		assert.Contains(t, mobile, "auth_type=2")
		assert.True(t, strings.HasSuffix(mobile, "#wechat_redirect"))
	})
}

func TestRecoverRestoresDeletedRefreshToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler(wxtest.WithRefreshTokenRotation())
		store, deleteKey := fileStore(t)
		p, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		deleteKey(authorizerKey(merchant)) // by hand

		rep, err := p.Recover(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{merchant}, rep.Restored)
		assert.Equal(t, 1, rep.Listed)
		assert.Equal(t, srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, merchant),
			load(t, store, authorizerKey(merchant)).Refresh)

		// A new process renews with the restored refresh token.
		other, _ := newPlatform(t, srv, store, component)
		_, err = other.Token(t.Context(), merchant)
		require.NoError(t, err)
		synctest.Wait() // the save follows the answer
		assert.Equal(t, srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, merchant),
			load(t, store, authorizerKey(merchant)).Refresh, "the rotated one saved")
	})
}

func TestInvalidRefreshTokenRecoversOnceThenNotAuthorized(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		p, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		time.Sleep(2 * time.Hour) // the access token expired: the next Get exchanges

		srv.InjectN(100, wxtest.FaultErrcode(openplatform.CodeRefreshTokenInvalid, "").On(wxtest.PathAuthorizerToken))
		_, err := p.Token(t.Context(), merchant)
		require.ErrorIs(t, err, openplatform.ErrNotAuthorized)
		var na *openplatform.NotAuthorizedError
		require.ErrorAs(t, err, &na)
		assert.Equal(t, merchant, na.AppID)
		assert.Equal(t, openplatform.CodeRefreshTokenInvalid, apiCodeOf(err))
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathAuthorizerList), "Recover tried once")
		calls := srv.PlatformCalls(wxtest.PathAuthorizerToken)
		for range 10 {
			_, err = p.Token(t.Context(), merchant)
			require.ErrorIs(t, err, openplatform.ErrNotAuthorized)
		}
		assert.Equal(t, calls, srv.PlatformCalls(wxtest.PathAuthorizerToken), "answered from memory")
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathAuthorizerList))
	})
}

func TestRotatedRefreshTokenRecoveredAfter61023(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler(wxtest.WithRefreshTokenRotation())
		store := wxtoken.NewMemoryStore()
		p, _ := newPlatform(t, srv, store, component)
		pushTicket(t, srv, p)
		authorize(t, srv, p, merchant)
		stale := load(t, store, authorizerKey(merchant))

		// WeChat rotates the refresh token for an exchange whose record never
		// reached this Store (a save lost elsewhere).
		elsewhere := wxtoken.NewMemoryStore()
		require.NoError(t, elsewhere.Save(t.Context(), authorizerKey(merchant), stale))
		other, _ := newPlatform(t, srv, elsewhere, component)
		pushTicket(t, srv, other)
		time.Sleep(2 * time.Hour)
		_, err := other.Token(t.Context(), merchant)
		require.NoError(t, err)
		require.NotEqual(t, stale.Refresh, srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, merchant))
		pushTicket(t, srv, p)       // the other process's push made p's ticket too old
		time.Sleep(2 * time.Minute) // the component token's failure backoff

		_, err = p.Token(t.Context(), merchant)
		require.NoError(t, err, "61023, then the listed refresh token")
		synctest.Wait()
		assert.Equal(t, srv.CurrentRefreshToken(wxtest.DefaultComponentAppID, merchant),
			load(t, store, authorizerKey(merchant)).Refresh, "the rotated one saved")
		assert.Equal(t, 1, srv.PlatformCalls(wxtest.PathAuthorizerList))
		assert.Equal(t, 1, srv.Rejections()[openplatform.CodeRefreshTokenInvalid])
	})
}

// No level of an error's chain, following both Unwrap() error and
// Unwrap() []error (a "%w: %w" join, as the 61005/61006 path makes), holds
// the component secret or the verify ticket.
func TestErrorsHoldNoSecret(t *testing.T) {
	for _, code := range []int{-1, openplatform.CodeTicketExpired, openplatform.CodeTicketInvalid} {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			p, logs := newPlatform(t, srv, wxtoken.NewMemoryStore(), component)
			ticket := pushTicket(t, srv, p)
			srv.Inject(wxtest.FaultErrcode(code, "busy: "+wxtest.DefaultComponentSecret+" "+ticket).On(wxtest.PathComponentToken))
			_, err := p.Component().Get(t.Context())
			require.Error(t, err)
			levels := 0
			walkErrors(err, func(e error) {
				levels++
				assert.NotContains(t, e.Error(), wxtest.DefaultComponentSecret, "errcode %d", code)
				assert.NotContains(t, e.Error(), ticket, "errcode %d", code)
			})
			var apiErr *wxtoken.APIError
			require.ErrorAs(t, err, &apiErr, "the walk reaches WeChat's answer")
			if code != -1 {
				assert.Greater(t, levels, 2, "the join of ErrNoVerifyTicket and WeChat's answer is walked")
			}
			assert.NotContains(t, logs.String(), wxtest.DefaultComponentSecret)
			assert.NotContains(t, logs.String(), ticket)
			assert.NotContains(t, p.String(), wxtest.DefaultComponentSecret)
		})
	}
}

// walkErrors calls f on err and every error below it, through both forms
// of Unwrap.
func walkErrors(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkErrors(e, f)
		}
	}
}

// An Event handed to OnEvent encodes to JSON and XML without its
// decrypted XML, so without the verify ticket or authorization code.
func TestEventEncodesWithoutCredentials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		var events []openplatform.Event
		cfg := component
		cfg.OnEvent = func(ctx context.Context, ev openplatform.Event) { events = append(events, ev) }
		p, _ := newPlatform(t, srv, wxtoken.NewMemoryStore(), cfg)
		ticket := pushTicket(t, srv, p)
		ev, err := srv.Authorize(wxtest.DefaultComponentAppID, merchant, 1)
		require.NoError(t, err)
		deliverOK(t, srv, p, ev)
		require.Len(t, events, 2)
		for _, e := range events {
			require.NotEmpty(t, e.Raw)
			j, err := json.Marshal(e)
			require.NoError(t, err)
			x, err := xml.Marshal(e)
			require.NoError(t, err)
			for _, secret := range []string{ticket, ev.AuthorizationCode} {
				assert.NotContains(t, string(j), secret)
				assert.NotContains(t, string(x), secret)
			}
		}
	})
}

func apiCodeOf(err error) int {
	var apiErr *wxtoken.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	return 0
}
