package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/wxtest"
)

// keygen runs the built `wxtoken keygen` and returns the key and its hash.
func keygen(t *testing.T) (key, hash string) {
	t.Helper()
	out, err := exec.Command(builtBinary(t), "keygen").Output()
	require.NoError(t, err)
	m := regexp.MustCompile(`^key: (wxt_\S+)\nkey_hash: (sha256:[0-9a-f]{64})\n$`).FindStringSubmatch(string(out))
	require.NotNil(t, m, "keygen printed %q", out)
	return m[1], m[2]
}

// curl runs the real curl and returns the body and the HTTP status.
func curl(t *testing.T, args ...string) (body string, status string) {
	t.Helper()
	bin := requireTool(t, "curl")
	out, err := exec.Command(bin, append([]string{"-sS", "--max-time", "30", "-w", "\n%{http_code}"}, args...)...).Output()
	require.NoError(t, err, "curl %v", args)
	i := strings.LastIndexByte(string(out), '\n')
	return string(out[:i]), string(out[i+1:])
}

// tokenAnswer decodes {"access_token":..,"expires_in":..,"expires_at":..}.
func tokenAnswer(t *testing.T, body string) (token string, expiresIn int64) {
	t.Helper()
	var v struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		ExpiresAt   string `json:"expires_at"`
		Age         int64  `json:"age"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&v), body)
	_, err := time.Parse(time.RFC3339, v.ExpiresAt)
	require.NoError(t, err)
	return v.AccessToken, v.ExpiresIn
}

func TestServeProcessAnswersCurlAndPython(t *testing.T) {
	t.Parallel()
	wx := newServer(t)
	key, hash := keygen(t)
	otherKey, otherHash := keygen(t)
	p := startServe(t, serveConfig(wx.URL(), "store: {dir: "+t.TempDir()+"}", map[string][2]string{
		"billing": {hash, "shop, shop-jsapi"}, "intranet": {otherHash, "corp"},
	}), serveEnv...)
	url := p.url + "/v1/credentials/shop"

	body, status := curl(t, "-H", "Authorization: Bearer "+key, url)
	require.Equal(t, "200", status, body)
	tok, left := tokenAnswer(t, body)
	assert.Equal(t, wx.CurrentToken(appID), tok)
	assert.InDelta(t, 7200, left, 5)

	refusals := map[string][]string{
		"401": {url},
		"403": {"-H", "Authorization: Bearer " + otherKey, url},
		"404": {"-H", "Authorization: Bearer " + key, p.url + "/v1/nothing"},
	}
	for want, args := range refusals {
		body, status := curl(t, args...)
		assert.Equal(t, want, status, body)
		assert.NotContains(t, body, tok, "no token in a %s body", want)
		assert.Contains(t, body, `"code":`, want)
	}
	wrong, status := curl(t, "-H", "Authorization: Bearer "+key+"x", url)
	assert.Equal(t, "401", status)
	assert.NotContains(t, wrong, tok)

	python := requireTool(t, "python3")
	py := exec.Command(python, "-c", `import json, os, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["WXTOKEN_KEY"]})
with urllib.request.urlopen(req, timeout=30) as resp:
    print(json.load(resp)["access_token"])`, url)
	py.Env = []string{"WXTOKEN_KEY=" + key}
	out, err := py.Output()
	require.NoError(t, err)
	assert.Equal(t, tok+"\n", string(out), "a non-Go client gets the same token")

	// An old token reported rejected: the current one comes back, no fetch.
	body, status = curl(t, "-X", "POST", "-H", "Authorization: Bearer "+key, "-H", "Content-Type: application/json",
		"--data", `{"rejected":"a-token-the-server-has-long-replaced"}`, url+"/invalidate")
	require.Equal(t, "200", status, body)
	again, _ := tokenAnswer(t, body)
	assert.Equal(t, tok, again)
	assert.Equal(t, 1, wx.TokenCalls(), "one fetch for the whole test")

	p.terminate(t)
	require.NoError(t, p.wait(t), p.stderr.String())
	logs := p.stderr.String()
	assert.Contains(t, logs, "status=401")
	assert.Contains(t, logs, "status=403")
	assert.Contains(t, logs, "client=billing")
	for _, secretText := range []string{tok, key, otherKey, secret, "a-token-the-server-has-long-replaced"} {
		assert.NotContains(t, logs, secretText, "the access and error logs hold no token, key or secret")
	}
}

// getConcurrently has n goroutines GET url with key at once; it returns
// the tokens, or the first failure. It may run on any goroutine: it never
// fails the test itself.
func getConcurrently(n int, url, key string) ([]string, error) {
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer hc.CloseIdleConnections()
	tokens := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { tokens[i], errs[i] = getToken(hc, url, key) })
	}
	wg.Wait()
	return tokens, errors.Join(errs...)
}

// getToken GETs a credential and decodes its access_token.
func getToken(hc *http.Client, url, key string) (string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.AccessToken == "" {
		return "", fmt.Errorf("not a token answer: %s", b)
	}
	return v.AccessToken, nil
}

func TestServeTwoProcessesOnOneRedisFetchOnce(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	wx := newServer(t)
	key, hash := keygen(t)
	cfg := serveConfig(wx.URL(), "store: {redis: \"redis://"+redis.Addr()+"/0\"}", map[string][2]string{
		"billing": {hash, "shop"},
	})
	a, b := startServe(t, cfg, serveEnv...), startServe(t, cfg, serveEnv...)
	require.Zero(t, wx.TokenCalls(), "cold")

	var wg sync.WaitGroup
	var fromA, fromB []string
	var errA, errB error
	wg.Go(func() { fromA, errA = getConcurrently(100, a.url+"/v1/credentials/shop", key) })
	wg.Go(func() { fromB, errB = getConcurrently(100, b.url+"/v1/credentials/shop", key) })
	wg.Wait()
	require.NoError(t, errA)
	require.NoError(t, errB)
	assert.Equal(t, 1, wx.TokenCalls(), "two instances, 200 cold clients, one upstream fetch")
	for _, tok := range append(fromA, fromB...) {
		require.Equal(t, wx.CurrentToken(appID), tok)
	}
}

// inFlight reads wxtoken_http_requests_in_flight{route} from the server's
// /metrics.
func inFlight(t *testing.T, base, route string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^wxtoken_http_requests_in_flight\{route="` + route + `"\} (\d+)$`).FindSubmatch(b)
	require.NotNil(t, m, "no in-flight gauge in\n%s", b)
	var n int
	for _, c := range m[1] {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestServeSIGTERMFinishesTheRequestsInFlight(t *testing.T) {
	t.Parallel()
	const n = 200
	wx := newServer(t)
	hold := wx.Hold(wxtest.PathToken) // the one fetch waits inside the fake until released
	defer hold.Release()
	key, hash := keygen(t)
	// The held fetch must outlast 200 requests and the polling on a busy
	// machine: every timeout it runs under is minutes, not seconds.
	config := strings.Replace(serveConfig(wx.URL(), "store: {dir: "+t.TempDir()+"}", map[string][2]string{
		"billing": {hash, "shop"},
	}), "timeouts: {shutdown: 50s}", "timeouts: {request: 5m, upstream: 5m, write: 6m, shutdown: 7m}", 1)
	require.Contains(t, config, "upstream: 5m")
	p := startServe(t, config, serveEnv...)

	var tokens []string
	var failed error
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		tokens, failed = getConcurrently(n, p.url+"/v1/credentials/shop", key)
	}()
	select {
	case <-hold.Waiting():
	case <-time.After(time.Minute):
		t.Fatal("the server never fetched")
	}
	waitFor(t, time.Minute, "200 requests in flight", func() bool { return inFlight(t, p.url, "credential") == n })

	p.terminate(t)
	waitFor(t, time.Minute, "the shutdown to begin", func() bool {
		return strings.Contains(p.stderr.String(), "shutting down")
	})
	select {
	case <-p.done:
		t.Fatalf("the server exited with requests in flight; stderr:\n%s", p.stderr)
	default:
	}
	hold.Release()
	<-answered
	require.NoError(t, failed, "every request in flight was answered")
	require.Len(t, tokens, n)
	for _, tok := range tokens {
		require.Equal(t, wx.CurrentToken(appID), tok, "every request in flight was answered 200 with the token")
	}
	require.NoError(t, p.wait(t), "exit status 0 after a graceful shutdown; stderr:\n%s", p.stderr)
	assert.Equal(t, 1, wx.TokenCalls())
	assert.Contains(t, p.stderr.String(), "stopped")
}
