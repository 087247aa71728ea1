package server

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// fakeClock is a Server's clock that a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// withClock gives f's server a clock of its own, before any request.
func (f *fixture) withClock() *fakeClock {
	c := &fakeClock{t: time.Now()}
	f.srv.now = c.now
	return c
}

func TestRateLimitWaitsAreBoundedAndPositive(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, rate := range []float64{1e-12, math.NaN(), minRate} {
		b := newBucket(rate, 1, t0)
		ok, _ := b.take(t0)
		require.True(t, ok)
		ok, wait := b.take(t0)
		require.False(t, ok)
		assert.Positive(t, wait, "rate %g", rate)
		assert.LessOrEqual(t, wait, time.Duration(maxWaitSeconds*float64(time.Second)), "rate %g", rate)
		secs, err := strconv.ParseInt(retryAfter(wait), 10, 64)
		require.NoError(t, err)
		assert.Positive(t, secs, "Retry-After for rate %g", rate)
	}
	assert.Equal(t, "1", retryAfter(0))
	assert.Equal(t, "1", retryAfter(time.Millisecond))
	assert.Equal(t, "2", retryAfter(1001*time.Millisecond))
}

func TestATokenWithUnderASecondLeftIsUsable(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	clock := f.withClock()
	cred := f.srv.creds["shop"]
	tok := wxtoken.Token{AccessToken: "a-token-about-to-expire", ExpiresIn: 7200,
		CreateTime: clock.now().Add(-7200*time.Second + 400*time.Millisecond)}
	rec := httptest.NewRecorder()
	f.srv.writeToken(rec, cred, tok)
	require.Equal(t, http.StatusOK, rec.Code)
	var tr tokenResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &tr))
	assert.EqualValues(t, 1, tr.ExpiresIn, "rounded up, not 0")

	// A Go client accepts it.
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.srv.writeToken(w, cred, tok)
	}))
	defer remote.Close()
	src, err := wxtoken.RemoteSource(remote.URL, "shop", shopKey)
	require.NoError(t, err)
	got, err := src.Fetch(context.Background(), wxtoken.FetchRequest{HTTPClient: remote.Client()})
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, got.AccessToken)

	// Nothing left: no token, a 503.
	clock.advance(time.Second)
	rec = httptest.NewRecorder()
	f.srv.writeToken(rec, cred, tok)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.NotContains(t, rec.Body.String(), tok.AccessToken)
	assert.Contains(t, rec.Body.String(), `"code":"no_usable_token"`)
}

func TestTheBearerSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	for header, want := range map[string]int{
		"Bearer " + shopKey:  http.StatusOK,
		"bearer " + shopKey:  http.StatusOK,
		"BEARER " + shopKey:  http.StatusOK,
		"Bearer  " + shopKey: http.StatusOK,
		"Bearer":             http.StatusUnauthorized,
		"Bearer ":            http.StatusUnauthorized,
		"Basic " + shopKey:   http.StatusUnauthorized,
		"Bearer" + shopKey:   http.StatusUnauthorized,
		shopKey:              http.StatusUnauthorized,
	} {
		req, err := http.NewRequest("GET", f.ts.URL+"/v1/credentials/shop", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", header)
		resp, err := f.ts.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, "%q", strings.Replace(header, shopKey, "<key>", 1))
	}
}

func TestRejectedTooSoonSaysWhenTheWindowReopens(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	// A token obtained a minute ago after five rejected in a row: its window
	// is 10 s doubled five times, 320 s.
	young := wxtoken.Token{AccessToken: "a-token-rejected-again", ExpiresIn: 7200,
		CreateTime: time.Now().Add(-time.Minute), Rejections: 5}
	require.NoError(t, f.store.Save(context.Background(), wxtest.DefaultAppID, young))
	require.Equal(t, young.AccessToken, decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, "")).AccessToken)

	a := f.do(t, "POST", "/v1/credentials/shop/invalidate", shopKey, `{"rejected":"`+young.AccessToken+`"}`)
	require.Equal(t, http.StatusTooManyRequests, a.status, a.body)
	assert.Equal(t, "rejected_too_soon", decodeError(t, a).Code)
	secs, err := strconv.Atoi(a.header.Get("Retry-After"))
	require.NoError(t, err)
	assert.InDelta(t, 260, secs, 5, "320 s window, 60 s gone")
	assert.Zero(t, f.wx.TokenCalls())
}

func TestAFailingCredentialIsLoggedOncePerPeriod(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	clock := f.withClock()
	f.wx.Inject(wxtest.FaultErrcode(40164, "invalid ip 203.0.113.9, not in whitelist"))
	serverWarnings := func() (n int, last string) {
		for _, line := range f.logs.Warnings() {
			if strings.Contains(line, "no credential to hand out") {
				n, last = n+1, line
			}
		}
		return n, last
	}
	for range 20 {
		a := f.do(t, "GET", "/v1/credentials/shop", shopKey, "")
		require.Equal(t, http.StatusBadGateway, a.status, a.body)
	}
	n, _ := serverWarnings()
	assert.Equal(t, 1, n, "twenty failed requests, one warning")

	clock.advance(warnEvery)
	require.Equal(t, http.StatusBadGateway, f.do(t, "GET", "/v1/credentials/shop", shopKey, "").status)
	n, last := serverWarnings()
	assert.Equal(t, 2, n)
	assert.Contains(t, last, "warnings_held_back=19")
	f.assertNoToken(t, f.logs.String())
}

func TestAClientThatWentAwayIsNotAFailure(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	hold := f.wx.Hold(wxtest.PathToken)
	defer hold.Release()
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, "GET", "/v1/credentials/shop", nil)
	req.Header.Set("Authorization", "Bearer "+shopKey)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.srv.Handler().ServeHTTP(rec, req)
	}()
	<-hold.Waiting()
	cancel()
	<-done
	hold.Release()
	assert.Equal(t, statusClientClosed, rec.Code)
	assert.Contains(t, rec.Body.String(), `"code":"client_closed_request"`)
	assert.EqualValues(t, 1, f.served(routeCredential, statusClientClosed))
	assert.Zero(t, f.served(routeCredential, http.StatusGatewayTimeout), "not counted as an upstream timeout")
	for _, line := range f.logs.Warnings() {
		assert.NotContains(t, line, "no credential to hand out")
	}
}

func TestReadyzChecksTheStoreOnceASecondAndWarnsOnce(t *testing.T) {
	t.Parallel()
	down := &failingStore{Store: wxtoken.NewMemoryStore()}
	f := startOn(t, nil, down)
	clock := f.withClock()
	before := down.loads.Load()
	for range 50 {
		assert.Equal(t, http.StatusServiceUnavailable, f.do(t, "GET", "/readyz", "", "").status)
	}
	assert.EqualValues(t, 1, down.loads.Load()-before, "fifty probes, one Store call")
	clock.advance(readyFor)
	for range 50 {
		assert.Equal(t, http.StatusServiceUnavailable, f.do(t, "GET", "/readyz", "", "").status)
	}
	assert.EqualValues(t, 2, down.loads.Load()-before, "one more a second later")
	var warnings int
	for _, line := range f.logs.Warnings() {
		if strings.Contains(line, "the store does not answer") {
			warnings++
		}
	}
	assert.Equal(t, 1, warnings, "one outage, one warning")
}

func TestAgentConfigCarriesTheAgentID(t *testing.T) {
	t.Parallel()
	f := start(t, func(c *Config) {
		agent := c.Credentials["corp-agent"]
		agent.AgentID = "1000002"
		c.Credentials["corp-agent"] = agent
	})
	page := "https://a.example/"
	a := f.do(t, "GET", "/v1/jssdk/corp-agent?url="+page, corpKey, "")
	require.Equal(t, http.StatusOK, a.status, a.body)
	var cfg struct {
		wxtoken.JSSDKConfig
		CorpID  string `json:"corpid"`
		AgentID string `json:"agentid"`
	}
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&cfg))
	assert.Equal(t, "1000002", cfg.AgentID)
	assert.Equal(t, wxtest.DefaultCorpID, cfg.CorpID)
	assert.Equal(t, wxtest.DefaultCorpID, cfg.AppID)
	ticket := f.wx.CurrentWeComTicket(wxtest.DefaultCorpID, wxtest.DefaultCorpSecret, wxtest.TicketAgentConfig)
	assert.Equal(t, wxtoken.SignJSSDK(ticket, cfg.NonceStr, cfg.Timestamp, page), cfg.Signature)

	// The corp's own ticket signs wx.config: no agentid.
	jsapi := f.do(t, "GET", "/v1/jssdk/corp-jsapi?url="+page, corpKey, "")
	require.Equal(t, http.StatusOK, jsapi.status, jsapi.body)
	decodeJSSDK(t, jsapi)
}
