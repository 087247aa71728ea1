package wxtest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bubbleFake is an in-process fake on the default clock, time.Now, which a
// testing/synctest bubble fakes: time.Sleep in the bubble moves it.
func bubbleFake(t *testing.T, opts ...Option) *fake {
	srv := NewHandler(opts...)
	t.Cleanup(srv.Close)
	return &fake{Server: srv, hc: srv.Client(), base: srv.URL()}
}

func (f *fake) ticket(t *testing.T, tok, typ string) reply {
	t.Helper()
	q := url.Values{}
	if tok != "" {
		q.Set("access_token", tok)
	}
	if typ != "" {
		q.Set("type", typ)
	}
	return f.decode(t, http.MethodGet, PathTicket, q, "")
}

func (f *fake) mustTicket(t *testing.T, tok, typ string) reply {
	t.Helper()
	r := f.ticket(t, tok, typ)
	require.Zero(t, r.Errcode, r.Errmsg)
	require.Equal(t, "ok", r.Errmsg)
	require.NotEmpty(t, r.Ticket)
	return r
}

func TestTicketTokenChecks(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		assert.Equal(t, CodeMissingToken, f.ticket(t, "", TicketJSAPI).Errcode)
		assert.Equal(t, CodeInvalidCredential, f.ticket(t, "made-up-token", TicketJSAPI).Errcode)

		old := f.mustToken(t)
		cur := f.mustToken(t)
		f.mustTicket(t, old, TicketJSAPI) // superseded, still in its overlap
		f.clk.Advance(Overlap)
		assert.Equal(t, CodeInvalidCredential, f.ticket(t, old, TicketJSAPI).Errcode)
		f.mustTicket(t, cur, TicketJSAPI)
		f.clk.Advance(2 * time.Hour)
		assert.Equal(t, CodeTokenExpired, f.ticket(t, cur, TicketJSAPI).Errcode)

		assert.Equal(t, 6, f.TicketCalls(TicketJSAPI))
		assert.Equal(t, 6, f.TicketCalls(""))
		assert.Zero(t, f.BusinessCalls(), "ticket calls are not business calls")
		assert.Equal(t, map[int]int{41001: 1, 40001: 2, 42001: 1}, f.Rejections())
	})
}

func TestTicketMethodAndType(t *testing.T) {
	f := newLocalFake(t, WithoutRID())
	tok := f.mustToken(t)
	r := f.decode(t, http.MethodPost, PathTicket, url.Values{"access_token": {tok}, "type": {TicketJSAPI}}, "")
	assert.Equal(t, CodeRequireGET, r.Errcode)
	for _, typ := range []string{"", "JSAPI", "agent_config", "card"} {
		r := f.ticket(t, tok, typ)
		assert.Equal(t, CodeInvalidArgs, r.Errcode, "type %q", typ)
		assert.Equal(t, "invalid args", r.Errmsg)
		assert.Empty(t, r.Ticket)
	}
	// A bad token is reported before a bad method or type.
	assert.Equal(t, CodeMissingToken, f.decode(t, http.MethodPost, PathTicket, url.Values{"type": {"x"}}, "").Errcode)

	assert.Equal(t, 6, f.TicketCalls(""))
	assert.Equal(t, 1, f.TicketCalls(TicketJSAPI), "the POST")
	assert.Equal(t, 1, f.TicketCalls("card"))
	assert.Empty(t, f.CurrentTicket(DefaultAppID, TicketJSAPI))
}

func TestTicketSameWhileValidNewAfterExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := bubbleFake(t)
		resp, _ := f.do(t, http.MethodGet, PathTicket, url.Values{"access_token": {f.mustToken(t)}, "type": {TicketJSAPI}}, "")
		assert.Equal(t, "application/json; encoding=utf-8", resp.Header.Get("Content-Type"))
		first := f.CurrentTicket(DefaultAppID, TicketJSAPI)
		require.NotEmpty(t, first)

		time.Sleep(time.Hour)
		// A new token gets the same ticket, with its remaining lifetime.
		r := f.mustTicket(t, f.mustToken(t), TicketJSAPI)
		assert.Equal(t, first, r.Ticket)
		assert.Equal(t, int64(3600), r.ExpiresIn)
		card := f.mustTicket(t, f.CurrentToken(DefaultAppID), TicketWxCard)
		assert.NotEqual(t, first, card.Ticket, "each type has its own ticket")
		assert.Equal(t, int64(7200), card.ExpiresIn)
		assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, first))
		assert.False(t, f.TicketValid(DefaultAppID, TicketWxCard, first))

		time.Sleep(time.Hour - time.Second)
		r = f.mustTicket(t, f.mustToken(t), TicketJSAPI)
		assert.Equal(t, first, r.Ticket)
		assert.Equal(t, int64(1), r.ExpiresIn)

		time.Sleep(time.Second)
		assert.False(t, f.TicketValid(DefaultAppID, TicketJSAPI, first), "expired")
		r = f.mustTicket(t, f.CurrentToken(DefaultAppID), TicketJSAPI)
		assert.NotEqual(t, first, r.Ticket)
		assert.Equal(t, int64(7200), r.ExpiresIn)
		assert.Equal(t, r.Ticket, f.CurrentTicket(DefaultAppID, TicketJSAPI))
		assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, r.Ticket))
		assert.Equal(t, 4, f.TicketCalls(TicketJSAPI))
		assert.Equal(t, 1, f.TicketCalls(TicketWxCard))
	})
}

func TestTicketNeverZeroExpiresIn(t *testing.T) {
	f := newLocalFake(t)
	first := f.mustTicket(t, f.mustToken(t), TicketJSAPI).Ticket
	f.clk.Advance(DefaultTicketLifetime - time.Second + time.Millisecond)
	r := f.mustTicket(t, f.mustToken(t), TicketJSAPI)
	assert.NotEqual(t, first, r.Ticket, "less than a second left: a new ticket")
	assert.Equal(t, int64(7200), r.ExpiresIn)
	assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, first), "the old one works to its end")
}

func TestTicketPerApp(t *testing.T) {
	const other, otherSecret = "wx1111111111111111", "s3cr3t-of-another-app"
	f := newLocalFake(t, WithApp(DefaultAppID, DefaultSecret), WithApp(other, otherSecret))
	mine := f.mustTicket(t, f.mustToken(t), TicketJSAPI).Ticket
	tok := f.decode(t, http.MethodGet, PathToken, tokenQuery(other, otherSecret), "").AccessToken
	theirs := f.mustTicket(t, tok, TicketJSAPI).Ticket
	assert.NotEqual(t, mine, theirs)
	assert.True(t, f.TicketValid(other, TicketJSAPI, theirs))
	assert.False(t, f.TicketValid(other, TicketJSAPI, mine))
	assert.False(t, f.TicketValid("wx00000000000000ff", TicketJSAPI, mine))
	assert.False(t, f.TicketValid(DefaultAppID, TicketJSAPI, ""))
	assert.Empty(t, f.CurrentTicket("wx00000000000000ff", TicketJSAPI))
}

func TestTicketStableTokenAccepted(t *testing.T) {
	f := newLocalFake(t)
	r := f.stable(t, false)
	require.Zero(t, r.Errcode)
	f.mustTicket(t, r.AccessToken, TicketWxCard)
}

func TestTicketRotationOption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := bubbleFake(t, WithTicketRotation())
		tok := f.mustToken(t)
		a := f.mustTicket(t, tok, TicketJSAPI).Ticket
		time.Sleep(time.Minute)
		b := f.mustTicket(t, tok, TicketJSAPI)
		assert.NotEqual(t, a, b.Ticket, "every call issues a new ticket")
		assert.Equal(t, int64(7200), b.ExpiresIn)
		assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, a), "previous one in its overlap")

		time.Sleep(Overlap - time.Second)
		assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, a))
		time.Sleep(time.Second)
		assert.False(t, f.TicketValid(DefaultAppID, TicketJSAPI, a), "overlap over")

		c := f.mustTicket(t, tok, TicketJSAPI).Ticket
		assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, b.Ticket))
		d := f.mustTicket(t, tok, TicketJSAPI).Ticket
		assert.False(t, f.TicketValid(DefaultAppID, TicketJSAPI, b.Ticket), "older than the previous: dead at once")
		assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, c))
		assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, d))
		assert.Equal(t, d, f.CurrentTicket(DefaultAppID, TicketJSAPI))
	})
}

func TestTicketDailyQuota(t *testing.T) {
	f := newLocalFake(t, WithTicketQuota(2), WithDailyQuota(0), WithoutRID())
	tok := f.mustToken(t)
	first := f.mustTicket(t, tok, TicketJSAPI).Ticket
	f.mustTicket(t, tok, TicketJSAPI)
	r := f.ticket(t, tok, TicketJSAPI)
	assert.Equal(t, CodeDailyQuota, r.Errcode)
	assert.Equal(t, "reach max api daily quota limit", r.Errmsg)
	assert.Empty(t, r.Ticket)
	f.mustTicket(t, tok, TicketWxCard) // each type has its own quota
	assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, first), "a refused call changes no ticket")

	// The count resets at midnight Beijing time: the clock starts at 10:00.
	f.clk.Advance(13*time.Hour + 59*time.Minute)
	tok = f.mustToken(t)
	assert.Equal(t, CodeDailyQuota, f.ticket(t, tok, TicketJSAPI).Errcode)
	f.clk.Advance(time.Minute)
	f.mustTicket(t, tok, TicketJSAPI)
	assert.Equal(t, 5, f.TicketCalls(TicketJSAPI), "refused calls count too")
	assert.Equal(t, map[int]int{45009: 2}, f.Rejections())

	assert.NotPanics(t, func() { newLocalFake(t, WithTicketQuota(0)) })
}

func TestTicketLivesPastItsToken(t *testing.T) {
	f := newLocalFake(t)
	tok := f.mustToken(t)
	tk := f.mustTicket(t, tok, TicketJSAPI).Ticket
	f.Revoke(DefaultAppID)
	assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, tk), "by default a ticket outlives its token")
	assert.Equal(t, tk, f.mustTicket(t, f.mustToken(t), TicketJSAPI).Ticket)
}

func TestTicketsDieWithTokenFault(t *testing.T) {
	t.Run("superseded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := bubbleFake(t, WithTicketsDieWithToken())
			old := f.mustToken(t)
			tk := f.mustTicket(t, old, TicketJSAPI).Ticket
			cur := f.mustToken(t)
			// While old is in its overlap the ticket it fetched works and is handed out.
			assert.Equal(t, tk, f.mustTicket(t, cur, TicketJSAPI).Ticket)
			time.Sleep(Overlap - time.Second)
			assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, tk))
			time.Sleep(time.Second)
			assert.False(t, f.TicketValid(DefaultAppID, TicketJSAPI, tk), "its token stopped working")
			r := f.mustTicket(t, cur, TicketJSAPI)
			assert.NotEqual(t, tk, r.Ticket)
			assert.Equal(t, int64(7200), r.ExpiresIn)
			assert.True(t, f.TicketValid(DefaultAppID, TicketJSAPI, r.Ticket))
		})
	})
	t.Run("revoked", func(t *testing.T) {
		f := newLocalFake(t, WithTicketsDieWithToken())
		tok := f.mustToken(t)
		tk := f.mustTicket(t, tok, TicketWxCard).Ticket
		require.True(t, f.RevokeToken(tok))
		assert.False(t, f.TicketValid(DefaultAppID, TicketWxCard, tk))
		assert.NotEqual(t, tk, f.mustTicket(t, f.mustToken(t), TicketWxCard).Ticket)
	})
	t.Run("expired", func(t *testing.T) {
		f := newLocalFake(t, WithTicketsDieWithToken(), WithTokenLifetime(time.Hour))
		tk := f.mustTicket(t, f.mustToken(t), TicketJSAPI).Ticket
		f.clk.Advance(time.Hour)
		assert.False(t, f.TicketValid(DefaultAppID, TicketJSAPI, tk))
	})
}

func TestTicketLifetimeOption(t *testing.T) {
	f := newLocalFake(t, WithTicketLifetime(time.Hour))
	assert.Equal(t, int64(3600), f.mustTicket(t, f.mustToken(t), TicketJSAPI).ExpiresIn)
	assert.Equal(t, int64(7200), f.token(t).ExpiresIn, "tokens keep their own lifetime")
	assert.Panics(t, func() { NewHandler(WithTicketLifetime(Overlap)) })
}

func TestTicketFaultAndReset(t *testing.T) {
	f := newLocalFake(t)
	tok := f.mustToken(t)
	f.Inject(FaultErrcode(-1, "").On(PathTicket))
	r := f.ticket(t, tok, TicketJSAPI)
	assert.Equal(t, -1, r.Errcode)
	assert.True(t, strings.HasPrefix(r.Errmsg, "system error"), r.Errmsg)
	tk := f.mustTicket(t, tok, TicketJSAPI).Ticket
	assert.Equal(t, 2, f.TicketCalls(TicketJSAPI))

	f.Reset()
	assert.Empty(t, f.CurrentTicket(DefaultAppID, TicketJSAPI))
	assert.False(t, f.TicketValid(DefaultAppID, TicketJSAPI, tk))
	assert.Zero(t, f.TicketCalls(""))
}
