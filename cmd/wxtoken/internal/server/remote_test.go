package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// served counts the credential requests the server answered with status.
func (f *fixture) served(rt route, status int) uint64 {
	return f.srv.metrics.routes[rt].status[status].Load()
}

func TestRemoteSourceGetsTheServersTokenAndThenAsksNothingWhileFresh(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	c, err := wxtoken.NewRemote(f.ts.URL, "shop", shopKey, wxtoken.WithStore(wxtoken.NewMemoryStore()))
	require.NoError(t, err)
	defer c.Close()

	tok, err := c.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, f.wx.CurrentToken(wxtest.DefaultAppID), tok.AccessToken, "the same token as the server's")
	assert.WithinDuration(t, time.Now().Add(7200*time.Second), tok.ExpiresAt(), 5*time.Second)
	require.EqualValues(t, 1, f.served(routeCredential, http.StatusOK))

	for range 100_000 {
		got, err := c.Get(context.Background())
		require.NoError(t, err)
		require.Equal(t, tok.AccessToken, got)
	}
	assert.EqualValues(t, 1, f.served(routeCredential, http.StatusOK), "0 requests to the server per Get while fresh")
	assert.Equal(t, 1, f.wx.TokenCalls())
}

func TestRemoteInvalidateOfAnOldTokenCostsNoFetch(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	// The server moved on while this client still held the old token.
	old := wxtoken.Token{AccessToken: "seeded-token-an-hour-old", ExpiresIn: 7200, CreateTime: time.Now().Add(-time.Hour)}
	local := wxtoken.NewMemoryStore()
	key, err := wxtoken.RemoteKey(f.ts.URL, "shop", shopKey)
	require.NoError(t, err)
	require.NoError(t, local.Save(context.Background(), key, old))
	decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, "")) // the server's own token
	require.Equal(t, 1, f.wx.TokenCalls())

	c, err := wxtoken.NewRemote(f.ts.URL, "shop", shopKey, wxtoken.WithStore(local))
	require.NoError(t, err)
	defer c.Close()
	got, err := c.Get(context.Background())
	require.NoError(t, err)
	require.Equal(t, old.AccessToken, got, "served from the local store")

	next, err := c.Invalidate(context.Background(), old.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, f.wx.CurrentToken(wxtest.DefaultAppID), next)
	assert.Equal(t, 1, f.wx.TokenCalls(), "the server compared and answered its current token: no fetch")
	assert.EqualValues(t, 1, f.served(routeInvalidate, http.StatusOK))
}

func TestRemoteClientWithAForeignCredentialGetsAPermanentError(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	c, err := wxtoken.NewRemote(f.ts.URL, "corp", shopKey, wxtoken.WithStore(wxtoken.NewMemoryStore()),
		wxtoken.WithLogger(f.logs.Logger(0)))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(context.Background())
	var re *wxtoken.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusForbidden, re.StatusCode)
	assert.True(t, wxtoken.IsPermanent(err))
	f.assertNoToken(t, err.Error())
}

func TestTransportHealsARejectedTokenThroughTheServer(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	// The server holds a token an hour old that WeChat no longer knows.
	dead := wxtoken.Token{AccessToken: "a-token-wechat-revoked", ExpiresIn: 7200, CreateTime: time.Now().Add(-time.Hour)}
	require.NoError(t, f.store.Save(context.Background(), wxtest.DefaultAppID, dead))

	c, err := wxtoken.NewRemote(f.ts.URL, "shop", shopKey, wxtoken.WithStore(wxtoken.NewMemoryStore()),
		wxtoken.WithBaseURL(f.wx.URL()))
	require.NoError(t, err)
	defer c.Close()
	tok, err := c.Token(context.Background())
	require.NoError(t, err)
	require.Equal(t, dead.AccessToken, tok.AccessToken)
	assert.WithinDuration(t, dead.CreateTime, tok.CreateTime, 2*time.Second, "dated as the server's copy")

	hc := wxtoken.NewHTTPClient(c, nil)
	resp, err := hc.Get(f.wx.URL() + wxtest.PathCallbackIP)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, wxtoken.CheckResponse(resp), "the resend with the server's new token succeeded")
	assert.Equal(t, 1, f.wx.TokenCalls(), "one fetch, by the server, for the rejection")
	assert.EqualValues(t, 1, f.served(routeInvalidate, http.StatusOK))
	assert.Equal(t, map[int]int{40001: 1}, f.wx.Rejections())
}
