package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testAppID  = "wx0123456789abcdef"
	testSecret = "s3cr3t-APP-secret/+=value"
	tokenURL   = "https://api.weixin.qq.com/cgi-bin/token"
)

// upstream is an httpmock transport standing in for WeChat's token endpoint.
type upstream struct {
	*httpmock.MockTransport
}

func newUpstream(t *testing.T, r httpmock.Responder) upstream {
	t.Helper()
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, tokenURL, r)
	return upstream{mt}
}

// tokens answers with token-1, token-2, ... and checks the query on the way.
func tokens(t *testing.T) httpmock.Responder {
	var mu sync.Mutex
	n := 0
	return func(req *http.Request) (*http.Response, error) {
		q := req.URL.Query()
		assert.Equal(t, "client_credential", q.Get("grant_type"))
		assert.Equal(t, testAppID, q.Get("appid"))
		assert.Equal(t, testSecret, q.Get("secret"))
		mu.Lock()
		n++
		body := fmt.Sprintf(`{"access_token":"token-%d","expires_in":7200}`, n)
		mu.Unlock()
		return httpmock.NewStringResponse(http.StatusOK, body), nil
	}
}

func body(s string) httpmock.Responder {
	return httpmock.NewStringResponder(http.StatusOK, s)
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestClient(t *testing.T, up upstream, opts ...Option) *Client {
	t.Helper()
	base := []Option{
		WithHTTPClient(&http.Client{Transport: up}),
		WithStore(NewMemoryStore()),
		WithLogger(quietLogger()),
	}
	c, err := New(testAppID, testSecret, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewRejectsBadArguments(t *testing.T) {
	cases := []struct {
		appID, secret string
		opts          []Option
		want          string
	}{
		{"", testSecret, nil, "empty appID"},
		{testAppID, "", nil, "empty app secret"},
		{"wx/../x", testSecret, nil, "characters outside"},
		{testAppID, "a b", nil, "spaces or control"},
		{testAppID, testSecret, []Option{WithBaseURL("ftp://x")}, "not an http(s) URL"},
		{testAppID, testSecret, []Option{WithRefreshBefore(-time.Second)}, "negative refresh margin"},
		{testAppID, testSecret, []Option{WithFetchTimeout(0)}, "fetch timeout"},
	}
	for _, tc := range cases {
		c, err := New(tc.appID, tc.secret, tc.opts...)
		require.Error(t, err)
		assert.Nil(t, c)
		assert.Contains(t, err.Error(), tc.want)
		if tc.secret != "" {
			assert.NotContains(t, err.Error(), tc.secret)
		}
	}
}

func TestColdHerdMakesOneFetch(t *testing.T) {
	up := newUpstream(t, tokens(t))
	c := newTestClient(t, up)
	const callers = 1000
	got := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			tok, err := c.Get(context.Background())
			assert.NoError(t, err)
			got[i] = tok
		})
	}
	wg.Wait()
	assert.Equal(t, 1, up.GetTotalCallCount())
	for _, tok := range got {
		require.Equal(t, "token-1", tok)
	}
	assert.Equal(t, int64(1), c.Stats().Fetches)
}

func TestSecondClientReusesFileStore(t *testing.T) {
	dir := t.TempDir()
	up := newUpstream(t, tokens(t))
	fs1, err := NewFileStore(dir)
	require.NoError(t, err)
	first := newTestClient(t, up, WithStore(fs1))
	tok, err := first.Get(context.Background())
	require.NoError(t, err)
	require.NoError(t, first.Close())

	fs2, err := NewFileStore(dir)
	require.NoError(t, err)
	second := newTestClient(t, up, WithStore(fs2))
	again, err := second.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, tok, again)
	assert.Equal(t, 1, up.GetTotalCallCount(), "the restarted client must not fetch")
	assert.Equal(t, Stats{StoreLoads: 1, Waits: 1}, second.Stats())
}

func TestNodeRecipeFileIsReused(t *testing.T) {
	dir := t.TempDir()
	created := time.Now().Add(-10 * time.Minute).UTC().Format("2006-01-02T15:04:05.000Z")
	node := `{"createTime":"` + created + `","access_token":"from-node","expires_in":7200}`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "access_token.json"), []byte(node), 0o600))
	fs, err := NewFileStore(dir)
	require.NoError(t, err)
	up := newUpstream(t, tokens(t))
	c := newTestClient(t, up, WithStore(fs), WithStoreKey("access_token"))

	tok, err := c.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "from-node", tok.AccessToken)
	assert.Equal(t, int64(7200), tok.ExpiresIn)
	assert.Equal(t, 0, up.GetTotalCallCount())
}

func TestCorruptFileLeadsToOneFetchAndAGoodFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, testAppID+".json")
	require.NoError(t, os.WriteFile(path, []byte(`{"access_token":"half`), 0o600))
	fs, err := NewFileStore(dir)
	require.NoError(t, err)
	up := newUpstream(t, tokens(t))
	c := newTestClient(t, up, WithStore(fs))

	tok, err := c.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "token-1", tok)
	assert.Equal(t, 1, up.GetTotalCallCount())
	c.waitIdle() // the token is handed out before it is saved
	saved, err := fs.Load(context.Background(), testAppID)
	require.NoError(t, err)
	assert.Equal(t, "token-1", saved.AccessToken)
}

func TestFetchSendsLowerCaseAppIDAndEscapesValues(t *testing.T) {
	var raw string
	up := newUpstream(t, func(req *http.Request) (*http.Response, error) {
		raw = req.URL.RawQuery
		return httpmock.NewStringResponse(200, `{"access_token":"t","expires_in":7200}`), nil
	})
	c := newTestClient(t, up)
	_, err := c.Get(context.Background())
	require.NoError(t, err)
	assert.Contains(t, raw, "appid="+testAppID)
	assert.NotContains(t, raw, "appId=")
	assert.Contains(t, raw, "secret=s3cr3t-APP-secret%2F%2B%3Dvalue")
}

func TestErrcodeClasses(t *testing.T) {
	cases := []struct {
		code                        int
		permanent, retryable, quota bool
	}{
		{-1, false, true, false},
		{45011, false, true, true},
		{45009, true, false, true},
		{40001, true, false, false},
		{40002, true, false, false},
		{40013, true, false, false},
		{40125, true, false, false},
		{40164, true, false, false},
		{40243, true, false, false},
		{41002, true, false, false},
		{41004, true, false, false},
		{50004, true, false, false},
		{50007, true, false, false},
		{89501, true, false, false},
		{89507, true, false, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			up := newUpstream(t, body(fmt.Sprintf(`{"errcode":%d,"errmsg":"from wechat"}`, tc.code)))
			c := newTestClient(t, up)
			_, err := c.Get(context.Background())
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			kind := KindRetryable
			if tc.permanent {
				kind = KindPermanent
			}
			assert.Equal(t, &APIError{Code: tc.code, Msg: "from wechat", Endpoint: "/cgi-bin/token", Kind: kind}, apiErr)
			assert.False(t, IsTokenRejected(err), "a token endpoint's errcode is not a rejected token")
			assert.Equal(t, fmt.Sprintf("wxtoken: errcode %d: from wechat", tc.code), apiErr.Error())
			assert.Equal(t, tc.permanent, IsPermanent(err), "permanent")
			assert.Equal(t, tc.retryable, IsRetryable(err), "retryable")
			assert.Equal(t, tc.quota, IsQuota(err), "quota")
			assert.NotContains(t, err.Error(), testSecret)
		})
	}
}

func TestMalformedResponses(t *testing.T) {
	cases := map[string]struct {
		responder httpmock.Responder
		check     func(t *testing.T, err error)
	}{
		"http 502": {
			httpmock.NewStringResponder(http.StatusBadGateway, "<html>bad gateway</html>"),
			func(t *testing.T, err error) {
				var st *StatusError
				require.ErrorAs(t, err, &st)
				assert.Equal(t, http.StatusBadGateway, st.StatusCode)
				assert.Contains(t, err.Error(), "502")
				assert.True(t, IsRetryable(err))
			},
		},
		"http 404": {
			httpmock.NewStringResponder(http.StatusNotFound, "not here"),
			func(t *testing.T, err error) {
				assert.True(t, IsPermanent(err))
				assert.Contains(t, err.Error(), "HTTP 404")
			},
		},
		"html body":       {body("<html><body>maintenance</body></html>"), malformed},
		"truncated":       {body(`{"access_token":"tokxyz`), malformed},
		"empty token":     {body(`{"access_token":"","expires_in":7200}`), malformed},
		"no expiry":       {body(`{"access_token":"tokxyz"}`), malformed},
		"negative expiry": {body(`{"access_token":"tokxyz","expires_in":-5}`), malformed},
		"absurd expiry":   {body(`{"access_token":"tokxyz","expires_in":99999999999}`), malformed},
		"empty body":      {body(""), malformed},
		"huge body":       {body(`{"access_token":"` + strings.Repeat("a", 1<<20) + `"}`), malformed},
		"connection refused": {
			httpmock.ConnectionFailure,
			func(t *testing.T, err error) { assert.True(t, IsRetryable(err)) },
		},
		"body read error": {
			func(*http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 200, Status: "200 OK", Body: io.NopCloser(failingReader{})}, nil
			},
			malformed,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t, tc.responder)
			c := newTestClient(t, up)
			tok, err := c.Get(context.Background())
			require.Error(t, err)
			assert.Empty(t, tok)
			tc.check(t, err)
			assert.NotContains(t, err.Error(), testSecret)
			assert.NotContains(t, err.Error(), "s3cr3t")
			assert.NotContains(t, err.Error(), "tokxyz", "a token from the body must not be quoted")
		})
	}
}

type panickingTransport struct{}

func (panickingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	panic("transport exploded at " + req.URL.String())
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func malformed(t *testing.T, err error) {
	t.Helper()
	assert.ErrorIs(t, err, ErrMalformedResponse)
	assert.True(t, IsRetryable(err))
}

func TestSecretNeverInNetworkErrors(t *testing.T) {
	// A real dial to a closed port: the *url.Error then quotes the request URL.
	c, err := New(testAppID, testSecret, WithBaseURL("http://127.0.0.1:1"),
		WithStore(NewMemoryStore()), WithLogger(quietLogger()))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(context.Background())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testSecret)
	assert.NotContains(t, err.Error(), "s3cr3t")
	assert.Contains(t, err.Error(), "secret=REDACTED")
	assert.True(t, IsRetryable(err))
}

func TestSecretNeverInLogs(t *testing.T) {
	var logs logbuf.Buffer
	logger := logs.Logger(slog.LevelDebug)
	up := newUpstream(t, httpmock.ConnectionFailure)
	c := newTestClient(t, up, WithLogger(logger))
	_, err := c.Get(context.Background())
	require.Error(t, err)

	ok := newUpstream(t, tokens(t))
	c2 := newTestClient(t, ok, WithLogger(logger))
	_, err = c2.Get(context.Background())
	require.NoError(t, err)
	c.Close()
	c2.Close()
	out := logs.String()
	assert.NotContains(t, out, "s3cr3t")
	assert.NotContains(t, out, "token-1")
	assert.Contains(t, out, fingerprint("token-1"))
}

func TestCancelledWaiterLeavesOthersTheirToken(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	up := newUpstream(t, func(req *http.Request) (*http.Response, error) {
		close(started)
		<-release
		return httpmock.NewStringResponse(200, `{"access_token":"shared","expires_in":7200}`), nil
	})
	c := newTestClient(t, up)

	ctx, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error)
	go func() {
		_, err := c.Get(ctx)
		firstErr <- err
	}()
	<-started
	second := make(chan string)
	go func() {
		tok, err := c.Get(context.Background())
		assert.NoError(t, err)
		second <- tok
	}()
	cancel()
	err := <-firstErr
	assert.ErrorIs(t, err, context.Canceled)
	close(release)
	assert.Equal(t, "shared", <-second)
	assert.Equal(t, 1, up.GetTotalCallCount())
}

func TestPanickingTransportGivesErrors(t *testing.T) {
	c, err := New(testAppID, testSecret, WithHTTPClient(&http.Client{Transport: panickingTransport{}}),
		WithStore(NewMemoryStore()), WithLogger(quietLogger()))
	require.NoError(t, err)
	defer c.Close()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			_, err := c.Get(context.Background())
			require.Error(t, err)
			assert.Contains(t, err.Error(), "panic in Source.Fetch")
			assert.Contains(t, err.Error(), "transport exploded")
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}
	wg.Wait()
}

func TestCloseStopsEverything(t *testing.T) {
	up := newUpstream(t, tokens(t))
	c := newTestClient(t, up)
	_, err := c.Get(context.Background())
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	_, err = c.Get(context.Background())
	assert.ErrorIs(t, err, ErrClosed)
	_, err = c.Token(context.Background())
	assert.ErrorIs(t, err, ErrClosed)
	_, err = c.Invalidate(context.Background(), "token-1")
	assert.ErrorIs(t, err, ErrClosed)
}

func TestCloseReleasesWaiters(t *testing.T) {
	started := make(chan struct{})
	up := newUpstream(t, func(req *http.Request) (*http.Response, error) {
		close(started)
		<-req.Context().Done()
		return nil, req.Context().Err()
	})
	c := newTestClient(t, up)
	errc := make(chan error)
	go func() {
		_, err := c.Get(context.Background())
		errc <- err
	}()
	<-started
	require.NoError(t, c.Close())
	assert.ErrorIs(t, <-errc, ErrClosed)
}

func TestStoreFailureStillServesToken(t *testing.T) {
	up := newUpstream(t, tokens(t))
	c := newTestClient(t, up, WithStore(failingStore{}))
	tok, err := c.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "token-1", tok)
	tok, err = c.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "token-1", tok)
	assert.Equal(t, 1, up.GetTotalCallCount())
}

type failingStore struct{}

func (failingStore) Load(context.Context, string) (Token, error) {
	return Token{}, errors.New("store down")
}
func (failingStore) Save(context.Context, string, Token) error { return errors.New("store down") }

func TestDefaultStoreIsAFileUnderTheUserCacheDir(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	up := newUpstream(t, tokens(t))
	c, err := New(testAppID, testSecret, WithHTTPClient(&http.Client{Transport: up}),
		WithLogger(quietLogger()))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(context.Background())
	require.NoError(t, err)
	c.waitIdle() // the token is handed out before it is saved

	path := filepath.Join(cache, "wxtoken", testAppID+".json")
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"access_token":"token-1"`)
	assert.NotContains(t, string(raw), "s3cr3t")
}

func TestDefaultStoreFallsBackToMemoryWithOneWarning(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	var logs logbuf.Buffer
	logger := logs.Logger(slog.LevelInfo) // the default level: the warning must show there
	up := newUpstream(t, tokens(t))
	c, err := New(testAppID, testSecret, WithHTTPClient(&http.Client{Transport: up}), WithLogger(logger))
	require.NoError(t, err)
	defer c.Close()
	assert.IsType(t, &MemoryStore{}, c.store)
	_, err = c.Get(context.Background())
	require.NoError(t, err)
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "level=WARN"))
	assert.Contains(t, out, "kept in memory only")
}
