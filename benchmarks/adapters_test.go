package benchmarks_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/credential"
	"github.com/silenceper/wechat/v2/miniprogram"
	mpconfig "github.com/silenceper/wechat/v2/miniprogram/config"
	"github.com/silenceper/wechat/v2/officialaccount"
	oaconfig "github.com/silenceper/wechat/v2/officialaccount/config"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// The core module's adapters satisfy the other SDKs' own interfaces: a change
// on either side fails to compile here. (go-workwx, PowerWeChat and
// medivhzhan/weapp are not served by the module proxy this project uses, so
// only their documented shapes are checked, in the core module's tests.)
var (
	_ credential.AccessTokenHandle        = wxtoken.AccessTokenHandle{}
	_ credential.AccessTokenContextHandle = wxtoken.AccessTokenHandle{}
	_ oauth2.TokenSource                  = tokenSource{}
)

// tokenSource is the oauth2.TokenSource over a Client that the README shows:
// the core module cannot name oauth2.Token without depending on oauth2.
type tokenSource struct{ c *wxtoken.Client }

func (s tokenSource) Token() (*oauth2.Token, error) {
	t, err := s.c.Token(context.Background())
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: t.AccessToken, Expiry: t.ExpiresAt()}, nil
}

// adapterClient is a Client of the fake's default account.
func adapterClient(t *testing.T) (*wxtoken.Client, *wxtest.Server) {
	t.Helper()
	srv := wxtest.NewServer()
	t.Cleanup(srv.Close)
	c, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(wxtoken.NewMemoryStore()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, srv
}

func TestOfficialAccountSDKGetsTheClientsToken(t *testing.T) {
	c, srv := adapterClient(t)
	oa := officialaccount.NewOfficialAccount(&oaconfig.Config{
		AppID: wxtest.DefaultAppID, AppSecret: "unused", Cache: cache.NewMemory()})
	oa.SetAccessTokenHandle(wxtoken.AccessTokenHandle{Client: c})
	tok, err := oa.GetAccessToken()
	require.NoError(t, err)
	assert.Equal(t, srv.CurrentToken(wxtest.DefaultAppID), tok)
	tok, err = oa.GetAccessTokenContext(context.Background())
	require.NoError(t, err)
	assert.Equal(t, srv.CurrentToken(wxtest.DefaultAppID), tok)
	assert.Equal(t, 1, srv.TokenCalls())
}

func TestMiniProgramSDKGetsTheClientsToken(t *testing.T) {
	c, srv := adapterClient(t)
	mp := miniprogram.NewMiniProgram(&mpconfig.Config{
		AppID: wxtest.DefaultAppID, AppSecret: "unused", Cache: cache.NewMemory()})
	mp.SetAccessTokenContextHandle(wxtoken.AccessTokenHandle{Client: c})
	tok, err := mp.GetContext().GetAccessTokenContext(context.Background())
	require.NoError(t, err)
	assert.Equal(t, srv.CurrentToken(wxtest.DefaultAppID), tok)
	assert.Equal(t, 1, srv.TokenCalls())
}

func TestOAuth2TokenSourceGetsTheClientsToken(t *testing.T) {
	c, srv := adapterClient(t)
	ts := oauth2.ReuseTokenSource(nil, tokenSource{c})
	tok, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, srv.CurrentToken(wxtest.DefaultAppID), tok.AccessToken)
	assert.True(t, tok.Valid())
	assert.WithinDuration(t, time.Now().Add(2*time.Hour), tok.Expiry, 5*time.Second)
	assert.Equal(t, 1, srv.TokenCalls())
}
