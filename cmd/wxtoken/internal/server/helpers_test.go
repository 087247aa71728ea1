package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/logbuf"
	"github.com/wxtoken/wxtoken/wxtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Client keys of the test configuration.
const (
	shopKey  = "wxt_shop-client-key-0123456789abcdefghijklmnop"
	corpKey  = "wxt_corp-client-key-0123456789abcdefghijklmnop"
	limitKey = "wxt_limited-client-key-0123456789abcdefghijklm"
)

// testConfig is a configuration of every credential type against wx, with
// secrets from the environment the tests pass to ResolveSecrets.
func testConfig(wx *wxtest.Server) Config {
	return Config{
		Listen:        "127.0.0.1:0",
		Store:         StoreConfig{Dir: "unused-the-tests-pass-a-store"},
		WeChatBaseURL: wx.URL(),
		WeComBaseURL:  wx.URL(),
		Credentials: map[string]CredentialConfig{
			"shop":       {Type: TypeOfficialAccount, AppID: wxtest.DefaultAppID, SecretEnv: "SHOP_SECRET"},
			"shop-jsapi": {Type: TypeJSAPITicket, Token: "shop"},
			"shop-card":  {Type: TypeWxCardTicket, Token: "shop"},
			"corp":       {Type: TypeWeCom, CorpID: wxtest.DefaultCorpID, SecretEnv: "CORP_SECRET"},
			"corp-jsapi": {Type: TypeWeComJSAPITicket, Token: "corp"},
			"corp-agent": {Type: TypeWeComAgentTicket, Token: "corp"},
		},
		Clients: map[string]ClientConfig{
			"billing": {KeyHash: HashKey(shopKey), Credentials: []string{"shop", "shop-jsapi", "shop-card"},
				RateLimit: RateLimitConfig{PerSecond: 1000, Burst: 1000}},
			"intranet": {KeyHash: HashKey(corpKey), Credentials: []string{"corp", "corp-jsapi", "corp-agent"}},
			"limited":  {KeyHash: HashKey(limitKey), Credentials: []string{"shop"}, RateLimit: RateLimitConfig{PerSecond: 0.001, Burst: 2}},
		},
	}
}

var testEnv = map[string]string{"SHOP_SECRET": wxtest.DefaultSecret, "CORP_SECRET": wxtest.DefaultCorpSecret}

// fixture is a running Server against a fake WeChat.
type fixture struct {
	wx    *wxtest.Server
	srv   *Server
	ts    *httptest.Server
	store wxtoken.Store
	logs  *logbuf.Buffer
}

// start runs the server of testConfig, changed by edit, on a MemoryStore.
func start(t testing.TB, edit func(*Config)) *fixture {
	t.Helper()
	return startOn(t, edit, wxtoken.NewMemoryStore())
}

// startOn is start on store.
func startOn(t testing.TB, edit func(*Config), store wxtoken.Store) *fixture {
	t.Helper()
	wx := wxtest.NewServer()
	t.Cleanup(wx.Close)
	cfg := testConfig(wx)
	if edit != nil {
		edit(&cfg)
	}
	require.NoError(t, cfg.Validate())
	secrets, err := cfg.ResolveSecrets(func(k string) string { return testEnv[k] })
	require.NoError(t, err)
	f := &fixture{wx: wx, store: store, logs: &logbuf.Buffer{}}
	f.srv, err = New(cfg, secrets, f.store, WithLogger(f.logs.Logger(slog.LevelInfo)))
	require.NoError(t, err)
	f.ts = httptest.NewServer(f.srv.Handler())
	t.Cleanup(func() {
		f.ts.Close()
		f.srv.Close()
	})
	return f
}

// answer is one response, read whole.
type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request with key as the bearer key ("" for none).
func (f *fixture) do(t testing.TB, method, path, key, body string) answer {
	t.Helper()
	a, err := f.try(method, path, key, body)
	require.NoError(t, err)
	return a
}

// try is do for goroutines other than the test's: it fails nothing.
func (f *fixture) try(method, path, key, body string) (answer, error) {
	req, err := http.NewRequest(method, f.ts.URL+path, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}, err
}

// decodeToken decodes a credential answer strictly.
func decodeToken(t *testing.T, a answer) tokenResponse {
	t.Helper()
	require.Equal(t, http.StatusOK, a.status, a.body)
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	var tr tokenResponse
	require.NoError(t, dec.Decode(&tr))
	return tr
}

// decodeError decodes an error answer strictly.
func decodeError(t *testing.T, a answer) errorResponse {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	var er errorResponse
	require.NoError(t, dec.Decode(&er), a.body)
	require.NotEmpty(t, er.Code)
	return er
}

// assertNoToken checks that no token or ticket the fake issued, and no
// secret or client key, appears in text.
func (f *fixture) assertNoToken(t *testing.T, text string, extra ...string) {
	t.Helper()
	for _, s := range append([]string{
		f.wx.CurrentToken(wxtest.DefaultAppID), f.wx.CurrentTicket(wxtest.DefaultAppID, "jsapi"),
		f.wx.CurrentWeComToken(wxtest.DefaultCorpID, wxtest.DefaultCorpSecret),
		wxtest.DefaultSecret, wxtest.DefaultCorpSecret, shopKey, corpKey, limitKey,
	}, extra...) {
		if s != "" {
			require.NotContains(t, text, s)
		}
	}
}
