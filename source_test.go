package wxtoken

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeSource is a Source that records its requests and answers from a func.
type fakeSource struct {
	mu     sync.Mutex
	reqs   []FetchRequest
	answer func(n int, req FetchRequest) (Token, error)
	info   *SourceInfo
}

func (s *fakeSource) Fetch(ctx context.Context, req FetchRequest) (Token, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	n := len(s.reqs)
	s.mu.Unlock()
	return s.answer(n, req)
}

func (s *fakeSource) requests() []FetchRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FetchRequest(nil), s.reqs...)
}

// infoSource is a fakeSource that also tells about itself.
type infoSource struct{ *fakeSource }

func (s infoSource) Info() SourceInfo { return *s.info }
func (s infoSource) Redact(text string) string {
	return strings.ReplaceAll(text, "hunter2", "REDACTED")
}
func numbered(n int) string { return "cred-" + string(rune('a'+n-1)) }
func credential(n int, refresh string) (Token, error) {
	return Token{AccessToken: numbered(n), ExpiresIn: 7200, CreateTime: time.Now(), Refresh: refresh}, nil
}

func newSourceClient(t *testing.T, key string, src Source, opts ...Option) *Client {
	t.Helper()
	c, err := NewClient(key, src, append([]Option{WithStore(NewMemoryStore()), WithLogger(quietLogger())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// Any Source gets the engine: one fetch for a cold herd, the redirect-safe
// HTTP client, no base URL unless one was given, the rejected token and the
// Store's record on Invalidate.
func TestNewClientGivesASourceTheEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{answer: func(n int, _ FetchRequest) (Token, error) { return credential(n, "") }}
		c := newSourceClient(t, "custom.key", src)
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() { assert.Equal(t, "cred-a", mustGet(t, c)) })
		}
		wg.Wait()
		reqs := src.requests()
		require.Len(t, reqs, 1)
		require.NotNil(t, reqs[0].HTTPClient)
		assert.NotNil(t, reqs[0].HTTPClient.CheckRedirect, "the HTTP client never follows a redirect")
		assert.Empty(t, reqs[0].BaseURL, "no WithBaseURL: the Source's own default")
		assert.Equal(t, "custom.key", c.Key())
		assert.Equal(t, DefaultBaseURL, c.BaseURL())

		time.Sleep(time.Minute)
		c.waitIdle()
		tok, err := c.Invalidate(context.Background(), "cred-a")
		require.NoError(t, err)
		assert.Equal(t, "cred-b", tok)
		reqs = src.requests()
		require.Len(t, reqs, 2)
		assert.Equal(t, "cred-a", reqs[1].Rejected)
		assert.Equal(t, "cred-a", reqs[1].Current.AccessToken, "the Store's record, read under the lock")
		assert.False(t, reqs[1].Force, "a Source without Info never forces")

		withBase := newSourceClient(t, "custom.base", src, WithBaseURL("https://proxy.example/"))
		mustGet(t, withBase)
		reqs = src.requests()
		assert.Equal(t, "https://proxy.example", reqs[len(reqs)-1].BaseURL)
	})
}

// A refresh token is never lost: the one a Source returns replaces the
// stored one in the same Save, and a Source that returns none keeps it.
func TestRefreshTokensAreCarriedAndReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := NewMemoryStore()
		seed := Token{AccessToken: "old", ExpiresIn: 7200, CreateTime: time.Now().Add(-3 * time.Hour), Refresh: "refresh-0"}
		require.NoError(t, st.Save(context.Background(), "authorizer", seed))
		src := &fakeSource{answer: func(n int, req FetchRequest) (Token, error) {
			if n == 1 {
				return credential(n, "") // returns no refresh token: the stored one stays
			}
			return credential(n, "refresh-"+numbered(n))
		}}
		c := newSourceClient(t, "authorizer", src, WithStore(st), WithRejectGuard(0))
		assert.Equal(t, "cred-a", mustGet(t, c))
		c.waitIdle()
		assert.Equal(t, "refresh-0", src.requests()[0].Current.Refresh)
		stored, err := st.Load(context.Background(), "authorizer")
		require.NoError(t, err)
		assert.Equal(t, "refresh-0", stored.Refresh, "kept")

		_, err = c.Invalidate(context.Background(), "cred-a")
		require.NoError(t, err)
		c.waitIdle()
		stored, err = st.Load(context.Background(), "authorizer")
		require.NoError(t, err)
		assert.Equal(t, "cred-b", stored.AccessToken)
		assert.Equal(t, "refresh-cred-b", stored.Refresh, "replaced in the same Save")
	})
}

// What a Source returns goes through Validate, and a Source's errors go
// through its classification: a permanent one cools the gate down.
func TestSourceAnswersAreChecked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bad := &fakeSource{answer: func(int, FetchRequest) (Token, error) {
			return Token{AccessToken: "line\nbreak", ExpiresIn: 7200}, nil
		}}
		_, err := newSourceClient(t, "bad", bad).Get(context.Background())
		require.ErrorIs(t, err, ErrMalformedResponse)

		refused := &fakeSource{answer: func(int, FetchRequest) (Token, error) {
			return Token{}, &APIError{Code: 61004, Msg: "client ip not registered", Kind: KindPermanent}
		}}
		c := newSourceClient(t, "refused", refused)
		for range 10 {
			_, err = c.Get(context.Background())
			require.True(t, IsPermanent(err))
			time.Sleep(time.Second)
		}
		assert.Len(t, refused.requests(), 1, "the gate shares the permanent failure")

		dated := &fakeSource{answer: func(int, FetchRequest) (Token, error) {
			return Token{AccessToken: "undated", ExpiresIn: 7200}, nil // the Client dates it
		}}
		tok, err := newSourceClient(t, "dated", dated).Token(context.Background())
		require.NoError(t, err)
		assert.Equal(t, time.Now(), tok.CreateTime)
	})
}

// A Source that can force is asked to only when normal mode hands back the
// rejected credential; its Info names it and its Redact scrubs panic text.
func TestSourceInfoForceAndRedact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSource{info: &SourceInfo{Name: "acct forcing", AppID: "acct", ForcePerDay: 5}}
		fs.answer = func(n int, req FetchRequest) (Token, error) {
			if req.Force {
				return credential(n, "")
			}
			return Token{AccessToken: "same", ExpiresIn: 7200, CreateTime: time.Now()}, nil
		}
		c := newSourceClient(t, "acct.forcing", infoSource{fs})
		assert.Equal(t, "same", mustGet(t, c))
		time.Sleep(time.Minute)
		tok, err := c.Invalidate(context.Background(), "same")
		require.NoError(t, err)
		assert.Equal(t, "cred-c", tok)
		reqs := fs.requests()
		require.Len(t, reqs, 3)
		assert.Equal(t, []bool{false, false, true}, []bool{reqs[0].Force, reqs[1].Force, reqs[2].Force})
		assert.Equal(t, "wxtoken.Client{appid: acct, key: acct.forcing}", c.String())

		panicky := &fakeSource{info: &SourceInfo{Name: "panicky"}, answer: func(int, FetchRequest) (Token, error) {
			panic("password hunter2 rejected")
		}}
		_, err = newSourceClient(t, "panicky", infoSource{panicky}).Get(context.Background())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "panic in Source.Fetch: password REDACTED rejected")
	})
}

func TestNewClientRefusesNilSourceAndBadKeys(t *testing.T) {
	_, err := NewClient("k", nil)
	require.Error(t, err)
	_, err = NewClient("../evil", &fakeSource{})
	require.ErrorIs(t, err, ErrInvalidKey)
	var tr http.RoundTripper = &Transport{}
	_, err = tr.RoundTrip(&http.Request{})
	require.True(t, err != nil && !errors.Is(err, ErrForeignOrigin))
}
