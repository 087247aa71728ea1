package wxtoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const remoteKey = "wxt_remote-test-key-0123456789abcdefghijklmnop"

// fakeTokenServer answers the `wxtoken serve` API for one credential,
// counting requests, with the answer a test sets.
type fakeTokenServer struct {
	*httptest.Server
	gets, posts atomic.Int64
	mu          sync.Mutex
	token       string
	left        int64
	status      int    // != 0: answer this status with body
	body        string // the raw answer when status is set
	rejected    []string
	auth        []string
}

func newFakeTokenServer(t *testing.T) *fakeTokenServer {
	f := &fakeTokenServer{token: "server-token-1", left: 7000}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeTokenServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/credentials/shop":
		f.gets.Add(1)
	case r.Method == "POST" && r.URL.Path == "/v1/credentials/shop/invalidate":
		f.posts.Add(1)
		var body struct{ Rejected string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.rejected = append(f.rejected, body.Rejected)
		if body.Rejected == f.token {
			f.token = "server-token-2"
		}
	default:
		http.NotFound(w, r)
		return
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.body)
		return
	}
	_, _ = fmt.Fprintf(w, `{"access_token":%q,"expires_in":%d,"expires_at":"2030-01-01T00:00:00Z","age":%d}`, f.token, f.left, 7200-f.left)
}

func (f *fakeTokenServer) set(status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.body = status, body
}

func newRemoteClient(t *testing.T, f *fakeTokenServer, opts ...Option) *Client {
	t.Helper()
	c, err := NewRemote(f.URL, "shop", remoteKey, append([]Option{WithStore(NewMemoryStore())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRemoteGetAsksTheServerOnceWhileFresh(t *testing.T) {
	t.Parallel()
	f := newFakeTokenServer(t)
	c := newRemoteClient(t, f)
	for range 1000 {
		tok, err := c.Get(context.Background())
		require.NoError(t, err)
		require.Equal(t, "server-token-1", tok)
	}
	assert.EqualValues(t, 1, f.gets.Load(), "one request for a thousand Gets")
	tok, err := c.Token(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 7200, tok.ExpiresIn, "the seconds left and the age the server says")
	assert.WithinDuration(t, time.Now().Add(-200*time.Second), tok.CreateTime, 2*time.Second, "dated by its age")
	assert.WithinDuration(t, time.Now().Add(7000*time.Second), tok.ExpiresAt(), 2*time.Second)
	key, err := RemoteKey(f.URL, "shop", remoteKey)
	require.NoError(t, err)
	assert.Equal(t, key, c.Key())
	assert.Regexp(t, `^remote\.[0-9a-f]{16}\.shop$`, c.Key())
	assert.Equal(t, []string{"Bearer " + remoteKey}, f.auth)
}

func TestRemoteInvalidateIsForwardedToTheServer(t *testing.T) {
	t.Parallel()
	f := newFakeTokenServer(t)
	c := newRemoteClient(t, f, WithRejectGuard(0))
	tok, err := c.Get(context.Background())
	require.NoError(t, err)
	next, err := c.Invalidate(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "server-token-2", next)
	assert.Equal(t, []string{"server-token-1"}, f.rejected, "the rejected token went to the server to compare")
	assert.EqualValues(t, 1, f.gets.Load())
	assert.EqualValues(t, 1, f.posts.Load())
}

func TestRemoteErrorsAreTypedAndClassified(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status             int
		body, code         string
		permanent, retried bool
		is                 error
	}{
		{401, `{"error":"a valid client key is needed","code":"unauthorized"}`, "unauthorized", true, false, nil},
		{403, `{"error":"this client may not read this credential","code":"forbidden"}`, "forbidden", true, false, nil},
		{429, `{"error":"too many requests","code":"rate_limited"}`, "rate_limited", false, true, nil},
		{429, `{"error":"moments ago","code":"rejected_too_soon"}`, "rejected_too_soon", false, true, ErrRejectedTooSoon},
		{502, `{"error":"WeChat answered errcode 40164","code":"upstream_error"}`, "upstream_error", false, true, nil},
		{503, `<html>gateway</html>`, "unknown", false, true, nil},
	} {
		f := newFakeTokenServer(t)
		f.set(tc.status, tc.body)
		src, err := RemoteSource(f.URL, "shop", remoteKey)
		require.NoError(t, err)
		_, err = src.Fetch(context.Background(), FetchRequest{HTTPClient: redirectSafe(nil)})
		var re *RemoteError
		require.ErrorAs(t, err, &re, tc.body)
		assert.Equal(t, tc.status, re.StatusCode)
		assert.Equal(t, tc.code, re.Code)
		assert.Equal(t, tc.permanent, IsPermanent(err), tc.body)
		assert.Equal(t, tc.retried, IsRetryable(err), tc.body)
		if tc.is != nil {
			assert.ErrorIs(t, err, tc.is)
		}
		requireCleanChain(t, err, remoteKey)
	}
}

func TestRemoteErrorsHoldNeitherKeyNorToken(t *testing.T) {
	t.Parallel()
	f := newFakeTokenServer(t)
	// A proxy that quotes the request back.
	f.set(502, `{"error":"upstream said: Authorization: Bearer `+remoteKey+` rejected=server-token-1","code":"bad `+remoteKey+`"}`)
	src, err := RemoteSource(f.URL, "shop", remoteKey)
	require.NoError(t, err)
	_, err = src.Fetch(context.Background(), FetchRequest{HTTPClient: redirectSafe(nil), Rejected: "server-token-1"})
	requireCleanChain(t, err, remoteKey, "server-token-1")

	assert.NotContains(t, fmt.Sprintf("%v %+v %#v", src, src, src), remoteKey)
	assert.NotContains(t, src.(interface{ Redact(string) string }).Redact("x "+remoteKey), remoteKey)
}

func TestRemoteAnswersAreDecodedStrictly(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"not JSON":      `access_token=x`,
		"no token":      `{"expires_in":7000}`,
		"duplicate key": `{"access_token":"a","access_token":"b","expires_in":7000}`,
		"no lifetime":   `{"access_token":"a"}`,
		"expired":       `{"access_token":"a","expires_in":0}`,
		"a ticket":      `{"ticket":"t","expires_in":7000}`,
		"bad token":     `{"access_token":"a b","expires_in":7000}`,
		"negative age":  `{"access_token":"a","expires_in":7000,"age":-5}`,
		"absurd age":    `{"access_token":"a","expires_in":7000,"age":99999999}`,
		"age a string":  `{"access_token":"a","expires_in":7000,"age":"old"}`,
		"huge":          `{"access_token":"` + strings.Repeat("a", maxResponseBytes) + `","expires_in":1}`,
	} {
		f := newFakeTokenServer(t)
		f.set(200, body)
		src, err := RemoteSource(f.URL, "shop", remoteKey)
		require.NoError(t, err)
		_, err = src.Fetch(context.Background(), FetchRequest{HTTPClient: redirectSafe(nil)})
		assert.ErrorIs(t, err, ErrMalformedResponse, name)
		assert.True(t, IsRetryable(err), name)
	}
}

func TestRemoteTicketReadsTheTicketField(t *testing.T) {
	t.Parallel()
	f := newFakeTokenServer(t)
	f.set(200, `{"ticket":"the-ticket","expires_in":7000,"expires_at":"2030-01-01T00:00:00Z"}`)
	src, err := RemoteSource(f.URL, "shop", remoteKey, RemoteTicket())
	require.NoError(t, err)
	c, err := NewClient("remote.ticket", src, WithStore(NewMemoryStore()))
	require.NoError(t, err)
	defer c.Close()
	tok, err := c.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "the-ticket", tok)
	_, err = NewHTTPClient(c, nil).Get(DefaultBaseURL + "/cgi-bin/menu/get")
	assert.ErrorIs(t, err, ErrNotAccessToken, "a ticket is never sent as an access_token")
}

func TestRemoteRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Store(true) }))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/steal", http.StatusFound))
	defer redirect.Close()
	c, err := NewRemote(redirect.URL, "shop", remoteKey, WithStore(NewMemoryStore()))
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(context.Background())
	require.Error(t, err)
	assert.True(t, IsPermanent(err))
	assert.False(t, followed.Load(), "the key never reached another host")
}

func TestRemoteSourceRefusesBadArguments(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][3]string{
		"cleartext off loopback": {"http://tokens.example.com", "shop", remoteKey},
		// Names DNS answers, whatever their suffix promises.
		"cleartext to a .localhost name": {"http://tokens.localhost:8080", "shop", remoteKey},
		"cleartext to a .invalid name":   {"http://tokens.invalid:8080", "shop", remoteKey},
		"cleartext to localhost.":        {"http://localhost.:8080", "shop", remoteKey},
		"not a URL":                      {"tokens", "shop", remoteKey},
		"credentials in the URL":         {"https://u:p@tokens.example.com", "shop", remoteKey},
		"bad name":                       {"https://tokens.example.com", "../shop", remoteKey},
		"empty key":                      {"https://tokens.example.com", "shop", ""},
		"key with a newline":             {"https://tokens.example.com", "shop", "wxt_a\nb"},
	} {
		_, err := RemoteSource(args[0], args[1], args[2])
		require.Error(t, err, name)
		assert.NotContains(t, err.Error(), remoteKey)
	}
	for _, ok := range []string{"https://tokens.example.com", "https://gw.example.com/wxtoken/", "http://127.0.0.1:8080", "http://localhost:1",
		"http://LocalHost:1", "http://[::1]:8080", "http://127.1.2.3:80"} {
		_, err := RemoteSource(ok, "shop", remoteKey)
		require.NoError(t, err, ok)
	}
}

func TestRemoteHonoursTheContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	src, err := RemoteSource(slow.URL, "shop", remoteKey)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = src.Fetch(ctx, FetchRequest{HTTPClient: redirectSafe(nil)})
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded) || isTimeout(err), "%v", err)
}

// FuzzRemoteAnswer decodes arbitrary server answers: a token or a typed
// error, never a panic, never the key in the error.
func FuzzRemoteAnswer(f *testing.F) {
	f.Add(200, []byte(`{"access_token":"a","expires_in":7000,"expires_at":"2030-01-01T00:00:00Z"}`))
	f.Add(200, []byte(`{"ticket":"a","expires_in":7000}`))
	f.Add(401, []byte(`{"error":"x","code":"unauthorized"}`))
	f.Add(500, []byte("\xff"))
	src, err := RemoteSource("http://127.0.0.1:1", "shop", remoteKey)
	require.NoError(f, err)
	rs := src.(*remoteSource)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		r := secretRedactor([]string{remoteKey})
		var err error
		if status == 200 {
			var tok Token
			tok, err = rs.decode(body, time.Now(), r)
			if err == nil {
				require.NoError(t, tok.Validate())
				return
			}
			require.ErrorIs(t, err, ErrMalformedResponse)
		} else {
			err = remoteError(status, body, r)
		}
		for _, level := range chainLevels(err) {
			require.NotContains(t, level.Error(), remoteKey)
		}
	})
}

func TestRemoteSourceInARegistry(t *testing.T) {
	t.Parallel()
	f := newFakeTokenServer(t)
	store := NewMemoryStore()
	reg, err := NewRegistry(func(_ context.Context, name string) (Source, error) {
		return RemoteSource(f.URL, name, remoteKey)
	}, WithStore(store))
	require.NoError(t, err)
	defer reg.Close()
	tok, err := reg.Get(context.Background(), "shop")
	require.NoError(t, err)
	assert.Equal(t, "server-token-1", tok)
	c, err := reg.Client(context.Background(), "shop")
	require.NoError(t, err)
	c.waitIdle() // the save follows the answer
	key, err := RemoteKey(f.URL, "shop", remoteKey)
	require.NoError(t, err)
	saved, err := store.Load(context.Background(), key)
	require.NoError(t, err, "kept under the remote key")
	assert.Equal(t, tok, saved.AccessToken)
}

// Two services of one OS user (or one Redis) asking two servers for a
// credential of the same name: each gets its own server's token, from its
// own server.
func TestRemoteKeysTellServersAndClientsApart(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the default FileStore of both
	staging, prod := newFakeTokenServer(t), newFakeTokenServer(t)
	staging.token, prod.token = "staging-account-token", "production-account-token"
	get := func(url, key string, opts ...Option) string {
		c, err := NewRemote(url, "shop", key, opts...)
		require.NoError(t, err)
		defer c.Close()
		tok, err := c.Get(context.Background())
		require.NoError(t, err)
		return tok
	}
	assert.Equal(t, "staging-account-token", get(staging.URL, remoteKey))
	assert.Equal(t, "production-account-token", get(prod.URL, "wxt_another-services-key"))
	assert.EqualValues(t, 1, prod.gets.Load(), "the production server was asked")

	shared := WithStore(NewMemoryStore())
	assert.Equal(t, "staging-account-token", get(staging.URL, remoteKey, shared))
	assert.Equal(t, "production-account-token", get(prod.URL, remoteKey, shared), "same key, another server")
	assert.Equal(t, "production-account-token", get(prod.URL+"/", "wxt_a-third-key", shared), "another client key")
	assert.EqualValues(t, 3, prod.gets.Load())
	assert.Equal(t, "staging-account-token", get(staging.URL+"/", remoteKey, shared), "the same server and key share")
	assert.EqualValues(t, 2, staging.gets.Load(), "once for the FileStore, once for the shared store")

	for _, url := range []string{staging.URL, prod.URL} {
		k, err := RemoteKey(url, "shop", remoteKey)
		require.NoError(t, err)
		assert.NotContains(t, k, remoteKey[4:12])
		assert.NotContains(t, k, "127.0.0.1")
	}
	a, _ := RemoteKey("https://Tokens.Example.com/wx/", "shop", remoteKey)
	b, _ := RemoteKey("https://tokens.example.com/wx", "shop", remoteKey)
	c, _ := RemoteKey("https://tokens.example.com/other", "shop", remoteKey)
	assert.Equal(t, a, b, "the host is case-insensitive, a trailing slash is no other server")
	assert.NotEqual(t, b, c, "another path is another server")
}

func TestNewRemoteTicketIsNotSentAsAnAccessToken(t *testing.T) {
	t.Parallel()
	f := newFakeTokenServer(t)
	f.set(200, `{"ticket":"the-ticket","expires_in":7000,"expires_at":"2030-01-01T00:00:00Z","age":200}`)
	c, err := NewRemoteTicket(f.URL, "shop", remoteKey, WithStore(NewMemoryStore()))
	require.NoError(t, err)
	defer c.Close()
	tok, err := c.Get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "the-ticket", tok)
	_, err = NewHTTPClient(c, nil).Get(DefaultBaseURL + "/cgi-bin/menu/get")
	assert.ErrorIs(t, err, ErrNotAccessToken)
	_, err = c.JSSDKConfig(context.Background(), "https://a.example/")
	assert.Error(t, err, "the appid is the server's: /v1/jssdk signs")
}
