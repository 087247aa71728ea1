package wxtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	otherCorp       = "ww1111111111111111"
	otherCorpSecret = "s3cr3t-of-another-app"
	// secondAppSecret is a second application of DefaultCorpID.
	secondAppSecret = "Cs2222222222222222222222222222222222222222Z"
)

func wecomQuery(corpID, secret string) url.Values {
	q := url.Values{}
	if corpID != "" {
		q.Set("corpid", corpID)
	}
	if secret != "" {
		q.Set("corpsecret", secret)
	}
	return q
}

func (f *fake) wecomToken(t *testing.T, corpID, secret string) reply {
	t.Helper()
	return f.decode(t, http.MethodGet, PathWeComToken, wecomQuery(corpID, secret), "")
}

func (f *fake) mustWeComToken(t *testing.T, corpID, secret string) reply {
	t.Helper()
	r := f.wecomToken(t, corpID, secret)
	require.Zero(t, r.Errcode, r.Errmsg)
	require.Equal(t, "ok", r.Errmsg)
	require.NotEmpty(t, r.AccessToken)
	return r
}

func (f *fake) wecomSend(t *testing.T, method, tok string) reply {
	t.Helper()
	q := url.Values{}
	if tok != "" {
		q.Set("access_token", tok)
	}
	return f.decode(t, method, PathWeComSend, q, `{"touser":"@all","msgtype":"text","agentid":1,"text":{"content":"hi"}}`)
}

// wecomTicket calls get_jsapi_ticket for TicketJSAPI, ticket/get otherwise.
func (f *fake) wecomTicket(t *testing.T, tok, kind string) reply {
	t.Helper()
	q := url.Values{}
	if tok != "" {
		q.Set("access_token", tok)
	}
	if kind == TicketJSAPI {
		return f.decode(t, http.MethodGet, PathWeComJSAPITicket, q, "")
	}
	if kind != "" {
		q.Set("type", kind)
	}
	return f.decode(t, http.MethodGet, PathWeComAgentTicket, q, "")
}

func (f *fake) mustWeComTicket(t *testing.T, tok, kind string) reply {
	t.Helper()
	r := f.wecomTicket(t, tok, kind)
	require.Zero(t, r.Errcode, r.Errmsg)
	require.NotEmpty(t, r.Ticket)
	return r
}

func TestWeComTokenCredentialErrors(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		cases := []struct {
			name   string
			method string
			q      url.Values
			code   int
			msg    string
		}{
			{"POST", http.MethodPost, wecomQuery(DefaultCorpID, DefaultCorpSecret), 43001, "require GET method"},
			{"no corpid", http.MethodGet, wecomQuery("", DefaultCorpSecret), 41002, "corpid missing"},
			{"no secret", http.MethodGet, wecomQuery(DefaultCorpID, ""), 41004, "corpsecret missing"},
			{"unknown corpid", http.MethodGet, wecomQuery(otherCorp, DefaultCorpSecret), 40013, "invalid corpid"},
			{"wrong secret", http.MethodGet, wecomQuery(DefaultCorpID, otherCorpSecret), 40001, "invalid credential"},
			{"an app secret is not a corp secret", http.MethodGet, wecomQuery(DefaultCorpID, DefaultSecret), 40001, "invalid credential"},
		}
		for _, c := range cases {
			r := f.decode(t, c.method, PathWeComToken, c.q, "")
			assert.Equal(t, c.code, r.Errcode, c.name)
			assert.True(t, strings.HasPrefix(r.Errmsg, c.msg+" rid: "), "%s: %q", c.name, r.Errmsg)
			assert.Empty(t, r.AccessToken, c.name)
		}
		assert.Equal(t, len(cases), f.WeComTokenCalls())
		assert.Zero(t, f.TokenCalls())
		assert.Equal(t, map[int]int{43001: 1, 41002: 1, 41004: 1, 40013: 1, 40001: 2}, f.Rejections())
		assert.Empty(t, f.CurrentWeComToken(DefaultCorpID, DefaultCorpSecret))
	})
}

func TestWeComTokenAnswer(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		resp, b := f.do(t, http.MethodGet, PathWeComToken, wecomQuery(DefaultCorpID, DefaultCorpSecret), "")
		assert.Equal(t, "application/json; charset=UTF-8", resp.Header.Get("Content-Type"))
		var r map[string]any
		require.NoError(t, json.Unmarshal(b, &r))
		tok := f.CurrentWeComToken(DefaultCorpID, DefaultCorpSecret)
		assert.Equal(t, map[string]any{"errcode": 0.0, "errmsg": "ok", "access_token": tok, "expires_in": 7200.0}, r)
		assert.Equal(t, 1, f.WeComTokenCalls())
	})
}

func TestWeComSameTokenWhileValid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := bubbleFake(t, WithCorp(DefaultCorpID, DefaultCorpSecret, secondAppSecret))
		first := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret)
		assert.Equal(t, int64(7200), first.ExpiresIn)

		time.Sleep(90 * time.Minute)
		again := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret)
		assert.Equal(t, first.AccessToken, again.AccessToken, "same token while valid")
		assert.Equal(t, int64(1800), again.ExpiresIn)
		second := f.mustWeComToken(t, DefaultCorpID, secondAppSecret)
		assert.NotEqual(t, first.AccessToken, second.AccessToken, "each application has its own token")
		assert.Equal(t, second.AccessToken, f.CurrentWeComToken(DefaultCorpID, secondAppSecret))

		time.Sleep(30 * time.Minute)
		assert.Equal(t, CodeTokenExpired, f.CheckWeComToken(first.AccessToken))
		assert.Equal(t, CodeTokenExpired, f.wecomSend(t, http.MethodPost, first.AccessToken).Errcode)
		fresh := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret)
		assert.NotEqual(t, first.AccessToken, fresh.AccessToken, "a new token once expired")
		assert.Equal(t, int64(7200), fresh.ExpiresIn)
		assert.Zero(t, f.wecomSend(t, http.MethodPost, fresh.AccessToken).Errcode)
		assert.Equal(t, 4, f.WeComTokenCalls())
	})
}

func TestWeComTokenNeverZeroExpiresIn(t *testing.T) {
	f := newLocalFake(t)
	first := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
	f.clk.Advance(DefaultTokenLifetime - time.Second + time.Millisecond)
	r := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret)
	assert.NotEqual(t, first, r.AccessToken)
	assert.Equal(t, int64(7200), r.ExpiresIn)
}

func TestWeComRevoke(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		assert.False(t, f.RevokeWeComToken(DefaultCorpID, DefaultCorpSecret), "no token yet")
		assert.False(t, f.RevokeWeComToken(otherCorp, DefaultCorpSecret))
		tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		require.True(t, f.RevokeWeComToken(DefaultCorpID, DefaultCorpSecret))
		assert.Equal(t, CodeInvalidToken, f.CheckWeComToken(tok))
		r := f.wecomSend(t, http.MethodPost, tok)
		assert.Equal(t, CodeInvalidToken, r.Errcode)
		assert.True(t, strings.HasPrefix(r.Errmsg, "invalid access_token"), r.Errmsg)

		healed := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		assert.NotEqual(t, tok, healed, "gettoken issues a new token after a revoke")
		assert.Zero(t, f.wecomSend(t, http.MethodPost, healed).Errcode)
		assert.Equal(t, CodeInvalidToken, f.CheckWeComToken(tok), "the revoked one stays dead")
	})
}

func TestWeComSendChecks(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		assert.Equal(t, CodeMissingToken, f.wecomSend(t, http.MethodPost, "").Errcode)
		assert.Equal(t, CodeInvalidToken, f.wecomSend(t, http.MethodPost, "made-up-token").Errcode)
		oa := f.mustToken(t)
		assert.Equal(t, CodeInvalidToken, f.wecomSend(t, http.MethodPost, oa).Errcode, "an Official Account token is no WeCom token")

		tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		assert.Equal(t, CodeInvalidCredential, f.callbackIP(t, tok).Errcode, "a WeCom token is no Official Account token")
		assert.Equal(t, CodeRequirePOST, f.wecomSend(t, http.MethodPut, tok).Errcode)
		resp, b := f.do(t, http.MethodPost, PathWeComSend, url.Values{"access_token": {tok}}, `{"msgtype":"text"}`)
		assert.Equal(t, "application/json; charset=UTF-8", resp.Header.Get("Content-Type"))
		assert.JSONEq(t, `{"errcode":0,"errmsg":"ok"}`, string(b))
		assert.Zero(t, f.wecomSend(t, http.MethodGet, tok).Errcode)

		assert.Equal(t, 7, f.BusinessCalls())
		reqs := f.Requests()
		require.Len(t, reqs, 7)
		assert.Equal(t, PathWeComSend, reqs[5].Path)
		assert.Equal(t, `{"msgtype":"text"}`, string(reqs[5].Body))
		assert.Equal(t, []int{41001, 40014, 40014, 40001, 43002, 0, 0},
			[]int{reqs[0].Errcode, reqs[1].Errcode, reqs[2].Errcode, reqs[3].Errcode, reqs[4].Errcode, reqs[5].Errcode, reqs[6].Errcode})
	})
}

func TestWeComTokenQuota(t *testing.T) {
	f := newLocalFake(t, WithWeComTokenQuota(2), WithoutRID())
	tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
	assert.Equal(t, tok, f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken)
	r := f.wecomToken(t, DefaultCorpID, DefaultCorpSecret)
	assert.Equal(t, CodeDailyQuota, r.Errcode)
	assert.Equal(t, "api freq out of limit", r.Errmsg)
	assert.Equal(t, CodeOK, f.CheckWeComToken(tok), "the token still works")
	// Midnight Beijing time resets it; the clock starts at 10:00.
	f.clk.Advance(14 * time.Hour)
	f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret)
	assert.Equal(t, 4, f.WeComTokenCalls())
}

func TestWeComBusyOnlyByFault(t *testing.T) {
	f := newLocalFake(t)
	f.Inject(FaultErrcode(-1, "").On(PathWeComToken))
	r := f.wecomToken(t, DefaultCorpID, DefaultCorpSecret)
	assert.Equal(t, -1, r.Errcode)
	assert.True(t, strings.HasPrefix(r.Errmsg, "system error"), r.Errmsg)
	f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret)
	assert.Equal(t, 2, f.WeComTokenCalls())
	assert.Equal(t, map[int]int{-1: 1}, f.Rejections())
}

// serveFrom answers one request as if it came from 192.0.2.1 (httptest.NewRequest's address).
func serveFrom(t *testing.T, s *Server, path string, q url.Values) reply {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path+"?"+q.Encode(), nil))
	var r reply
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r), rec.Body.String())
	return r
}

func TestWeComTrustedIPs(t *testing.T) {
	t.Run("untrusted", func(t *testing.T) {
		both(t, func(t *testing.T, f *fake) {
			r := f.wecomToken(t, DefaultCorpID, DefaultCorpSecret)
			assert.Equal(t, CodeIPNotAllowed, r.Errcode)
			assert.True(t, strings.HasPrefix(r.Errmsg, "not allow to access from your ip, from ip: 127.0.0.1 rid: "), r.Errmsg)
			// Credentials are checked first.
			assert.Equal(t, CodeInvalidCredential, f.wecomToken(t, DefaultCorpID, "wrong").Errcode)
			assert.Empty(t, f.CurrentWeComToken(DefaultCorpID, DefaultCorpSecret))
		}, WithWeComTrustedIPs("10.0.0.1"))
	})
	t.Run("trusted", func(t *testing.T) {
		f := newLocalFake(t, WithWeComTrustedIPs("10.0.0.1", "127.0.0.1"), WithoutRID())
		tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		f.mustWeComTicket(t, tok, TicketJSAPI)
		assert.Zero(t, f.wecomSend(t, http.MethodPost, tok).Errcode)
		// The same token from an address not on the list.
		q := url.Values{"access_token": {tok}}
		for _, path := range []string{PathWeComSend, PathWeComJSAPITicket} {
			r := serveFrom(t, f.Server, path, q)
			assert.Equal(t, CodeIPNotAllowed, r.Errcode, path)
			assert.Equal(t, "not allow to access from your ip, from ip: 192.0.2.1", r.Errmsg, path)
		}
		assert.Equal(t, CodeIPNotAllowed, serveFrom(t, f.Server, PathWeComToken, wecomQuery(DefaultCorpID, DefaultCorpSecret)).Errcode)
		// Official Account endpoints do not care.
		assert.Zero(t, serveFrom(t, f.Server, PathToken, tokenQuery(DefaultAppID, DefaultSecret)).Errcode)
	})
}

func TestWeComCorps(t *testing.T) {
	f := newLocalFake(t, WithCorp(otherCorp, otherCorpSecret), WithCorp(otherCorp, secondAppSecret))
	assert.Equal(t, CodeInvalidAppID, f.wecomToken(t, DefaultCorpID, DefaultCorpSecret).Errcode, "WithCorp replaces the default corp")
	a := f.mustWeComToken(t, otherCorp, otherCorpSecret).AccessToken
	b := f.mustWeComToken(t, otherCorp, secondAppSecret).AccessToken
	assert.NotEqual(t, a, b)
	assert.Equal(t, CodeInvalidCredential, f.wecomToken(t, otherCorp, DefaultCorpSecret).Errcode)
	assert.Empty(t, f.CurrentWeComToken(otherCorp, DefaultCorpSecret))

	f.Reset()
	assert.Empty(t, f.CurrentWeComToken(otherCorp, otherCorpSecret))
	assert.Equal(t, CodeInvalidToken, f.CheckWeComToken(a))
	assert.Zero(t, f.WeComTokenCalls())
	f.mustWeComToken(t, otherCorp, secondAppSecret) // the corps stay
}

func TestWeComTicketChecks(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		for _, kind := range []string{TicketJSAPI, TicketAgentConfig} {
			assert.Equal(t, CodeMissingToken, f.wecomTicket(t, "", kind).Errcode, kind)
			assert.Equal(t, CodeInvalidToken, f.wecomTicket(t, f.mustToken(t), kind).Errcode, kind)
		}
		tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		for _, typ := range []string{"", "jsapi", "wx_card"} {
			r := f.decode(t, http.MethodGet, PathWeComAgentTicket, url.Values{"access_token": {tok}, "type": {typ}}, "")
			assert.Equal(t, CodeInvalidArgs, r.Errcode, "ticket/get type %q", typ)
		}
		q := url.Values{"access_token": {tok}}
		assert.Equal(t, CodeRequireGET, f.decode(t, http.MethodPost, PathWeComJSAPITicket, q, "").Errcode)
		q.Set("type", TicketAgentConfig)
		assert.Equal(t, CodeRequireGET, f.decode(t, http.MethodPost, PathWeComAgentTicket, q, "").Errcode)

		f.clk.Advance(2 * time.Hour)
		assert.Equal(t, CodeTokenExpired, f.wecomTicket(t, tok, TicketJSAPI).Errcode)
		tok = f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		f.RevokeWeComToken(DefaultCorpID, DefaultCorpSecret)
		assert.Equal(t, CodeInvalidToken, f.wecomTicket(t, tok, TicketAgentConfig).Errcode)

		assert.Equal(t, 11, f.WeComTicketCalls(""))
		assert.Equal(t, 5, f.WeComTicketCalls(TicketJSAPI), "get_jsapi_ticket, and ticket/get?type=jsapi")
		assert.Equal(t, 4, f.WeComTicketCalls(TicketAgentConfig))
		assert.Zero(t, f.TicketCalls(""))
		assert.Empty(t, f.CurrentWeComTicket(DefaultCorpID, DefaultCorpSecret, TicketJSAPI))
	})
}

func TestWeComTicketSameWhileValid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := bubbleFake(t, WithCorp(DefaultCorpID, DefaultCorpSecret, secondAppSecret))
		tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		corp := f.mustWeComTicket(t, tok, TicketJSAPI)
		agent := f.mustWeComTicket(t, tok, TicketAgentConfig)
		assert.Equal(t, int64(7200), corp.ExpiresIn)
		assert.NotEqual(t, corp.Ticket, agent.Ticket)
		other := f.mustWeComTicket(t, f.mustWeComToken(t, DefaultCorpID, secondAppSecret).AccessToken, TicketJSAPI)
		assert.NotEqual(t, corp.Ticket, other.Ticket, "each application has its own tickets")

		time.Sleep(time.Hour)
		r := f.mustWeComTicket(t, tok, TicketJSAPI)
		assert.Equal(t, corp.Ticket, r.Ticket)
		assert.Equal(t, int64(3600), r.ExpiresIn)
		assert.True(t, f.WeComTicketValid(DefaultCorpID, DefaultCorpSecret, TicketJSAPI, corp.Ticket))
		assert.False(t, f.WeComTicketValid(DefaultCorpID, secondAppSecret, TicketJSAPI, corp.Ticket))
		assert.False(t, f.WeComTicketValid(DefaultCorpID, DefaultCorpSecret, TicketAgentConfig, corp.Ticket))
		assert.False(t, f.TicketValid(DefaultAppID, TicketJSAPI, corp.Ticket), "not an Official Account ticket")

		time.Sleep(time.Hour)
		assert.False(t, f.WeComTicketValid(DefaultCorpID, DefaultCorpSecret, TicketJSAPI, corp.Ticket))
		tok = f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		r = f.mustWeComTicket(t, tok, TicketJSAPI)
		assert.NotEqual(t, corp.Ticket, r.Ticket, "a new ticket once expired")
		assert.Equal(t, int64(7200), r.ExpiresIn)
		assert.Equal(t, r.Ticket, f.CurrentWeComTicket(DefaultCorpID, DefaultCorpSecret, TicketJSAPI))
		assert.Equal(t, agent.Ticket, f.CurrentWeComTicket(DefaultCorpID, DefaultCorpSecret, TicketAgentConfig))
		assert.Equal(t, 4, f.WeComTicketCalls(TicketJSAPI))
		assert.Equal(t, 1, f.WeComTicketCalls(TicketAgentConfig))
	})
}

func TestWeComTicketHourlyQuota(t *testing.T) {
	f := newLocalFake(t, WithWeComTicketQuota(2), WithoutRID())
	tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
	f.mustWeComTicket(t, tok, TicketAgentConfig)
	f.mustWeComTicket(t, tok, TicketAgentConfig)
	r := f.wecomTicket(t, tok, TicketAgentConfig)
	assert.Equal(t, CodeDailyQuota, r.Errcode)
	assert.Equal(t, "api freq out of limit", r.Errmsg)
	f.mustWeComTicket(t, tok, TicketJSAPI) // each kind has its own quota
	f.clk.Advance(59 * time.Minute)
	assert.Equal(t, CodeDailyQuota, f.wecomTicket(t, tok, TicketAgentConfig).Errcode)
	f.clk.Advance(time.Minute) // the clock started on the hour: a new hour
	f.mustWeComTicket(t, tok, TicketAgentConfig)
}

func TestWeComTicketRotationAndDeathFault(t *testing.T) {
	t.Run("rotation", func(t *testing.T) {
		f := newLocalFake(t, WithTicketRotation())
		tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		a := f.mustWeComTicket(t, tok, TicketJSAPI).Ticket
		b := f.mustWeComTicket(t, tok, TicketJSAPI).Ticket
		assert.NotEqual(t, a, b)
		assert.True(t, f.WeComTicketValid(DefaultCorpID, DefaultCorpSecret, TicketJSAPI, a))
		f.clk.Advance(Overlap)
		assert.False(t, f.WeComTicketValid(DefaultCorpID, DefaultCorpSecret, TicketJSAPI, a))
		assert.True(t, f.WeComTicketValid(DefaultCorpID, DefaultCorpSecret, TicketJSAPI, b))
	})
	t.Run("default: outlives a revoked token", func(t *testing.T) {
		f := newLocalFake(t)
		tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		tk := f.mustWeComTicket(t, tok, TicketAgentConfig).Ticket
		f.RevokeWeComToken(DefaultCorpID, DefaultCorpSecret)
		assert.True(t, f.WeComTicketValid(DefaultCorpID, DefaultCorpSecret, TicketAgentConfig, tk))
	})
	t.Run("dies with token", func(t *testing.T) {
		f := newLocalFake(t, WithTicketsDieWithToken())
		tok := f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		tk := f.mustWeComTicket(t, tok, TicketAgentConfig).Ticket
		f.RevokeWeComToken(DefaultCorpID, DefaultCorpSecret)
		assert.False(t, f.WeComTicketValid(DefaultCorpID, DefaultCorpSecret, TicketAgentConfig, tk))
		tok = f.mustWeComToken(t, DefaultCorpID, DefaultCorpSecret).AccessToken
		assert.NotEqual(t, tk, f.mustWeComTicket(t, tok, TicketAgentConfig).Ticket)
	})
}
