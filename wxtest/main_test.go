package wxtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// reply holds every field any endpoint answers with.
type reply struct {
	AccessToken string   `json:"access_token"`
	ExpiresIn   int64    `json:"expires_in"`
	Errcode     int      `json:"errcode"`
	Errmsg      string   `json:"errmsg"`
	IPList      []string `json:"ip_list"`
	Ticket      string   `json:"ticket"`
}

// fake is a Server and a client that reaches it, one way or the other.
type fake struct {
	*Server
	clk  *Clock
	hc   *http.Client
	base string
}

// both runs fn against a listening server and against the in-process client.
func both(t *testing.T, fn func(t *testing.T, f *fake), opts ...Option) {
	t.Run("net", func(t *testing.T) { fn(t, newNetFake(t, opts...)) })
	t.Run("inprocess", func(t *testing.T) { fn(t, newLocalFake(t, opts...)) })
}

func newNetFake(t *testing.T, opts ...Option) *fake {
	clk := NewClock(time.Time{})
	srv := NewServer(append([]Option{WithClock(clk.Now)}, opts...)...)
	// No keep-alive: a dropped reused connection would be retried by net/http.
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return &fake{Server: srv, clk: clk, hc: &http.Client{Transport: tr}, base: srv.URL()}
}

func newLocalFake(t *testing.T, opts ...Option) *fake {
	clk := NewClock(time.Time{})
	srv := NewHandler(append([]Option{WithClock(clk.Now)}, opts...)...)
	t.Cleanup(srv.Close)
	return &fake{Server: srv, clk: clk, hc: srv.Client(), base: srv.URL()}
}

// do sends a request and returns the answer's status, header and body.
func (f *fake) do(t *testing.T, method, path string, q url.Values, body string) (*http.Response, []byte) {
	t.Helper()
	u := f.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	resp, err := f.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

// decode sends a request that must get HTTP 200 JSON and decodes it.
func (f *fake) decode(t *testing.T, method, path string, q url.Values, body string) reply {
	t.Helper()
	resp, b := f.do(t, method, path, q, body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body %s", b)
	var r reply
	require.NoError(t, json.Unmarshal(b, &r), "body %s", b)
	for _, secret := range []string{DefaultSecret, "s3cr3t-of-another-app", DefaultCorpSecret} {
		require.False(t, bytes.Contains(b, []byte(secret)), "answer echoes a secret: %s", b)
	}
	return r
}

func tokenQuery(appID, secret string) url.Values {
	return url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}}
}

func (f *fake) token(t *testing.T) reply {
	t.Helper()
	return f.decode(t, http.MethodGet, PathToken, tokenQuery(DefaultAppID, DefaultSecret), "")
}

func (f *fake) mustToken(t *testing.T) string {
	t.Helper()
	r := f.token(t)
	require.Zero(t, r.Errcode, r.Errmsg)
	require.NotEmpty(t, r.AccessToken)
	return r.AccessToken
}

func stableBody(appID, secret string, force bool) string {
	b, _ := json.Marshal(map[string]any{
		"grant_type": "client_credential", "appid": appID, "secret": secret, "force_refresh": force,
	})
	return string(b)
}

func (f *fake) stable(t *testing.T, force bool) reply {
	t.Helper()
	return f.decode(t, http.MethodPost, PathStableToken, nil, stableBody(DefaultAppID, DefaultSecret, force))
}

func (f *fake) callbackIP(t *testing.T, tok string) reply {
	t.Helper()
	q := url.Values{}
	if tok != "" {
		q.Set("access_token", tok)
	}
	return f.decode(t, http.MethodGet, PathCallbackIP, q, "")
}
