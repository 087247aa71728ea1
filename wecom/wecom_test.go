package wecom_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wecom"
	"github.com/wxtoken/wxtoken/wxtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	corpID = wxtest.DefaultCorpID
	secret = wxtest.DefaultCorpSecret
)

func newClient(t testing.TB, srv *wxtest.Server, corpSecret string, opts ...wxtoken.Option) *wxtoken.Client {
	t.Helper()
	base := []wxtoken.Option{wxtoken.WithBaseURL(srv.URL()), wxtoken.WithHTTPClient(srv.Client()),
		wxtoken.WithStore(wxtoken.NewMemoryStore())}
	c, err := wecom.New(corpID, corpSecret, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestGetsTheCorpToken(t *testing.T) {
	srv := wxtest.NewHandler()
	c := newClient(t, srv, secret)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			tok, err := c.Get(context.Background())
			assert.NoError(t, err)
			assert.Equal(t, srv.CurrentWeComToken(corpID, secret), tok)
		})
	}
	wg.Wait()
	assert.Equal(t, 1, srv.WeComTokenCalls())
}

// A wrong secret is a permanent 40001 at gettoken, which IsTokenRejected does
// not claim; 100 callers within the cool-down cost one upstream call.
func TestWrongSecretIsPermanentAndNotARejectedToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		c := newClient(t, srv, "not-the-secret")
		for range 100 {
			_, err := c.Get(context.Background())
			var apiErr *wxtoken.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, wecom.CodeInvalidSecret, apiErr.Code)
			assert.Equal(t, "/cgi-bin/gettoken", apiErr.Endpoint)
			assert.True(t, wxtoken.IsPermanent(err))
			assert.False(t, wxtoken.IsTokenRejected(err))
			for e := err; e != nil; e = errors.Unwrap(e) {
				assert.NotContains(t, e.Error(), "not-the-secret")
			}
			time.Sleep(100 * time.Millisecond)
		}
		assert.Equal(t, 1, srv.WeComTokenCalls(), "one call for 100 callers within the cool-down")
	})
}

// The store key holds a fingerprint of the secret, never the secret; two
// applications of one corp have two keys; file names hold no secret.
func TestKeysAndFilesHoldNoSecret(t *testing.T) {
	other := "second-application-secret"
	srv := wxtest.NewHandler(wxtest.WithCorp(corpID, secret, other))
	dir := t.TempDir()
	fs, err := wxtoken.NewFileStore(dir)
	require.NoError(t, err)
	a := newClient(t, srv, secret, wxtoken.WithStore(fs))
	b := newClient(t, srv, other, wxtoken.WithStore(fs))
	assert.NotEqual(t, a.Key(), b.Key())
	assert.Equal(t, wecom.Key(corpID, secret), a.Key())
	ta, err := a.Get(t.Context())
	require.NoError(t, err)
	tb, err := b.Get(t.Context())
	require.NoError(t, err)
	assert.NotEqual(t, ta, tb, "each application has its own token")
	require.NoError(t, a.Close()) // Close waits for the saves
	require.NoError(t, b.Close())
	names, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for _, n := range names {
		assert.NotContains(t, n.Name(), secret)
		assert.NotContains(t, n.Name(), other)
	}
	assert.NotContains(t, a.Key()+b.Key(), secret)
	assert.NotContains(t, a.String(), secret)
}

// WeCom may invalidate a token early: the Transport's healing covers it.
func TestTransportHealsARevokedToken(t *testing.T) {
	srv := wxtest.NewHandler()
	c := newClient(t, srv, secret, wxtoken.WithRejectGuard(0))
	first, err := c.Get(t.Context())
	require.NoError(t, err)
	srv.RevokeWeComToken(corpID, secret)
	hc := wxtoken.NewHTTPClient(c, srv.Transport())
	resp, err := hc.Post(c.BaseURL()+wxtest.PathWeComSend, "application/json", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, wxtoken.CheckResponse(resp))
	now, err := c.Get(t.Context())
	require.NoError(t, err)
	assert.NotEqual(t, first, now)
	assert.Equal(t, 2, srv.WeComTokenCalls())
}

func TestTickets(t *testing.T) {
	srv := wxtest.NewHandler()
	c := newClient(t, srv, secret)
	jsapi, err := wecom.NewJSAPITicket(c)
	require.NoError(t, err)
	defer jsapi.Close()
	agent, err := wecom.NewAgentTicket(c)
	require.NoError(t, err)
	defer agent.Close()
	assert.Equal(t, "wecom."+corpID+".ticket.jsapi", jsapi.Key())
	assert.Equal(t, c.Key()+".ticket.agent_config", agent.Key())

	cfg, err := jsapi.JSSDKConfig(t.Context(), "https://work.example/app#x")
	require.NoError(t, err)
	assert.Equal(t, corpID, cfg.AppID)
	ticket := srv.CurrentWeComTicket(corpID, secret, "jsapi")
	assert.Equal(t, wxtoken.SignJSSDK(ticket, cfg.NonceStr, cfg.Timestamp, "https://work.example/app"), cfg.Signature)
	at, err := agent.Get(t.Context())
	require.NoError(t, err)
	assert.True(t, srv.WeComTicketValid(corpID, secret, "agent_config", at))
	assert.Equal(t, 1, srv.WeComTokenCalls())
}

func TestNewRefusesBadCredentials(t *testing.T) {
	for _, tc := range [][2]string{{"", secret}, {corpID, ""}, {"corp id", secret}, {corpID, "a b"}} {
		_, err := wecom.New(tc[0], tc[1])
		require.Error(t, err)
		if tc[1] != "" {
			assert.NotContains(t, err.Error(), tc[1])
		}
	}
}
