package wxtest

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokenCredentialErrors(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		cases := []struct {
			name string
			q    url.Values
			code int
			msg  string
		}{
			{"no grant_type", url.Values{"appid": {DefaultAppID}, "secret": {DefaultSecret}}, 40002, "invalid grant_type"},
			{"wrong grant_type", url.Values{"grant_type": {"password"}, "appid": {DefaultAppID}, "secret": {DefaultSecret}}, 40002, "invalid grant_type"},
			{"no appid", url.Values{"grant_type": {"client_credential"}, "secret": {DefaultSecret}}, 41002, "appid missing"},
			{"no secret", url.Values{"grant_type": {"client_credential"}, "appid": {DefaultAppID}}, 41004, "appsecret missing"},
			{"unknown appid", tokenQuery("wx00000000000000ff", DefaultSecret), 40013, "invalid appid"},
			{"wrong secret", tokenQuery(DefaultAppID, "s3cr3t-of-another-app"), 40001, "invalid credential, access_token is invalid or not latest"},
		}
		for _, c := range cases {
			r := f.decode(t, http.MethodGet, PathToken, c.q, "")
			assert.Equal(t, c.code, r.Errcode, c.name)
			assert.True(t, strings.HasPrefix(r.Errmsg, c.msg+" rid: "), "%s: %q", c.name, r.Errmsg)
			assert.Empty(t, r.AccessToken, c.name)
		}
		assert.Equal(t, len(cases), f.TokenCalls())
		assert.Equal(t, map[int]int{40002: 2, 41002: 1, 41004: 1, 40013: 1, 40001: 1}, f.Rejections())
		assert.Empty(t, f.CurrentToken(DefaultAppID), "no token issued")
	})
}

func TestTokenWrongSecretErrcodeOption(t *testing.T) {
	f := newLocalFake(t, WithSecretErrcode(CodeInvalidSecret), WithoutRID())
	r := f.decode(t, http.MethodGet, PathToken, tokenQuery(DefaultAppID, "nope"), "")
	assert.Equal(t, CodeInvalidSecret, r.Errcode)
	assert.Equal(t, "invalid appsecret", r.Errmsg)
	r = f.decode(t, http.MethodPost, PathStableToken, nil, stableBody(DefaultAppID, "nope", false))
	assert.Equal(t, CodeInvalidSecret, r.Errcode)
}

func TestTokenRequiresGET(t *testing.T) {
	f := newLocalFake(t, WithoutRID())
	r := f.decode(t, http.MethodPost, PathToken, tokenQuery(DefaultAppID, DefaultSecret), "")
	assert.Equal(t, CodeRequireGET, r.Errcode)
	assert.Equal(t, "require GET method", r.Errmsg)
}

func TestTokenNewEachCall(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		resp, _ := f.do(t, http.MethodGet, PathToken, tokenQuery(DefaultAppID, DefaultSecret), "")
		assert.Equal(t, "application/json; encoding=utf-8", resp.Header.Get("Content-Type"))
		seen := map[string]bool{}
		shape := regexp.MustCompile(`^[A-Za-z0-9_-]{40,}$`)
		for range 5 {
			r := f.token(t)
			require.Zero(t, r.Errcode)
			assert.Equal(t, int64(7200), r.ExpiresIn)
			assert.Regexp(t, shape, r.AccessToken)
			assert.False(t, seen[r.AccessToken], "token repeated")
			seen[r.AccessToken] = true
			assert.Equal(t, r.AccessToken, f.CurrentToken(DefaultAppID))
		}
		assert.Equal(t, 6, f.TokenCalls())
	})
}

func TestTokenLifetimeOption(t *testing.T) {
	f := newLocalFake(t, WithTokenLifetime(time.Hour))
	assert.Equal(t, int64(3600), f.token(t).ExpiresIn)
	assert.Panics(t, func() { NewHandler(WithTokenLifetime(Overlap)) })
}

func TestTokenOverlapThenSuperseded(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		first := f.mustToken(t)
		f.clk.Advance(time.Hour)
		second := f.mustToken(t)

		// Both work during the 5-minute overlap.
		f.clk.Advance(Overlap - time.Second)
		assert.Zero(t, f.callbackIP(t, first).Errcode)
		assert.Zero(t, f.callbackIP(t, second).Errcode)

		f.clk.Advance(time.Second)
		assert.Equal(t, CodeInvalidCredential, f.callbackIP(t, first).Errcode, "superseded token after overlap")
		assert.Zero(t, f.callbackIP(t, second).Errcode)
	})
}

func TestTokenOlderThanPreviousRejectedAtOnce(t *testing.T) {
	f := newLocalFake(t)
	first := f.mustToken(t)
	second := f.mustToken(t)
	third := f.mustToken(t)
	assert.Equal(t, CodeInvalidCredential, f.CheckToken(first), "two generations back")
	assert.Zero(t, f.CheckToken(second), "previous: in its overlap")
	assert.Zero(t, f.CheckToken(third))
}

func TestTokenExpiry(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		tok := f.mustToken(t)
		f.clk.Advance(2*time.Hour - time.Second)
		assert.Zero(t, f.callbackIP(t, tok).Errcode)
		f.clk.Advance(time.Second)
		r := f.callbackIP(t, tok)
		assert.Equal(t, CodeTokenExpired, r.Errcode)
		assert.True(t, strings.HasPrefix(r.Errmsg, "access_token expired"), r.Errmsg)
	})
}

func TestTokenSupersededNearExpiryReportsExpired(t *testing.T) {
	f := newLocalFake(t)
	old := f.mustToken(t)
	f.clk.Advance(2*time.Hour - 2*time.Minute)
	f.mustToken(t) // old's overlap would end after its own expiry
	f.clk.Advance(2 * time.Minute)
	assert.Equal(t, CodeTokenExpired, f.CheckToken(old))
	f.clk.Advance(time.Hour)
	assert.Equal(t, CodeTokenExpired, f.CheckToken(old))
}

func TestTokenDailyQuotaResetsAtBeijingMidnight(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		// 23:00 Beijing time.
		f.clk.Set(time.Date(2024, 3, 1, 15, 0, 0, 0, time.UTC))
		for range 3 {
			f.mustToken(t)
		}
		r := f.token(t)
		assert.Equal(t, CodeDailyQuota, r.Errcode)
		assert.True(t, strings.HasPrefix(r.Errmsg, "reach max api daily quota limit"), r.Errmsg)
		assert.Equal(t, CodeDailyQuota, f.token(t).Errcode, "still refused, no matter how often")

		f.clk.Set(time.Date(2024, 3, 1, 15, 59, 59, 0, time.UTC))
		assert.Equal(t, CodeDailyQuota, f.token(t).Errcode, "23:59:59 Beijing")
		f.clk.Set(time.Date(2024, 3, 1, 16, 0, 0, 0, time.UTC))
		f.mustToken(t) // midnight in Beijing: a new day
		assert.Equal(t, 7, f.TokenCalls())
		assert.Equal(t, 3, f.Rejections()[CodeDailyQuota])
	}, WithDailyQuota(3))
}

func TestTokenQuotaIsPerApp(t *testing.T) {
	f := newLocalFake(t, WithDailyQuota(1), WithApp("wxa", "sa"), WithApp("wxb", "sb"))
	get := func(id, secret string) int {
		return f.decode(t, http.MethodGet, PathToken, tokenQuery(id, secret), "").Errcode
	}
	assert.Zero(t, get("wxa", "sa"))
	assert.Equal(t, CodeDailyQuota, get("wxa", "sa"))
	assert.Zero(t, get("wxb", "sb"))
	assert.Equal(t, CodeInvalidAppID, get(DefaultAppID, DefaultSecret), "WithApp replaces the default app")
}

func TestSetAppChangesSecret(t *testing.T) {
	f := newLocalFake(t)
	tok := f.mustToken(t)
	f.SetApp(DefaultAppID, "new-secret")
	assert.Equal(t, CodeInvalidCredential, f.token(t).Errcode, "old secret refused")
	r := f.decode(t, http.MethodGet, PathToken, tokenQuery(DefaultAppID, "new-secret"), "")
	assert.Zero(t, r.Errcode)
	assert.Zero(t, f.CheckToken(tok), "previous token still in its overlap")
	f.SetApp("wxnew", "x")
	assert.Zero(t, f.decode(t, http.MethodGet, PathToken, tokenQuery("wxnew", "x"), "").Errcode)
}
