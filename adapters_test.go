package wxtoken_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// The method sets the adapters promise, written as the interfaces other SDKs
// declare them: a change of signature fails to compile here.
var (
	_ interface {
		GetAccessToken() (string, error)
		GetAccessTokenContext(ctx context.Context) (string, error)
	} = wxtoken.AccessTokenHandle{}
	_ interface {
		GetToken(context.Context) (string, error)
	} = wxtoken.TokenProvider{}
	_ func(appid, secret string) (token string, expireIn uint) = (*wxtoken.Client)(nil).TokenGetter()
)

func TestAdaptersServeTheClientsToken(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	c := quotaClient(t, srv)
	ctx := context.Background()

	h := wxtoken.AccessTokenHandle{Client: c}
	a, err := h.GetAccessToken()
	require.NoError(t, err)
	b, err := h.GetAccessTokenContext(ctx)
	require.NoError(t, err)
	p, err := wxtoken.TokenProvider{Client: c}.GetToken(ctx)
	require.NoError(t, err)
	g, left := c.TokenGetter()("ignored", "ignored")

	want := srv.CurrentToken(wxtest.DefaultAppID)
	assert.Equal(t, []string{want, want, want, want}, []string{a, b, p, g})
	assert.InDelta(t, 7200, left, 2)
	assert.Equal(t, 1, srv.TokenCalls(), "every adapter shares the Client's one token")
}

func TestAdaptersPassFailuresOn(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	srv.Inject(wxtest.FaultErrcode(wxtoken.CodeIPNotWhitelisted, "").On(wxtest.PathToken))
	c := quotaClient(t, srv)
	_, err := wxtoken.AccessTokenHandle{Client: c}.GetAccessToken()
	assert.True(t, wxtoken.IsPermanent(err), "%v", err)
	_, err = wxtoken.TokenProvider{Client: c}.GetToken(context.Background())
	assert.True(t, wxtoken.IsPermanent(err), "%v", err)
	tok, left := c.TokenGetter()("", "")
	assert.Empty(t, tok)
	assert.Zero(t, left)
}

func TestAdaptersHonourTheContext(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	c := quotaClient(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := wxtoken.TokenProvider{Client: c}.GetToken(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = wxtoken.AccessTokenHandle{Client: c}.GetAccessTokenContext(ctx)
	assert.ErrorIs(t, err, context.Canceled)
}
