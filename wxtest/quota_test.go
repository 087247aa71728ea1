package wxtest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type quotaReply struct {
	Errcode int `json:"errcode"`
	Quota   struct {
		DailyLimit int `json:"daily_limit"`
		Used       int `json:"used"`
		Remain     int `json:"remain"`
	} `json:"quota"`
}

func (f *fake) quota(t *testing.T, tok, path string) quotaReply {
	t.Helper()
	resp, b := f.do(t, http.MethodPost, PathQuotaGet, url.Values{"access_token": {tok}}, `{"cgi_path":"`+path+`"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var r quotaReply
	require.NoError(t, json.Unmarshal(b, &r), "body %s", b)
	return r
}

func (f *fake) clearV2(t *testing.T, appID, secret string) reply {
	t.Helper()
	return f.decode(t, http.MethodPost, PathClearQuotaV2, url.Values{"appid": {appID}, "appsecret": {secret}}, "")
}

func TestQuotaGetCountsTokenCalls(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		f.mustToken(t)
		f.mustToken(t)
		tok := f.mustToken(t)
		r := f.quota(t, tok, PathToken)
		assert.Zero(t, r.Errcode)
		assert.Equal(t, DefaultDailyQuota, r.Quota.DailyLimit)
		assert.Equal(t, 3, r.Quota.Used)
		assert.Equal(t, DefaultDailyQuota-3, r.Quota.Remain)

		stable := f.quota(t, tok, PathStableToken)
		assert.Equal(t, DefaultStableDailyQuota, stable.Quota.DailyLimit)
		assert.Zero(t, stable.Quota.Used)

		assert.Equal(t, CodeCGIPathNotFound, f.quota(t, tok, "/cgi-bin/nothing").Errcode)
		assert.Equal(t, CodeInvalidCredential, f.quota(t, "not-a-token", PathToken).Errcode)
		assert.Equal(t, 4, f.QuotaCalls())
	}, WithoutRID())
}

func TestQuotaGetWantsPOSTAndABody(t *testing.T) {
	f := newLocalFake(t, WithoutRID())
	tok := f.mustToken(t)
	q := url.Values{"access_token": {tok}}
	assert.Equal(t, CodeRequirePOST, f.decode(t, http.MethodGet, PathQuotaGet, q, "").Errcode)
	assert.Equal(t, CodeDataFormat, f.decode(t, http.MethodPost, PathQuotaGet, q, "[1]").Errcode)
	assert.Equal(t, CodeDataFormat, f.decode(t, http.MethodPost, PathQuotaGet, q, `{}`).Errcode)
}

func TestQuotaResetsAtBeijingMidnight(t *testing.T) {
	f := newLocalFake(t)
	// 15:59:59 UTC is 23:59:59 in Beijing.
	f.clk.Set(time.Date(2026, 3, 1, 15, 59, 59, 0, time.UTC))
	f.mustToken(t)
	tok := f.mustToken(t)
	assert.Equal(t, 2, f.quota(t, tok, PathToken).Quota.Used)
	f.clk.Advance(time.Second)
	assert.Equal(t, 0, f.quota(t, tok, PathToken).Quota.Used)
}

func TestClearQuotaV2LiftsTheDailyQuota(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		f.mustToken(t)
		f.mustToken(t)
		assert.Equal(t, CodeDailyQuota, f.token(t).Errcode)

		r := f.clearV2(t, DefaultAppID, DefaultSecret)
		require.Zero(t, r.Errcode, r.Errmsg)
		assert.Equal(t, "ok", r.Errmsg)
		tok := f.mustToken(t)
		assert.Equal(t, 1, f.quota(t, tok, PathToken).Quota.Used)
		assert.Equal(t, DefaultClearQuotaMonthly-1, f.ClearQuotaLeft(DefaultAppID))
	}, WithDailyQuota(2), WithoutRID())
}

func TestClearQuotaV2ChecksTheCredentials(t *testing.T) {
	f := newLocalFake(t, WithoutRID())
	assert.Equal(t, CodeInvalidCredential, f.clearV2(t, DefaultAppID, "s3cr3t-of-another-app").Errcode)
	assert.Equal(t, CodeInvalidAppID, f.clearV2(t, "wx00000000000000ff", DefaultSecret).Errcode)
	assert.Equal(t, CodeMissingSecret, f.clearV2(t, DefaultAppID, "").Errcode)
	assert.Equal(t, DefaultClearQuotaMonthly, f.ClearQuotaLeft(DefaultAppID), "failures cost nothing")
}

func TestClearQuotaWithAToken(t *testing.T) {
	f := newLocalFake(t, WithDailyQuota(1), WithoutRID())
	tok := f.mustToken(t)
	q := url.Values{"access_token": {tok}}
	assert.Equal(t, CodeMissingAppID, f.decode(t, http.MethodPost, PathClearQuota, q, `{}`).Errcode)
	assert.Equal(t, CodeInvalidAppID, f.decode(t, http.MethodPost, PathClearQuota, q, `{"appid":"wx00000000000000ff"}`).Errcode)
	assert.Equal(t, CodeInvalidCredential, f.decode(t, http.MethodPost, PathClearQuota,
		url.Values{"access_token": {"nope"}}, `{"appid":"`+DefaultAppID+`"}`).Errcode)
	r := f.decode(t, http.MethodPost, PathClearQuota, q, `{"appid":"`+DefaultAppID+`"}`)
	require.Zero(t, r.Errcode, r.Errmsg)
	f.mustToken(t)
	assert.Equal(t, DefaultClearQuotaMonthly-1, f.ClearQuotaLeft(DefaultAppID))
}

func TestClearQuotaTenAMonthShared(t *testing.T) {
	f := newLocalFake(t, WithoutRID())
	f.clk.Set(time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)) // 20:00 in Beijing
	tok := f.mustToken(t)
	for i := range DefaultClearQuotaMonthly {
		if i%2 == 0 {
			require.Zero(t, f.clearV2(t, DefaultAppID, DefaultSecret).Errcode, i)
			continue
		}
		require.Zero(t, f.decode(t, http.MethodPost, PathClearQuota, url.Values{"access_token": {tok}},
			`{"appid":"`+DefaultAppID+`"}`).Errcode, i)
	}
	r := f.clearV2(t, DefaultAppID, DefaultSecret)
	assert.Equal(t, CodeClearQuotaSpent, r.Errcode)
	assert.Equal(t, "forbid to clear quota because of reaching the limit", r.Errmsg)
	assert.Zero(t, f.ClearQuotaLeft(DefaultAppID))

	f.clk.Advance(4 * time.Hour) // 00:00 on 1 April in Beijing
	assert.Equal(t, DefaultClearQuotaMonthly, f.ClearQuotaLeft(DefaultAppID))
	assert.Zero(t, f.clearV2(t, DefaultAppID, DefaultSecret).Errcode)
}

func TestQuotaForgottenOnReset(t *testing.T) {
	f := newLocalFake(t)
	require.Zero(t, f.clearV2(t, DefaultAppID, DefaultSecret).Errcode)
	f.Reset()
	assert.Equal(t, DefaultClearQuotaMonthly, f.ClearQuotaLeft(DefaultAppID))
	assert.Zero(t, f.QuotaCalls())
}
