package wxtoken

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is an HTTP server that keeps every byte of every request it
// receives (request line, headers, body) and answers with a token of its own,
// as a host that a redirect points at would.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen [][]byte
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		dump, err := httputil.DumpRequest(req, true)
		require.NoError(t, err)
		r.mu.Lock()
		r.seen = append(r.seen, dump)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"FOREIGN-TOKEN","expires_in":7200}`))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) requests() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.seen...)
}

// locationMark is in the query of every Location the redirecting endpoint
// sends: an error must not quote it.
const locationMark = "LOCATION-QUERY-MARK"

// redirectingWeChat answers both token endpoints with status, pointing at to.
func redirectingWeChat(t *testing.T, status int, to string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, to+req.URL.Path+"?where="+locationMark, status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTokenEndpointsNeverFollowRedirects(t *testing.T) {
	statuses := []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect}
	// The user's own client follows every redirect: New must not let it.
	followAll := func(*http.Request, []*http.Request) error { return nil }
	for _, stable := range []bool{false, true} {
		for _, status := range statuses {
			t.Run(strconv.Itoa(status)+"/stable="+strconv.FormatBool(stable), func(t *testing.T) {
				foreign := newRecorder(t)
				srv := redirectingWeChat(t, status, foreign.URL)
				hc := &http.Client{CheckRedirect: followAll}
				opts := []Option{WithBaseURL(srv.URL), WithHTTPClient(hc),
					WithStore(NewMemoryStore()), WithLogger(quietLogger())}
				if stable {
					opts = append(opts, WithStableToken())
				}
				c, err := New(testAppID, testSecret, opts...)
				require.NoError(t, err)
				defer c.Close()

				tok, err := c.Get(context.Background())
				assert.Empty(t, tok, "the foreign host's token is not accepted")
				var st *StatusError
				require.ErrorAs(t, err, &st)
				assert.Equal(t, status, st.StatusCode)
				assert.Equal(t, "wxtoken: token endpoint answered HTTP "+strconv.Itoa(status)+" "+
					http.StatusText(status)+"; redirects are not followed", err.Error())
				assert.NotContains(t, err.Error(), locationMark)
				assert.True(t, IsPermanent(err), "a redirect does not go away by retrying")
				requireCleanChain(t, err, testSecret)
				assert.Empty(t, foreign.requests(), "the redirect target received nothing")
				assert.NotNil(t, hc.CheckRedirect, "the caller's client is left as it was")
			})
		}
	}
}
