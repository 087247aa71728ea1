package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/wxtest"
)

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// FuzzInvalidateBody sends arbitrary bodies to the invalidate endpoint: a
// 200 with the current token or a 400 with a JSON error body, never a
// panic, and never a fetch for a token the server has not handed out.
func FuzzInvalidateBody(f *testing.F) {
	f.Add([]byte(`{"rejected":"x"}`))
	f.Add([]byte(`{"rejected":1}`))
	f.Add([]byte(`{"rejected":"x","rejected":"y"}`))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(`[]`))
	fx := start(f, func(c *Config) { // one server for every input, fuzzed as fast as it goes
		billing := c.Clients["billing"]
		billing.RateLimit = RateLimitConfig{PerSecond: maxRate, Burst: maxBurst}
		c.Clients["billing"] = billing
	})
	h := fx.srv.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, authorized(httptest.NewRequest("GET", "/v1/credentials/shop", nil)))
	require.Equal(f, http.StatusOK, rec.Code)
	handedOut := fx.wx.CurrentToken(wxtest.DefaultAppID)
	require.Equal(f, 1, fx.wx.TokenCalls())
	f.Fuzz(func(t *testing.T, body []byte) {
		req := authorized(httptest.NewRequest("POST", "/v1/credentials/shop/invalidate", strings.NewReader(string(body))))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			require.Contains(t, rec.Body.String(), `"access_token":"`+handedOut+`"`)
		case http.StatusBadRequest:
			require.NotContains(t, rec.Body.String(), handedOut)
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		if !strings.Contains(string(body), handedOut) {
			require.Equal(t, 1, fx.wx.TokenCalls(), "no fetch for %q", body)
		}
	})
}

// authorized adds the shop client's bearer key to req.
func authorized(req *http.Request) *http.Request {
	req.Header.Set("Authorization", "Bearer "+shopKey)
	return req
}
