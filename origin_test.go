package wxtoken

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// apiFake is a business API on loopback that records the access_token of
// every request and redirects those for /moved to redirectTo.
type apiFake struct {
	*httptest.Server
	redirectTo string
	mu         sync.Mutex
	tokens     []string
}

func newAPIFake(t *testing.T) *apiFake {
	t.Helper()
	f := &apiFake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.tokens = append(f.tokens, r.URL.Query().Get("access_token"))
		f.mu.Unlock()
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, f.redirectTo, http.StatusFound)
			return
		}
		_, _ = w.Write([]byte(okAnswer))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *apiFake) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.tokens...)
}

// originRig returns a Client whose API origins are api's, and an
// http.Client through its Transport over real loopback connections.
func originRig(t *testing.T, api *apiFake) *http.Client {
	t.Helper()
	c := newTestClient(t, newUpstream(t, body(`{"access_token":"ORIGIN-TOKEN","expires_in":7200}`)),
		WithAPIOrigins(api.URL))
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	return NewHTTPClient(c, base)
}

func TestTransportSendsNoTokenToAForeignHost(t *testing.T) {
	api, foreign := newAPIFake(t), newRecorder(t)
	hc := originRig(t, api)

	resp, err := hc.Get(foreign.URL + "/collect?q=" + locationMark)
	assert.Nil(t, resp)
	require.ErrorIs(t, err, ErrForeignOrigin)
	assert.Contains(t, err.Error(), "not an API origin; the access_token is not sent there: "+foreign.URL)
	assert.Empty(t, foreign.requests(), "nothing was sent to the foreign host")

	// A request for the API origin still gets the token.
	resp, err = hc.Get(api.URL + "/cgi-bin/menu/get")
	require.NoError(t, err)
	assert.Equal(t, okAnswer, readAll(t, resp))
	assert.Equal(t, []string{"ORIGIN-TOKEN"}, api.seen())
}

func TestTransportRefusesARedirectToAnotherOrigin(t *testing.T) {
	api, foreign := newAPIFake(t), newRecorder(t)
	api.redirectTo = foreign.URL + "/landing"
	hc := originRig(t, api)

	resp, err := hc.Get(api.URL + "/moved")
	assert.Nil(t, resp)
	require.ErrorIs(t, err, ErrForeignOrigin)
	assert.Empty(t, foreign.requests(), "the redirect target received nothing")
	for _, dump := range foreign.requests() {
		assert.False(t, bytes.Contains(dump, []byte("ORIGIN-TOKEN")))
	}
	assert.Equal(t, []string{"ORIGIN-TOKEN"}, api.seen(), "only the API origin saw the token")
}

func TestTransportFollowsARedirectWithinTheOrigin(t *testing.T) {
	api := newAPIFake(t)
	api.redirectTo = api.URL + "/landing"
	hc := originRig(t, api)
	resp, err := hc.Get(api.URL + "/moved")
	require.NoError(t, err)
	assert.Equal(t, okAnswer, readAll(t, resp))
	assert.Equal(t, []string{"ORIGIN-TOKEN", "ORIGIN-TOKEN"}, api.seen())
}

func TestTransportOriginRule(t *testing.T) {
	c := newTestClient(t, newUpstream(t, body(`{"access_token":"ORIGIN-TOKEN","expires_in":7200}`)),
		WithAPIOrigins("https://api2.weixin.qq.com", "http://127.0.0.1:8080/"))
	var sent []string
	tr := &Transport{Client: c, Base: transportFunc(func(req *http.Request) (*http.Response, error) {
		sent = append(sent, req.URL.String())
		return answerWith(req, http.NoBody, "application/json", 0), nil
	})}
	allowed := []string{
		"https://api.weixin.qq.com/cgi-bin/menu/get",
		"HTTPS://API.Weixin.QQ.com:443/cgi-bin/menu/get",
		"https://api2.weixin.qq.com/x",
		"http://127.0.0.1:8080/x",
	}
	refused := []string{
		"http://api.weixin.qq.com/cgi-bin/menu/get", // another scheme is another origin
		"https://api.weixin.qq.com:8443/x",
		"https://api.weixin.qq.com.evil.example/x",
		"https://evil.example/?access_token=x",
		"http://127.0.0.1:8081/x",
	}
	for _, u := range allowed {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err, u)
		resp.Body.Close()
	}
	require.Len(t, sent, len(allowed))
	for _, u := range sent {
		assert.Contains(t, u, "access_token=ORIGIN-TOKEN")
	}
	for _, u := range refused {
		src := &trackedReader{r: strings.NewReader(message)}
		req, err := http.NewRequest(http.MethodPost, u, src)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		require.ErrorIs(t, err, ErrForeignOrigin, u)
		assert.NotContains(t, err.Error(), "access_token=x", "the query is not quoted")
		assert.NotContains(t, err.Error(), "/x")
		assert.True(t, src.closed.Load(), "the request body is closed")
	}
	assert.Len(t, sent, len(allowed), "nothing refused was sent")
}

func TestWithAPIOriginsRefusesMoreThanAnOrigin(t *testing.T) {
	for _, o := range []string{"api.weixin.qq.com", "ftp://x", "https://", "https://x/path",
		"https://x?q=1", "https://user@x", "https://x/#f"} {
		c, err := New(testAppID, testSecret, WithAPIOrigins(o))
		assert.Nil(t, c, o)
		require.Error(t, err, o)
		assert.Contains(t, err.Error(), "is not scheme://host[:port]", o)
	}
	c, err := New(testAppID, testSecret, WithAPIOrigins("https://x", "https://x:443/"),
		WithStore(NewMemoryStore()))
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, []string{DefaultBaseURL, "https://x"}, c.cfg.origins)
}
