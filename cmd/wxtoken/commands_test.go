package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/wxtest"
)

func TestGetRefusesToFetchWithNowhereToKeepTheToken(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	srv := newServer(t)
	r := runArgs(credentials, "get", "--base-url", srv.URL())
	assert.Equal(t, exitUsage, r.code)
	assert.Empty(t, r.stdout)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	require.Len(t, lines, 2, r.stderr)
	assert.True(t, strings.HasPrefix(lines[0], "wxtoken: nowhere to keep the token: no cache folder"), lines[0])
	assert.Equal(t, "hint: give --store-dir DIR (the folder the account's services use), --redis URL (the fleet's Redis), "+
		"or --no-store to fetch anyway: a token fetched and not kept supersedes the one other processes use", lines[1])
	assert.Zero(t, srv.TokenCalls())

	ok := runArgs(credentials, "get", "--base-url", srv.URL(), "--no-store", "--json")
	require.Equal(t, exitOK, ok.code, ok.stderr)
	var out tokenJSON
	require.NoError(t, json.Unmarshal([]byte(ok.stdout), &out))
	assert.Equal(t, "wechat", out.Source)
	assert.Equal(t, 1, srv.TokenCalls())
}

func TestGetStoreFlagsExcludeEachOther(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	r := runArgs(credentials, getArgs(srv, t.TempDir(), "--no-store")...)
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "give one of --store-dir, --redis and --no-store")
	assert.Zero(t, srv.TokenCalls())
}

func TestGetJSONSaysWhereTheTokenCameFrom(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	var outs []tokenJSON
	for range 2 {
		r := runArgs(credentials, getArgs(srv, dir, "--json")...)
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Empty(t, r.stderr)
		var out tokenJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
		outs = append(outs, out)
	}
	assert.Equal(t, "wechat", outs[0].Source)
	assert.Equal(t, "cache", outs[1].Source)
	assert.Equal(t, srv.CurrentToken(appID), outs[1].AccessToken)
	assert.Equal(t, outs[0].ExpiresAt, outs[1].ExpiresAt)
	assert.InDelta(t, 7200, outs[1].ExpiresIn, 3)
	assert.Equal(t, 1, srv.TokenCalls())
}

func TestGetFreshChecksTheSavedToken(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	first := runArgs(credentials, getArgs(srv, dir)...)
	require.Equal(t, exitOK, first.code, first.stderr)

	works := runArgs(credentials, getArgs(srv, dir, "--fresh")...)
	require.Equal(t, exitOK, works.code, works.stderr)
	assert.Equal(t, first.stdout, works.stdout)
	assert.Equal(t, "wxtoken: --fresh: the saved token works (checked with getcallbackip)\n", works.stderr)
	assert.Equal(t, 1, srv.TokenCalls())

	// A cached token hides its revocation from a plain get; --fresh does not.
	srv.RevokeToken(strings.TrimSpace(first.stdout))
	stale := runArgs(credentials, getArgs(srv, dir)...)
	assert.Equal(t, first.stdout, stale.stdout)
	fresh := runArgs(credentials, getArgs(srv, dir, "--fresh")...)
	require.Equal(t, exitOK, fresh.code, fresh.stderr)
	assert.Equal(t, srv.CurrentToken(appID)+"\n", fresh.stdout)
	assert.NotEqual(t, first.stdout, fresh.stdout)
	assert.Contains(t, fresh.stderr, "wxtoken: --fresh: WeChat rejected the saved token (errcode 40001); replacing it")
	assert.Equal(t, 2, srv.TokenCalls())
	assert.Equal(t, srv.CurrentToken(appID), readTokenFile(t, filepath.Join(dir, appID+".json")).AccessToken)
	assertNoSecret(t, fresh, secret)

	again := runArgs(credentials, getArgs(srv, t.TempDir(), "--fresh")...)
	require.Equal(t, exitOK, again.code, again.stderr)
	assert.Equal(t, "wxtoken: --fresh: fetched from WeChat in this run\n", again.stderr)
}

// An errcode that says nothing about the token (WeChat busy) does not make
// --fresh replace the token every other process uses.
func TestGetFreshKeepsTheTokenWhenWeChatIsBusy(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	first := runArgs(credentials, getArgs(srv, dir)...)
	require.Equal(t, exitOK, first.code, first.stderr)
	srv.Inject(wxtest.FaultErrcode(-1, "system error").On(wxtest.PathCallbackIP))
	busy := runArgs(credentials, getArgs(srv, dir, "--fresh")...)
	assert.Equal(t, exitError, busy.code)
	assert.Contains(t, busy.stderr, "could not try the saved token: getcallbackip answered errcode -1")
	assert.Equal(t, 1, srv.TokenCalls(), "no token fetched")
	assert.Equal(t, strings.TrimSpace(first.stdout), readTokenFile(t, filepath.Join(dir, appID+".json")).AccessToken)
}

func checkArgs(srv *wxtest.Server, dir string, more ...string) []string {
	return append([]string{"check", "--base-url", srv.URL(), "--store-dir", dir}, more...)
}

func TestCheckFindsARotatedSecretACachedTokenHides(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	first := runArgs(credentials, getArgs(srv, dir)...)
	require.Equal(t, exitOK, first.code, first.stderr)

	ok := runArgs(credentials, checkArgs(srv, dir)...)
	require.Equal(t, exitOK, ok.code, ok.stderr)
	lines := strings.Split(strings.TrimSuffix(ok.stdout, "\n"), "\n")
	require.Len(t, lines, 2, ok.stdout)
	assert.Equal(t, "credentials: ok: "+appID+" at "+srv.URL()+" accepted the appid and AppSecret "+
		"(stable_token in normal mode, which replaces no token)", lines[0])
	assert.Regexp(t, `^saved token: works \(getcallbackip\), (2h0m0s|1h59m5\ds) left, in file `, lines[1])

	// The secret is reset in the console: get still prints the saved token.
	rotated := "99887766554433221100ffeeddccbbaa"
	srv.SetApp(appID, rotated)
	stale := runArgs(credentials, getArgs(srv, dir)...)
	assert.Equal(t, exitOK, stale.code)
	bad := runArgs(credentials, checkArgs(srv, dir)...)
	assert.Equal(t, exitError, bad.code)
	assert.Empty(t, bad.stdout)
	assert.Contains(t, bad.stderr, "wxtoken: check: WeChat refused the credentials of "+appID+" at "+srv.URL()+": ")
	assert.Contains(t, bad.stderr, "errcode 40001")
	assert.Contains(t, bad.stderr, "hint: check the AppSecret")
	assertNoSecret(t, bad, secret)
	assertNoSecret(t, bad, rotated)

	assert.Equal(t, 1, srv.TokenCalls(), "check never calls /cgi-bin/token")
	assert.Equal(t, 0, srv.CheckToken(strings.TrimSpace(first.stdout)), "the shared token still works")
	assert.Zero(t, srv.ForceRefreshCalls())
}

func TestCheckReportsARejectedSavedToken(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	first := runArgs(credentials, getArgs(srv, dir)...)
	require.Equal(t, exitOK, first.code, first.stderr)
	srv.RevokeToken(strings.TrimSpace(first.stdout))
	r := runArgs(credentials, checkArgs(srv, dir)...)
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stdout, "saved token: rejected by WeChat (errcode 40001); 'wxtoken get --fresh' replaces it\n")

	empty := runArgs(credentials, checkArgs(srv, t.TempDir())...)
	assert.Equal(t, exitOK, empty.code, empty.stderr)
	assert.Contains(t, empty.stdout, "saved token: none under "+appID+" in file ")
	assert.Equal(t, 1, srv.TokenCalls())
}

func TestQuotaPrintsTheTokenEndpointsQuota(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	r := runArgs(credentials, "quota", "--base-url", srv.URL(), "--store-dir", dir)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Regexp(t, `^/cgi-bin/token: 1 of 2000 used today, 1999 left; resets \S+ \(midnight Beijing time\)\n$`, r.stdout)

	j := runArgs(credentials, "quota", "--base-url", srv.URL(), "--store-dir", dir, "--json",
		wxtest.PathToken, wxtest.PathStableToken)
	require.Equal(t, exitOK, j.code, j.stderr)
	lines := strings.Split(strings.TrimSuffix(j.stdout, "\n"), "\n")
	require.Len(t, lines, 2)
	var q quotaJSON
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &q))
	assert.Equal(t, wxtest.PathStableToken, q.CGIPath)
	assert.Equal(t, wxtest.DefaultStableDailyQuota, q.DailyLimit)
	assert.Equal(t, 1, srv.TokenCalls(), "the second run reused the saved token")

	bad := runArgs(credentials, "quota", "--base-url", srv.URL(), "--store-dir", dir, secret)
	assert.Equal(t, exitUsage, bad.code)
	assertNoSecret(t, bad, secret)
}

func clearArgs(srv *wxtest.Server, more ...string) []string {
	return append([]string{"clear-quota", "--base-url", srv.URL()}, more...)
}

func TestClearQuotaAsksFirst(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	no := runCLI(cli{stdin: strings.NewReader("no\n")}, credentials, clearArgs(srv)...)
	assert.Equal(t, exitError, no.code)
	assert.Contains(t, no.stderr, "WeChat allows 10 resets a month")
	assert.Contains(t, no.stderr, "wxtoken: clear-quota: not confirmed; nothing was sent")
	assert.Zero(t, srv.QuotaCalls())

	yes := runCLI(cli{stdin: strings.NewReader("yes\n")}, credentials, clearArgs(srv)...)
	require.Equal(t, exitOK, yes.code, yes.stderr)
	assert.Equal(t, "cleared: the daily quotas of "+appID+" are reset (clear_quota/v2; 10 resets a month)\n", yes.stdout)
	assert.Equal(t, wxtest.DefaultClearQuotaMonthly-1, srv.ClearQuotaLeft(appID))
	assert.Zero(t, srv.TokenCalls(), "no token is needed")

	stdin := runCLI(cli{stdin: strings.NewReader(secret)}, map[string]string{"WECHAT_APPID": appID},
		clearArgs(srv, "--secret-stdin")...)
	assert.Equal(t, exitUsage, stdin.code)
	assert.Contains(t, stdin.stderr, "pass --yes")
}

func TestClearQuotaAfter45009AndWhenSpent(t *testing.T) {
	t.Parallel()
	srv := newServer(t, wxtest.WithDailyQuota(1))
	dir := t.TempDir()
	require.Equal(t, exitOK, runArgs(credentials, getArgs(srv, dir)...).code)
	spent := runArgs(credentials, getArgs(srv, t.TempDir())...)
	assert.Equal(t, exitError, spent.code)
	assert.Contains(t, spent.stderr, "errcode 45009")
	assert.Contains(t, spent.stderr, "'wxtoken clear-quota' resets it now")

	for range wxtest.DefaultClearQuotaMonthly {
		r := runArgs(credentials, clearArgs(srv, "--yes")...)
		require.Equal(t, exitOK, r.code, r.stderr)
	}
	over := runArgs(credentials, clearArgs(srv, "--yes")...)
	assert.Equal(t, exitError, over.code)
	assert.Contains(t, over.stderr, "errcode 48006")
	assert.Contains(t, over.stderr, "hint: this month's 10 quota resets are spent")
	assertNoSecret(t, over, secret)

	wrong := runArgs(map[string]string{"WECHAT_APPID": appID, "WECHAT_APPSECRET": "ffeeddccbbaa99887766554433221100"},
		clearArgs(srv, "--yes", "--verbose")...)
	assert.Equal(t, exitError, wrong.code)
	assert.Contains(t, wrong.stderr, "errcode 40001")
	assertNoSecret(t, wrong, "ffeeddccbbaa99887766554433221100")
}

func TestNewCommandsHelp(t *testing.T) {
	t.Parallel()
	r := runArgs(nil, "help")
	for _, want := range []string{"wxtoken check", "wxtoken quota", "wxtoken clear-quota", "--redis", "--no-store",
		"--store-key", "--fresh", "--json", "--yes"} {
		assert.Contains(t, r.stdout, want)
	}
}
