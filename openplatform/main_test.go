package openplatform_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/logbuf"
	"github.com/wxtoken/wxtoken/openplatform"
	"github.com/wxtoken/wxtoken/wxtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// component is wxtest's default third-party platform.
var component = openplatform.Config{
	AppID:          wxtest.DefaultComponentAppID,
	Secret:         wxtest.DefaultComponentSecret,
	Token:          wxtest.DefaultComponentToken,
	EncodingAESKey: wxtest.DefaultComponentAESKey,
}

// newPlatform returns a Platform on srv (in process: it works inside a
// synctest bubble) and store, closed when t ends, and its log.
func newPlatform(t *testing.T, srv *wxtest.Server, store wxtoken.Store, cfg openplatform.Config, opts ...openplatform.Option) (*openplatform.Platform, *logbuf.Buffer) {
	t.Helper()
	logs := &logbuf.Buffer{}
	base := []openplatform.Option{
		openplatform.WithStore(store),
		openplatform.WithBaseURL(srv.URL()),
		openplatform.WithHTTPClient(srv.Client()),
		openplatform.WithLogger(logs.Logger(slog.LevelInfo)),
	}
	p, err := openplatform.New(cfg, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p, logs
}

// authorize has the merchant appID authorize the platform and delivers the
// authorized event to p, which must answer success.
func authorize(t *testing.T, srv *wxtest.Server, p *openplatform.Platform, appID string) {
	t.Helper()
	ev, err := srv.Authorize(wxtest.DefaultComponentAppID, appID, 1, 15)
	require.NoError(t, err)
	status, body, err := srv.Deliver(p, ev)
	require.NoError(t, err)
	require.Equal(t, 200, status, body)
	require.Equal(t, "success", body)
}

// pushTicket pushes a new verify ticket to p.
func pushTicket(t *testing.T, srv *wxtest.Server, p *openplatform.Platform) string {
	t.Helper()
	ticket, err := srv.PushTicket(p, wxtest.DefaultComponentAppID)
	require.NoError(t, err)
	return ticket
}

func authorizerKey(appID string) string {
	return wxtest.DefaultComponentAppID + ".authorizer." + appID
}

func load(t *testing.T, store wxtoken.Store, key string) wxtoken.Token {
	t.Helper()
	tok, err := store.Load(context.Background(), key)
	require.NoError(t, err)
	return tok
}
