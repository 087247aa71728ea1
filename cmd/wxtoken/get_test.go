package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

const (
	appID  = wxtest.DefaultAppID
	secret = wxtest.DefaultSecret
)

// getArgs returns the arguments of a get against srv keeping its file in dir.
func getArgs(srv *wxtest.Server, dir string, more ...string) []string {
	return append([]string{"get", "--base-url", srv.URL(), "--store-dir", dir}, more...)
}

// credentials is the environment naming the fake's default account.
var credentials = map[string]string{"WECHAT_APPID": appID, "WECHAT_APPSECRET": secret}

func newServer(t *testing.T, opts ...wxtest.Option) *wxtest.Server {
	t.Helper()
	srv := wxtest.NewServer(opts...)
	t.Cleanup(srv.Close)
	return srv
}

func TestGetPrintsOnlyTheToken(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	r := runArgs(nil, getArgs(srv, t.TempDir(), "--appid", appID, "--secret", secret)...)

	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, srv.CurrentToken(appID)+"\n", r.stdout)
	assert.Empty(t, r.stderr)
	assert.Equal(t, 1, srv.TokenCalls())
	assert.Equal(t, 0, srv.StableCalls())
}

func TestGetSecondRunReusesTheFile(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	first := runArgs(credentials, getArgs(srv, dir)...)
	require.Equal(t, exitOK, first.code, first.stderr)

	second := runArgs(credentials, getArgs(srv, dir)...)
	require.Equal(t, exitOK, second.code, second.stderr)
	assert.Equal(t, first.stdout, second.stdout)
	assert.Equal(t, 1, srv.TokenCalls(), "the second run must not fetch")

	saved := readTokenFile(t, filepath.Join(dir, appID+".json"))
	assert.Equal(t, strings.TrimSuffix(first.stdout, "\n"), saved.AccessToken)
}

func TestGetUsesTheLibraryDefaultStore(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache) // where os.UserCacheDir looks first on Linux
	srv := newServer(t)
	args := []string{"get", "--base-url", srv.URL()}

	first := runArgs(credentials, args...)
	require.Equal(t, exitOK, first.code, first.stderr)
	second := runArgs(credentials, args...)
	require.Equal(t, exitOK, second.code, second.stderr)

	assert.Equal(t, first.stdout, second.stdout)
	assert.Equal(t, 1, srv.TokenCalls())
	file := filepath.Join(cache, "wxtoken", appID+".json")
	assert.Equal(t, strings.TrimSuffix(first.stdout, "\n"), readTokenFile(t, file).AccessToken)
	info, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func TestGetTakesCredentialsFromTheEnvironment(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	r := runArgs(credentials, getArgs(srv, t.TempDir())...)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, srv.CurrentToken(appID)+"\n", r.stdout)
}

func TestGetFlagsWinOverTheEnvironment(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	env := map[string]string{"WECHAT_APPID": "wx1111111111111111", "WECHAT_APPSECRET": "wrong"}
	r := runArgs(env, getArgs(srv, t.TempDir(), "--appid", appID, "--secret", secret)...)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, srv.CurrentToken(appID)+"\n", r.stdout)
}

func TestGetStableUsesTheStableEndpoint(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	r := runArgs(credentials, getArgs(srv, dir, "--stable")...)

	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, srv.CurrentStableToken(appID)+"\n", r.stdout)
	assert.Equal(t, 1, srv.StableCalls())
	assert.Equal(t, 0, srv.TokenCalls())
	assert.Equal(t, 0, srv.ForceRefreshCalls())
	assert.FileExists(t, filepath.Join(dir, appID+".stable.json"))
}

func TestGetFailuresGiveTheErrcodeAndAHint(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		opts     []wxtest.Option
		fault    *wxtest.Fault
		env      map[string]string
		errcode  string
		hintWord string
	}{
		{name: "wrong secret 40001", env: map[string]string{"WECHAT_APPID": appID, "WECHAT_APPSECRET": "0123456789abcdef0123456789abcdef"},
			errcode: "errcode 40001", hintWord: "AppSecret"},
		{name: "wrong secret 40125", opts: []wxtest.Option{wxtest.WithSecretErrcode(wxtest.CodeInvalidSecret)},
			env:     map[string]string{"WECHAT_APPID": appID, "WECHAT_APPSECRET": "0123456789abcdef0123456789abcdef"},
			errcode: "errcode 40125", hintWord: "AppSecret"},
		{name: "unknown appid", env: map[string]string{"WECHAT_APPID": "wx1111111111111111", "WECHAT_APPSECRET": secret},
			errcode: "errcode 40013", hintWord: "appid"},
		{name: "IP not whitelisted", env: credentials,
			fault:   ptr(wxtest.FaultErrcode(wxtoken.CodeIPNotWhitelisted, "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist")),
			errcode: "errcode 40164", hintWord: "whitelist"},
		{name: "daily quota", env: credentials, fault: ptr(wxtest.FaultErrcode(wxtoken.CodeDailyQuota, "")),
			errcode: "errcode 45009", hintWord: "--store-dir"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tc.opts...)
			if tc.fault != nil {
				srv.Inject(*tc.fault)
			}
			r := runArgs(tc.env, getArgs(srv, t.TempDir())...)

			assert.Equal(t, exitError, r.code)
			assert.Empty(t, r.stdout)
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			require.Len(t, lines, 2, "one line for the error, one for the hint:\n%s", r.stderr)
			assert.True(t, strings.HasPrefix(lines[0], "wxtoken: "), lines[0])
			assert.Contains(t, lines[0], tc.errcode)
			assert.True(t, strings.HasPrefix(lines[1], "hint: "), lines[1])
			assert.Contains(t, lines[1], tc.hintWord)
			assertNoSecret(t, r, tc.env["WECHAT_APPSECRET"])
			assert.Equal(t, 1, srv.TokenCalls(), "a permanent failure is not retried")
		})
	}
}

func TestGetNeverPrintsTheSecretEvenVerbose(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	wrong := "fedcba9876543210fedcba9876543210"
	r := runArgs(nil, getArgs(srv, t.TempDir(), "--verbose", "--appid", appID, "--secret", wrong)...)
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "errcode 40001")
	assertNoSecret(t, r, wrong)

	ok := runArgs(nil, getArgs(srv, t.TempDir(), "--verbose", "--appid", appID, "--secret", secret)...)
	require.Equal(t, exitOK, ok.code, ok.stderr)
	assert.Contains(t, ok.stderr, "fetched a new token", "--verbose shows the library's log")
	assertNoSecret(t, ok, secret)
	assert.NotContains(t, ok.stderr, srv.CurrentToken(appID), "logs name tokens by fingerprint only")
}

func TestGetMissingCredentialsIsAUsageError(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	noAppID := runArgs(map[string]string{"WECHAT_APPSECRET": secret}, getArgs(srv, t.TempDir())...)
	assert.Equal(t, exitUsage, noAppID.code)
	assert.Empty(t, noAppID.stdout)
	assert.Equal(t, "wxtoken: get: no appid: set WECHAT_APPID or pass --appid\n"+
		"Run 'wxtoken help' for usage.\n", noAppID.stderr)

	noSecret := runArgs(map[string]string{"WECHAT_APPID": appID}, getArgs(srv, t.TempDir())...)
	assert.Equal(t, exitUsage, noSecret.code)
	assert.Contains(t, noSecret.stderr, "WECHAT_APPSECRET")
	assert.Contains(t, noSecret.stderr, "Run 'wxtoken help'")
	assert.Zero(t, srv.TokenCalls())
}

func TestGetBadCommandLinesAreUsageErrors(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	cases := map[string][]string{
		"unknown flag":      {"--apid", appID},
		"stray argument":    {secret}, // such as the secret where a flag was meant
		"zero timeout":      {"--timeout", "0s"},
		"bad timeout":       {"--timeout", "soon"},
		"not an http URL":   {"--base-url", "ftp://example.com"},
		"appid of bad form": {"--appid", "wx 1234"},
	}
	for name, extra := range cases {
		r := runArgs(credentials, getArgs(srv, t.TempDir(), extra...)...)
		assert.Equal(t, exitUsage, r.code, name)
		assert.Empty(t, r.stdout, name)
		assert.True(t, strings.HasPrefix(r.stderr, "wxtoken: "), "%s: %s", name, r.stderr)
		assertNoSecret(t, r, secret)
	}
	assert.Zero(t, srv.TokenCalls())
}

func TestGetRenewsATokenCloseToExpiry(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	first := runArgs(credentials, getArgs(srv, dir)...)
	require.Equal(t, exitOK, first.code, first.stderr)

	// Make the saved token look 100 s from expiry.
	file := filepath.Join(dir, appID+".json")
	tok := readTokenFile(t, file)
	tok.CreateTime = time.Now().Add(-time.Duration(tok.ExpiresIn)*time.Second + 100*time.Second)
	data, err := json.Marshal(tok)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, data, 0o600))

	second := runArgs(credentials, getArgs(srv, dir)...)
	require.Equal(t, exitOK, second.code, second.stderr)
	assert.Equal(t, 2, srv.TokenCalls())
	assert.NotEqual(t, first.stdout, second.stdout)
	assert.Equal(t, srv.CurrentToken(appID)+"\n", second.stdout)
	assert.Equal(t, srv.CurrentToken(appID), readTokenFile(t, file).AccessToken)
	assert.Empty(t, second.stderr)
}

func TestGetRetriesAPassingFailure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		srv.Inject(wxtest.FaultErrcode(wxtoken.CodeSystemBusy, ""))
		r := runCLI(cli{httpClient: srv.Client()}, credentials, getArgs(srv, t.TempDir())...)

		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Equal(t, srv.CurrentToken(appID)+"\n", r.stdout)
		assert.Equal(t, 2, srv.TokenCalls())
		assert.Contains(t, r.stderr, "errcode -1", "the retried failure is logged as a warning")
		assertNoSecret(t, r, secret)
	})
}

func TestGetGivesUpAtTheTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		srv.InjectN(1000, wxtest.FaultStatus(502, ""))
		start := time.Now()
		r := runCLI(cli{httpClient: srv.Client()}, credentials, getArgs(srv, t.TempDir(), "--timeout", "20s")...)

		assert.Equal(t, 20*time.Second, time.Since(start))
		assert.Equal(t, exitError, r.code)
		assert.Empty(t, r.stdout)
		assert.Contains(t, r.stderr, "wxtoken: no token within 20s (--timeout); last failure: wxtoken: token endpoint answered HTTP 502")
		assert.Contains(t, r.stderr, "hint: WeChat answers its own errors with HTTP 200")
		assert.Greater(t, srv.TokenCalls(), 2, "retried")
		assert.Less(t, srv.TokenCalls(), 10, "with backoff")
	})
}

func TestHintNamesTheFixForCommonCodes(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]string{
		40001: "AppSecret", 40125: "AppSecret", 40013: "appid", 40164: "whitelist", 40243: "frozen", 45009: "quota",
	} {
		assert.Contains(t, hint(&wxtoken.APIError{Code: code}), want, code)
	}
	assert.Empty(t, hint(&wxtoken.APIError{Code: 40002}))
}

func readTokenFile(t *testing.T, path string) wxtoken.Token {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var tok wxtoken.Token
	require.NoError(t, json.Unmarshal(data, &tok))
	return tok
}

func assertNoSecret(t *testing.T, r result, secret string) {
	t.Helper()
	assert.NotContains(t, r.stdout, secret, "stdout holds the secret")
	assert.NotContains(t, r.stderr, secret, "stderr holds the secret")
}

func ptr[T any](v T) *T { return &v }
