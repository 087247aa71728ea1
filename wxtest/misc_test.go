package wxtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFaultDropOnReusedConnectionRetriedByNetHTTP(t *testing.T) {
	// Documents the caveat on FaultDrop: net/http replays an idempotent request
	// once when a reused connection drops before answering.
	f := newNetFake(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	f.hc = &http.Client{Transport: tr}
	_, _, err := f.fetch(context.Background())
	require.NoError(t, err)
	f.Inject(FaultDrop())
	_, _, err = f.fetch(context.Background())
	assert.NoError(t, err, "replayed on a new connection")
	assert.Equal(t, 3, f.TokenCalls())
}

func TestCountersConcurrent(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		tok := f.stable(t, false).AccessToken // normal mode: never rotated here
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				f.token(t)
				f.stable(t, false)
				f.callbackIP(t, tok)
			})
		}
		wg.Wait()
		assert.Equal(t, 20, f.TokenCalls())
		assert.Equal(t, 21, f.StableCalls())
		assert.Equal(t, 20, f.BusinessCalls())
		assert.Zero(t, f.ForceRefreshCalls())
		assert.Empty(t, f.Rejections(), "the stable token stays valid")
	})
}

func TestCountersIgnoreOtherPaths(t *testing.T) {
	f := newLocalFake(t)
	f.do(t, http.MethodGet, "/other", nil, "")
	assert.Zero(t, f.TokenCalls()+f.StableCalls()+f.BusinessCalls())
}

func TestServerAsPlainHandler(t *testing.T) {
	srv := NewHandler(WithoutRID())
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, PathToken+"?"+tokenQuery(DefaultAppID, "bad").Encode(), nil)
	srv.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest"}`, rec.Body.String())
	assert.NotContains(t, rec.Body.String(), "bad")
	assert.Equal(t, HandlerURL, srv.URL())
	assert.Nil(t, srv.HTTPServer())
	srv.Close()
	srv.Close()
}

func TestNetServerListensOnLoopback(t *testing.T) {
	srv := NewServer()
	defer srv.Close()
	assert.True(t, strings.HasPrefix(srv.URL(), "http://127.0.0.1:"), srv.URL())
	assert.NotNil(t, srv.HTTPServer())
}

func TestClock(t *testing.T) {
	c := NewClock(time.Time{})
	assert.Equal(t, time.Date(2024, 1, 2, 10, 0, 0, 0, time.FixedZone("CST", 8*3600)).Unix(), c.Now().Unix())
	assert.Equal(t, c.Now().Add(time.Hour), c.Advance(time.Hour))
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c.Set(at)
	assert.Equal(t, at, c.Now())
	assert.Equal(t, at, NewClock(at).Now())
}

func TestBeijingDay(t *testing.T) {
	before := time.Date(2024, 3, 1, 15, 59, 59, 0, time.UTC)
	assert.Equal(t, beijingDay(before), beijingDay(time.Date(2024, 2, 29, 16, 0, 0, 0, time.UTC)))
	assert.Equal(t, beijingDay(before)+1, beijingDay(before.Add(time.Second)))
	assert.Equal(t, int64(-1), floorDiv(-1, 60))
	assert.Equal(t, int64(-1), minuteOf(time.Unix(-1, 0)))
}

// FuzzStableTokenBody feeds arbitrary bodies to the stable_token decoder: the
// fake must always answer HTTP 200 JSON, a token or an errcode, never the secret.
func FuzzStableTokenBody(f *testing.F) {
	f.Add(stableBody(DefaultAppID, DefaultSecret, false))
	f.Add(stableBody(DefaultAppID, DefaultSecret, true))
	f.Add(stableBody(DefaultAppID, "wrong", false))
	f.Add(`{"grant_type":"client_credential","appid":1}`)
	f.Add(`{}{}`)
	f.Add(`[`)
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		srv := NewHandler()
		defer srv.Close()
		resp, err := srv.Client().Post(HandlerURL+PathStableToken, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var r reply
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&r))
		require.True(t, (r.AccessToken != "") != (r.Errcode != 0), "%+v", r)
		if r.AccessToken != "" {
			require.GreaterOrEqual(t, r.ExpiresIn, int64(300))
		}
		require.NotContains(t, r.Errmsg, DefaultSecret)
		require.Equal(t, 1, srv.StableCalls())
	})
}

// FuzzTokenQuery feeds arbitrary query strings to GET /cgi-bin/token.
func FuzzTokenQuery(f *testing.F) {
	f.Add(tokenQuery(DefaultAppID, DefaultSecret).Encode())
	f.Add("grant_type=client_credential&appid=&secret=x")
	f.Add("%zz&&=")
	f.Fuzz(func(t *testing.T, query string) {
		srv := NewHandler()
		defer srv.Close()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, PathToken, nil)
		req.URL.RawQuery = query
		srv.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		var r reply
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
		require.True(t, (r.AccessToken != "") != (r.Errcode != 0), "%+v", r)
		require.NotContains(t, r.Errmsg, DefaultSecret)
	})
}
