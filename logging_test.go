package wxtoken

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

// Without WithLogger a Client logs failures only, through slog.Default() as
// it is when the line is written: set after New, it is still followed.
func TestDefaultLoggerLogsWarningsThroughTheCurrentDefault(t *testing.T) {
	s := &script{reply: func(n int64) (*http.Response, error) {
		if n == 1 {
			return okToken(n, 7200)
		}
		return apiErr(CodeIPNotWhitelisted)
	}}
	c, err := New(testAppID, testSecret, WithHTTPClient(&http.Client{Transport: newUpstream(t, s.responder)}),
		WithStore(NewMemoryStore()), WithRejectGuard(0))
	require.NoError(t, err)
	defer c.Close()

	logs := &logbuf.Buffer{}
	prev := slog.Default()
	slog.SetDefault(logs.Logger(slog.LevelDebug))
	defer slog.SetDefault(prev)

	require.Equal(t, "token-1", mustGet(t, c))
	assert.Empty(t, logs.String(), "a routine fetch is not logged by default")
	_, err = c.Invalidate(context.Background(), "token-1")
	require.Error(t, err)
	c.waitIdle()
	assert.Contains(t, strings.Join(logs.Warnings(), "\n"), "fetching a token failed")
	assert.NotContains(t, logs.String(), testSecret)
	assert.NotContains(t, logs.String(), "level=INFO")
}

// In stable mode, an answer that is the token already held is logged as such,
// not as a new token.
func TestStableModeLogsAHandedBackToken(t *testing.T) {
	s := &stableUpstream{}
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodPost, "https://api.weixin.qq.com/cgi-bin/stable_token", s.responder)
	logs := &logbuf.Buffer{}
	c := newTestClient(t, upstream{mt}, WithStableToken(), WithLogger(logs.Logger(slog.LevelInfo)), WithRejectGuard(0))
	bad := mustGet(t, c)
	next, err := c.Invalidate(context.Background(), bad)
	require.NoError(t, err)
	require.NotEqual(t, bad, next)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 3, "%s", logs.String())
	assert.Contains(t, lines[0], "fetched a new token")
	assert.Contains(t, lines[1], "WeChat handed back the current token")
	assert.Contains(t, lines[1], "force=false")
	assert.Contains(t, lines[2], "fetched a new token")
	assert.Contains(t, lines[2], "force=true")
}
