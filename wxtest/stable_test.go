package wxtest

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStableCredentialAndFormatErrors(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		cases := []struct {
			name, body string
			code       int
		}{
			{"not json", "grant_type=client_credential", CodeDataFormat},
			{"empty", "", CodeDataFormat},
			{"two objects", stableBody(DefaultAppID, DefaultSecret, false) + "{}", CodeDataFormat},
			{"force as string", `{"grant_type":"client_credential","appid":"` + DefaultAppID + `","secret":"` + DefaultSecret + `","force_refresh":"true"}`, CodeDataFormat},
			{"wrong grant_type", `{"grant_type":"x","appid":"` + DefaultAppID + `","secret":"` + DefaultSecret + `"}`, CodeInvalidGrantType},
			{"no appid", `{"grant_type":"client_credential","secret":"` + DefaultSecret + `"}`, CodeMissingAppID},
			{"no secret", `{"grant_type":"client_credential","appid":"` + DefaultAppID + `"}`, CodeMissingSecret},
			{"unknown appid", stableBody("wx00000000000000ff", DefaultSecret, false), CodeInvalidAppID},
			{"wrong secret", stableBody(DefaultAppID, "s3cr3t-of-another-app", false), CodeInvalidCredential},
		}
		for _, c := range cases {
			r := f.decode(t, http.MethodPost, PathStableToken, nil, c.body)
			assert.Equal(t, c.code, r.Errcode, c.name)
			assert.Empty(t, r.AccessToken, c.name)
		}
		r := f.decode(t, http.MethodGet, PathStableToken, nil, "")
		assert.Equal(t, CodeRequirePOST, r.Errcode)
		assert.Equal(t, len(cases)+1, f.StableCalls())
		assert.Empty(t, f.CurrentStableToken(DefaultAppID))
	})
}

func TestStableNormalModeSameTokenDecreasingExpiry(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		first := f.stable(t, false)
		require.Zero(t, first.Errcode)
		assert.Equal(t, int64(7200), first.ExpiresIn)

		f.clk.Advance(10 * time.Minute)
		again := f.stable(t, false)
		assert.Equal(t, first.AccessToken, again.AccessToken)
		assert.Equal(t, int64(7200-600), again.ExpiresIn)

		f.clk.Advance(90 * time.Minute)
		again = f.stable(t, false)
		assert.Equal(t, first.AccessToken, again.AccessToken)
		assert.Equal(t, int64(1200), again.ExpiresIn)
		assert.Equal(t, first.AccessToken, f.CurrentStableToken(DefaultAppID))
		assert.Equal(t, 3, f.StableCalls())
		assert.Zero(t, f.ForceRefreshCalls())
	})
}

func TestStableRotatesInLastFiveMinutes(t *testing.T) {
	f := newLocalFake(t)
	first := f.stable(t, false).AccessToken
	// Walk through the last minutes second by second around the boundary.
	f.clk.Advance(2*time.Hour - Overlap - 2*time.Second)
	var rotated string
	for range 4 {
		r := f.stable(t, false)
		require.Zero(t, r.Errcode)
		assert.GreaterOrEqual(t, r.ExpiresIn, int64(300), "expires_in below 300")
		if r.AccessToken != first {
			rotated = r.AccessToken
			assert.Equal(t, int64(7200), r.ExpiresIn)
			break
		}
		f.clk.Advance(time.Second)
	}
	require.NotEmpty(t, rotated, "no rotation in the last 5 minutes")
	assert.Equal(t, rotated, f.stable(t, false).AccessToken, "the new one is now current")

	// The old one keeps working until its own expiry, then expires.
	assert.Zero(t, f.CheckToken(first))
	f.clk.Advance(Overlap)
	assert.Equal(t, CodeTokenExpired, f.CheckToken(first))
	assert.Zero(t, f.CheckToken(rotated))
}

func TestStableForceRefresh(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		old := f.stable(t, false).AccessToken
		forced := f.stable(t, true)
		require.Zero(t, forced.Errcode)
		assert.NotEqual(t, old, forced.AccessToken)
		assert.Equal(t, int64(7200), forced.ExpiresIn)
		assert.Equal(t, CodeInvalidCredential, f.callbackIP(t, old).Errcode, "previous stable token dies at once")
		assert.Zero(t, f.callbackIP(t, forced.AccessToken).Errcode)
		assert.Equal(t, forced.AccessToken, f.stable(t, false).AccessToken)
		assert.Equal(t, 1, f.ForceRefreshCalls())
	})
}

func TestStableForceRefreshNotRepeatedWithin30s(t *testing.T) {
	f := newLocalFake(t)
	first := f.stable(t, true).AccessToken
	f.clk.Advance(29 * time.Second)
	r := f.stable(t, true)
	require.Zero(t, r.Errcode)
	assert.Equal(t, first, r.AccessToken, "no refresh within 30 s")
	assert.Equal(t, int64(7200-29), r.ExpiresIn)
	assert.Zero(t, f.CheckToken(first))

	f.clk.Advance(time.Second)
	second := f.stable(t, true).AccessToken
	assert.NotEqual(t, first, second, "refreshes again after 30 s")
	assert.Equal(t, CodeInvalidCredential, f.CheckToken(first))
	assert.Equal(t, 3, f.ForceRefreshCalls())
}

func TestStableForceRefreshDailyLimit(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		f.clk.Set(time.Date(2024, 3, 1, 4, 0, 0, 0, time.UTC)) // noon in Beijing
		for i := range 20 {
			r := f.stable(t, true)
			require.Zero(t, r.Errcode, "force refresh %d", i+1)
			f.clk.Advance(31 * time.Second)
		}
		r := f.stable(t, true)
		assert.Equal(t, CodeDailyQuota, r.Errcode, "21st force refresh in a day")
		cur := f.CurrentStableToken(DefaultAppID)
		assert.Zero(t, f.CheckToken(cur), "refused force refresh leaves the token alone")
		assert.Equal(t, cur, f.stable(t, false).AccessToken, "normal mode still works")

		f.clk.Set(time.Date(2024, 3, 1, 16, 0, 0, 0, time.UTC)) // next Beijing day
		assert.Zero(t, f.stable(t, true).Errcode)
		assert.Equal(t, 22, f.ForceRefreshCalls())
	})
}

func TestStableQuotas(t *testing.T) {
	f := newLocalFake(t, WithStableQuota(2, 3), WithoutRID())
	f.clk.Set(time.Date(2024, 3, 1, 4, 0, 0, 0, time.UTC))
	assert.Zero(t, f.stable(t, false).Errcode)
	assert.Zero(t, f.stable(t, false).Errcode)
	r := f.stable(t, false)
	assert.Equal(t, CodeMinuteQuota, r.Errcode)
	assert.Equal(t, "api minute-quota reach limit mustslower retry next minute", r.Errmsg)
	f.clk.Advance(time.Minute)
	assert.Zero(t, f.stable(t, false).Errcode)
	assert.Equal(t, CodeDailyQuota, f.stable(t, false).Errcode, "4th of a 3-a-day quota")
	f.clk.Advance(24 * time.Hour)
	assert.Zero(t, f.stable(t, false).Errcode)
}

func TestStableForceLimitOption(t *testing.T) {
	f := newLocalFake(t, WithForceRefreshLimit(2, 0))
	a := f.stable(t, true).AccessToken
	b := f.stable(t, true).AccessToken
	assert.NotEqual(t, a, b, "no interval: refreshes at once")
	assert.Equal(t, CodeDailyQuota, f.stable(t, true).Errcode)
}

func TestStableIsolatedFromPlainToken(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		st := f.stable(t, false).AccessToken
		plain := f.mustToken(t)
		for range 3 {
			f.mustToken(t)
		}
		assert.Zero(t, f.callbackIP(t, st).Errcode, "plain fetches do not touch the stable token")
		assert.Equal(t, st, f.stable(t, false).AccessToken)
		assert.Equal(t, CodeInvalidCredential, f.CheckToken(plain))

		plain = f.CurrentToken(DefaultAppID)
		f.stable(t, true)
		assert.Zero(t, f.callbackIP(t, plain).Errcode, "a force refresh does not touch the plain token")
		assert.Equal(t, 4, f.TokenCalls())
		assert.Equal(t, 3, f.StableCalls())
	})
}

func TestStableAfterRevokeIssuesNewToken(t *testing.T) {
	f := newLocalFake(t)
	old := f.stable(t, false).AccessToken
	plain := f.mustToken(t)
	f.Revoke(DefaultAppID)
	assert.Equal(t, CodeInvalidCredential, f.CheckToken(old))
	assert.Equal(t, CodeInvalidCredential, f.CheckToken(plain))
	fresh := f.stable(t, false)
	assert.NotEqual(t, old, fresh.AccessToken)
	assert.Equal(t, int64(7200), fresh.ExpiresIn)
}
