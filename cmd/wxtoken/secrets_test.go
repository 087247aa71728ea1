package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// assertNoSpelling fails if the run printed secret as it is, query-escaped
// or JSON-escaped.
func assertNoSpelling(t *testing.T, r result, secret string) {
	t.Helper()
	j, _ := json.Marshal(secret)
	for _, s := range []string{secret, url.QueryEscape(secret), strings.Trim(string(j), `"`)} {
		assert.NotContains(t, r.stdout+r.stderr, s)
	}
}

func TestArgumentMistakesNeverEchoTheSecret(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	cases := map[string]struct {
		args []string
		want string // the first line of stderr
	}{
		"secret flag before the command": {[]string{"--secret=" + secret, "get"},
			"wxtoken: unknown command (not repeated here: it may hold a secret); the commands are get, check, quota, clear-quota, serve, keygen, demo, version and help"},
		"secret as the command":   {[]string{secret}, ""},
		"secret as a duration":    {[]string{"get", "--timeout", secret}, "wxtoken: get: invalid value for --timeout (a duration such as 10s or 1m)"},
		"secret given to a bool":  {[]string{"get", "--stable=" + secret}, "wxtoken: get: invalid value for --stable"},
		"secret as a flag name":   {[]string{"get", "--" + secret}, "wxtoken: get: an unknown flag (not repeated here: it may hold a secret)"},
		"secret in a typo'd flag": {[]string{"get", "--secert=" + secret}, "wxtoken: get: unknown flag --secert"},
		"bad flag syntax":         {[]string{"get", "---secret=" + secret}, "wxtoken: get: a malformed flag (not repeated here: it may hold a secret)"},
		"secret as an argument":   {[]string{"get", "--appid", appID, secret}, ""},
		"demo given the secret":   {[]string{"demo", "--verbose=" + secret}, "wxtoken: demo: invalid value for --verbose"},
		"flag without its value":  {[]string{"get", "--secret"}, "wxtoken: get: --secret needs a value"},
	}
	for name, tc := range cases {
		args := tc.args
		if args[0] == "get" {
			args = append(getArgs(srv, t.TempDir()), args[1:]...)
		}
		r := runArgs(credentials, args...)
		assert.Equal(t, exitUsage, r.code, name)
		assert.Empty(t, r.stdout, name)
		assertNoSpelling(t, r, secret)
		if tc.want != "" {
			assert.Equal(t, tc.want, strings.SplitN(r.stderr, "\n", 2)[0], name)
		}
	}
	assert.Zero(t, srv.TokenCalls())
}

func TestGetReadsTheSecretFromAFileOrStdin(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	file := filepath.Join(t.TempDir(), "appsecret")
	require.NoError(t, os.WriteFile(file, []byte(secret+"\n"), 0o600))
	env := map[string]string{"WECHAT_APPID": appID, "WECHAT_APPSECRET": "wrong-one-in-the-environment"}

	r := runArgs(env, getArgs(srv, t.TempDir(), "--secret-file", file)...)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Equal(t, srv.CurrentToken(appID)+"\n", r.stdout)

	var stdout, stderr bytes.Buffer
	c := &cli{stdin: strings.NewReader(secret + "\r\n"), stdout: &stdout, stderr: &stderr,
		getenv: func(k string) string { return env[k] }}
	code := c.run(getArgs(srv, t.TempDir(), "--secret-stdin"))
	require.Equal(t, exitOK, code, stderr.String())
	assert.Equal(t, srv.CurrentToken(appID)+"\n", stdout.String())
}

func TestGetSecretSourceMistakes(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	missing := filepath.Join(dir, secret) // a secret given where the path goes
	cases := map[string]struct {
		args []string
		want string
	}{
		"two sources":  {[]string{"--secret-file", empty, "--secret", secret}, "wxtoken: get: give the AppSecret one way only: --secret-file, --secret-stdin or --secret"},
		"missing file": {[]string{"--secret-file", missing}, "wxtoken: get: --secret-file: cannot open the file: no such file or directory"},
		"empty file":   {[]string{"--secret-file", empty}, "wxtoken: get: the --secret-file file is empty"},
		"empty stdin":  {[]string{"--secret-stdin"}, "wxtoken: get: standard input is empty"},
	}
	for name, tc := range cases {
		r := runArgs(credentials, getArgs(srv, t.TempDir(), tc.args...)...)
		assert.Equal(t, exitUsage, r.code, name)
		assert.Equal(t, tc.want, strings.SplitN(r.stderr, "\n", 2)[0], name)
		assertNoSpelling(t, r, secret)
	}
	assert.Zero(t, srv.TokenCalls())
}

// quotingWeChat answers every token request with body.
func quotingWeChat(t *testing.T, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestGetVerboseShowsNoSecretQuotedByUpstream(t *testing.T) {
	t.Parallel()
	const odd = `odd-s3cr3t<"/+=&>`
	j, _ := json.Marshal(odd)
	for _, quote := range []string{odd, url.QueryEscape(odd), strings.Trim(string(j), `"`)} {
		body, err := json.Marshal(map[string]any{"errcode": 40013, "errmsg": "invalid appid for secret=" + quote})
		require.NoError(t, err)
		srv := quotingWeChat(t, string(body))
		r := runArgs(map[string]string{"WECHAT_APPID": appID, "WECHAT_APPSECRET": odd},
			"get", "--verbose", "--base-url", srv.URL, "--store-dir", t.TempDir())
		assert.Equal(t, exitError, r.code)
		assert.Contains(t, r.stderr, "errcode 40013")
		assert.Contains(t, r.stderr, "secret=REDACTED")
		assertNoSpelling(t, r, odd)
	}
}

func TestGetRefusesATokenWithControlCharacters(t *testing.T) {
	t.Parallel()
	for _, tok := range []string{`T0KQ\u001b[2Jxyz`, `T0KQ\nxyz`, `T0KQ\u0007`} {
		srv := quotingWeChat(t, `{"access_token":"`+tok+`","expires_in":7200}`)
		r := runArgs(credentials, "get", "--base-url", srv.URL, "--store-dir", t.TempDir(), "--timeout", "1s")
		assert.Equal(t, exitError, r.code, tok)
		assert.Empty(t, r.stdout, tok)
		assert.Contains(t, r.stderr, "malformed token response", tok)
		assert.NotContains(t, r.stderr, "T0KQ", tok)
		assert.False(t, strings.ContainsAny(r.stderr, "\x1b\x07"), tok)
	}
}

// A secret typed after --appid has an appid's alphabet and passes the
// library's check; check and clear-quota must not print it back.
func TestASecretGivenAsTheAppIDIsNotEchoed(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	misplaced := "abababababababababababababababab" // 32 hex digits, like an AppSecret
	for _, args := range [][]string{
		{"check", "--base-url", srv.URL(), "--store-dir", t.TempDir(), "--appid", misplaced},
		{"clear-quota", "--base-url", srv.URL(), "--appid", misplaced, "--yes"},
	} {
		r := runArgs(map[string]string{"WECHAT_APPSECRET": secret}, args...)
		assert.NotEqual(t, exitOK, r.code, args[0])
		assert.NotContains(t, r.stdout+r.stderr, misplaced, args[0])
	}
}
