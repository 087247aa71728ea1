package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

func TestCredentialWithAValidKeyIsTheCurrentToken(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	tr := decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, ""))
	assert.Equal(t, f.wx.CurrentToken(wxtest.DefaultAppID), tr.AccessToken)
	assert.Empty(t, tr.Ticket)
	assert.InDelta(t, 7200, tr.ExpiresIn, 5)
	at, err := time.Parse(time.RFC3339, tr.ExpiresAt)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(7200*time.Second), at, 5*time.Second)

	for range 10 {
		again := decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, ""))
		assert.Equal(t, tr.AccessToken, again.AccessToken)
	}
	assert.Equal(t, 1, f.wx.TokenCalls(), "one fetch for eleven requests")
}

func TestTicketsAndWeComAreServed(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	tr := decodeToken(t, f.do(t, "GET", "/v1/credentials/shop-jsapi", shopKey, ""))
	assert.Equal(t, f.wx.CurrentTicket(wxtest.DefaultAppID, "jsapi"), tr.Ticket)
	assert.Empty(t, tr.AccessToken, "a ticket is not answered as an access_token")
	card := decodeToken(t, f.do(t, "GET", "/v1/credentials/shop-card", shopKey, ""))
	assert.Equal(t, f.wx.CurrentTicket(wxtest.DefaultAppID, "wx_card"), card.Ticket)

	corp := decodeToken(t, f.do(t, "GET", "/v1/credentials/corp", corpKey, ""))
	assert.Equal(t, f.wx.CurrentWeComToken(wxtest.DefaultCorpID, wxtest.DefaultCorpSecret), corp.AccessToken)
	for _, name := range []string{"corp-jsapi", "corp-agent"} {
		tr := decodeToken(t, f.do(t, "GET", "/v1/credentials/"+name, corpKey, ""))
		assert.NotEmpty(t, tr.Ticket, name)
	}
	assert.Equal(t, 1, f.wx.TokenCalls())
	assert.Equal(t, 1, f.wx.WeComTokenCalls())
}

func TestUnauthenticatedAndForbiddenAnswersHoldNoToken(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, "")) // a token exists now
	cases := []struct {
		name, method, path, key string
		status                  int
		code                    string
	}{
		{"no key", "GET", "/v1/credentials/shop", "", http.StatusUnauthorized, "unauthorized"},
		{"wrong key", "GET", "/v1/credentials/shop", "wxt_not-a-configured-key", http.StatusUnauthorized, "unauthorized"},
		{"hash as the key", "GET", "/v1/credentials/shop", strings.TrimPrefix(HashKey(shopKey), "sha256:"), http.StatusUnauthorized, "unauthorized"},
		{"another client's credential", "GET", "/v1/credentials/corp", shopKey, http.StatusForbidden, "forbidden"},
		{"unknown credential", "GET", "/v1/credentials/nothing", shopKey, http.StatusForbidden, "forbidden"},
		{"invalidate without a key", "POST", "/v1/credentials/shop/invalidate", "", http.StatusUnauthorized, "unauthorized"},
		{"invalidate another's", "POST", "/v1/credentials/corp/invalidate", shopKey, http.StatusForbidden, "forbidden"},
		{"jssdk of another's", "GET", "/v1/jssdk/corp-jsapi?url=https://a.example/", shopKey, http.StatusForbidden, "forbidden"},
		{"not an endpoint", "GET", "/v1/tokens/shop", shopKey, http.StatusNotFound, "not_found"},
		{"jssdk of a token", "GET", "/v1/jssdk/shop?url=https://a.example/", shopKey, http.StatusNotFound, "not_a_jsapi_ticket"},
	}
	for _, tc := range cases {
		a := f.do(t, tc.method, tc.path, tc.key, `{"rejected":"x"}`)
		assert.Equal(t, tc.status, a.status, tc.name)
		assert.Equal(t, tc.code, decodeError(t, a).Code, tc.name)
		f.assertNoToken(t, a.body)
		if tc.status == http.StatusUnauthorized {
			assert.Equal(t, `Bearer realm="wxtoken"`, a.header.Get("WWW-Authenticate"), tc.name)
		}
	}
	assert.Equal(t, 1, f.wx.TokenCalls(), "refused requests fetch nothing")
	f.assertNoToken(t, f.logs.String())
	assert.Contains(t, f.logs.String(), "status=401")
	assert.Contains(t, f.logs.String(), "status=403")
}

func TestInvalidateWithAnOldTokenAnswersTheCurrentOneWithoutAFetch(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	cur := decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, ""))
	tr := decodeToken(t, f.do(t, "POST", "/v1/credentials/shop/invalidate", shopKey, `{"rejected":"an-old-token-long-gone"}`))
	assert.Equal(t, cur.AccessToken, tr.AccessToken)
	assert.Equal(t, 1, f.wx.TokenCalls(), "no fetch for a token the server has moved past")
}

func TestInvalidateOfTheCurrentTokenFetchesOnceForAllReporters(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	// A token obtained an hour ago, past the reject guard, rejected by an API.
	old := wxtoken.Token{AccessToken: "seeded-token-an-hour-old", ExpiresIn: 7200, CreateTime: time.Now().Add(-time.Hour)}
	require.NoError(t, f.store.Save(context.Background(), wxtest.DefaultAppID, old))
	require.Equal(t, old.AccessToken, decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, "")).AccessToken)
	require.Zero(t, f.wx.TokenCalls())

	var wg sync.WaitGroup
	answers := make([]answer, 20)
	errs := make([]error, 20)
	for i := range answers {
		wg.Go(func() {
			answers[i], errs[i] = f.try("POST", "/v1/credentials/shop/invalidate", shopKey,
				`{"rejected":"`+old.AccessToken+`"}`)
		})
	}
	wg.Wait()
	got := make([]tokenResponse, len(answers))
	for i, a := range answers {
		require.NoError(t, errs[i])
		got[i] = decodeToken(t, a)
		assert.Equal(t, f.wx.CurrentToken(wxtest.DefaultAppID), got[i].AccessToken)
	}
	assert.Equal(t, 1, f.wx.TokenCalls(), "twenty reports of one token, one fetch")

	// Reported again moments after it was obtained: refused, not fetched.
	a := f.do(t, "POST", "/v1/credentials/shop/invalidate", shopKey, `{"rejected":"`+got[0].AccessToken+`"}`)
	assert.Equal(t, http.StatusTooManyRequests, a.status)
	assert.Equal(t, "rejected_too_soon", decodeError(t, a).Code)
	assert.NotEmpty(t, a.header.Get("Retry-After"))
	f.assertNoToken(t, a.body)
	assert.Equal(t, 1, f.wx.TokenCalls())
}

func TestInvalidateBodiesAreCappedAndStrict(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	for name, body := range map[string]string{
		"too large":     `{"rejected":"` + strings.Repeat("a", maxRequestBody) + `"}`,
		"not JSON":      `rejected=x`,
		"unknown field": `{"rejected":"x","force":true}`,
		"two values":    `{"rejected":"x"}{"rejected":"y"}`,
		"empty":         ``,
		"no token":      `{"rejected":""}`,
	} {
		a := f.do(t, "POST", "/v1/credentials/shop/invalidate", shopKey, body)
		assert.Equal(t, http.StatusBadRequest, a.status, name)
		assert.Equal(t, "bad_request", decodeError(t, a).Code, name)
		assert.NotContains(t, a.body, "aaaa", name)
	}
	assert.Zero(t, f.wx.TokenCalls())
}

func TestJSSDKSignsWithTheTicket(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	page := "https://shop.example/pay?order=1"
	a := f.do(t, "GET", "/v1/jssdk/shop-jsapi?url="+strings.ReplaceAll(page, "?", "%3F"), shopKey, "")
	require.Equal(t, http.StatusOK, a.status, a.body)
	cfg := decodeJSSDK(t, a)
	ticket := f.wx.CurrentTicket(wxtest.DefaultAppID, "jsapi")
	assert.Equal(t, wxtest.DefaultAppID, cfg.AppID)
	assert.Equal(t, wxtoken.SignJSSDK(ticket, cfg.NonceStr, cfg.Timestamp, page), cfg.Signature)
	f.assertNoToken(t, a.body)

	bad := f.do(t, "GET", "/v1/jssdk/shop-jsapi?url=not%20a%20url", shopKey, "")
	assert.Equal(t, http.StatusBadRequest, bad.status)
	assert.Equal(t, "invalid_url", decodeError(t, bad).Code)
	missing := f.do(t, "GET", "/v1/jssdk/shop-jsapi", shopKey, "")
	assert.Equal(t, "bad_request", decodeError(t, missing).Code)
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	for range 2 {
		decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", limitKey, ""))
	}
	a := f.do(t, "GET", "/v1/credentials/shop", limitKey, "")
	assert.Equal(t, http.StatusTooManyRequests, a.status)
	assert.Equal(t, "rate_limited", decodeError(t, a).Code)
	assert.NotEmpty(t, a.header.Get("Retry-After"))
	f.assertNoToken(t, a.body)
	// Other clients have buckets of their own.
	decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, ""))
}

func TestUpstreamFailuresNameTheErrcodeOnly(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	f.wx.Inject(wxtest.FaultErrcode(40164, "invalid ip 203.0.113.9, not in whitelist"))
	a := f.do(t, "GET", "/v1/credentials/shop", shopKey, "")
	assert.Equal(t, http.StatusBadGateway, a.status)
	er := decodeError(t, a)
	assert.Equal(t, "upstream_error", er.Code)
	assert.Equal(t, "WeChat answered errcode 40164", er.Error)
	f.assertNoToken(t, a.body)
	f.assertNoToken(t, f.logs.String())
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	assert.Equal(t, http.StatusOK, f.do(t, "GET", "/healthz", "", "").status)
	assert.Equal(t, http.StatusOK, f.do(t, "GET", "/readyz", "", "").status)

	down := &failingStore{Store: wxtoken.NewMemoryStore()}
	s := &Server{store: down, log: f.srv.log, metrics: newMetrics(), now: time.Now}
	rec := &recorder{ResponseWriter: newRecorderSink()}
	s.serveReadyz(rec, httpRequest(t, "GET", "/readyz"))
	assert.Equal(t, http.StatusServiceUnavailable, rec.status)
}

// failingStore's Load fails, as a Redis that is down does, and counts.
type failingStore struct {
	wxtoken.Store
	loads atomic.Int64
}

func (s *failingStore) Load(context.Context, string) (wxtoken.Token, error) {
	s.loads.Add(1)
	return wxtoken.Token{}, errors.New("connection refused")
}

func TestNewRefusesAMissingStore(t *testing.T) {
	t.Parallel()
	_, err := New(Config{}, nil, nil)
	require.Error(t, err)
}

func TestTokensWithQuotesAndBackslashesAreValidJSON(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	odd := wxtoken.Token{AccessToken: `a"b\c<d>&e`, ExpiresIn: 7200, CreateTime: time.Now()}
	require.NoError(t, f.store.Save(context.Background(), wxtest.DefaultAppID, odd))
	tr := decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, ""))
	assert.Equal(t, odd.AccessToken, tr.AccessToken)
}

func TestStableTokensAreServed(t *testing.T) {
	t.Parallel()
	f := start(t, func(c *Config) {
		c.Credentials["shop-stable"] = CredentialConfig{Type: TypeOfficialAccount, AppID: wxtest.DefaultAppID,
			Stable: true, SecretEnv: "SHOP_SECRET"}
		cl := c.Clients["billing"]
		cl.Credentials = append(cl.Credentials, "shop-stable")
		c.Clients["billing"] = cl
	})
	tr := decodeToken(t, f.do(t, "GET", "/v1/credentials/shop-stable", shopKey, ""))
	assert.Equal(t, f.wx.CurrentStableToken(wxtest.DefaultAppID), tr.AccessToken)
	assert.Equal(t, 1, f.wx.StableCalls())
	assert.Zero(t, f.wx.TokenCalls(), "stable and plain tokens are different credentials")
}
