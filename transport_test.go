package wxtoken

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
	"github.com/wxtoken/wxtoken/wxtest"
)

const sendURL = "https://api.weixin.qq.com/cgi-bin/message/custom/send"

const (
	okAnswer       = `{"errcode":0,"errmsg":"ok"}`
	rejectedAnswer = `{"errcode":40001,"errmsg":"invalid credential"}`
)

// bizFake stands in for WeChat in the Transport tests. Its token responder
// hands out token-1, token-2, ...; its business handler accepts only the newest
// of them and answers any other the way WeChat does, with errcode 40001 in JSON
// labelled text/plain.
type bizFake struct {
	// Set before the fake is used; read-only afterwards.
	rejectAll  bool                    // reject even the newest token
	rejectType string                  // Content-Type of rejections
	rejectBody string                  // body of rejections
	before     func(n int, tok string) // runs before call n (1-based) is answered

	mu     sync.Mutex
	issued int
	calls  []bizCall

	open atomic.Int64 // in-process response bodies not yet closed
}

// bizCall is what the business handler saw of one request.
type bizCall struct {
	token    string
	rawQuery string
	header   http.Header
	body     []byte
}

func newBizFake() *bizFake {
	return &bizFake{rejectType: "text/plain", rejectBody: rejectedAnswer}
}

// issue is the token endpoint, as an httpmock responder.
func (f *bizFake) issue(*http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issued++
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{}, ContentLength: -1,
		Body: io.NopCloser(strings.NewReader(
			fmt.Sprintf(`{"access_token":"token-%d","expires_in":7200}`, f.issued))),
	}, nil
}

// supersede stands for another replica fetching a token: from now on WeChat
// rejects the one our Client holds.
func (f *bizFake) supersede() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issued++
}

func (f *bizFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var payload []byte
	if r.Body != nil {
		var err error
		payload, err = io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	tok := r.URL.Query().Get("access_token")
	f.mu.Lock()
	f.calls = append(f.calls, bizCall{token: tok, rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: payload})
	n := len(f.calls)
	f.mu.Unlock()
	if f.before != nil {
		f.before(n, tok)
	}
	f.mu.Lock()
	accept := !f.rejectAll && tok == fmt.Sprintf("token-%d", f.issued)
	f.mu.Unlock()
	answer, ctype := okAnswer, "application/json; encoding=utf-8"
	if !accept {
		answer, ctype = f.rejectBody, f.rejectType
	}
	if ctype != "" {
		w.Header().Set("Content-Type", ctype)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
	io.WriteString(w, answer)
}

func (f *bizFake) snapshot() []bizCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bizCall(nil), f.calls...)
}

func (f *bizFake) tokensSeen() []string {
	var toks []string
	for _, c := range f.snapshot() {
		toks = append(toks, c.token)
	}
	return toks
}

// RoundTrip serves req in-process, in the caller's goroutine, and behaves as a
// real transport towards the caller: it closes the request body, and it counts
// response bodies until they are closed.
func (f *bizFake) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, req)
	closeRequestBody(req)
	resp := rec.Result()
	f.open.Add(1)
	resp.Body = &countedBody{ReadCloser: resp.Body, open: &f.open}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	open   *atomic.Int64
	closed atomic.Bool
}

func (b *countedBody) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.open.Add(-1)
	}
	return b.ReadCloser.Close()
}

// newTransportRig returns the fake, a Client that fetches from it with the
// reject guard off (tests reject tokens obtained moments ago), and a Transport
// that sends business requests to it in-process.
func newTransportRig(t *testing.T, opts ...Option) (*bizFake, *Client, *Transport) {
	t.Helper()
	return newTransportRigWith(t, newBizFake(), opts...)
}

// newTransportRigWith is newTransportRig with the fake f.
func newTransportRigWith(t *testing.T, f *bizFake, opts ...Option) (*bizFake, *Client, *Transport) {
	t.Helper()
	c := newTestClient(t, newUpstream(t, f.issue), append([]Option{WithRejectGuard(0)}, opts...)...)
	return f, c, &Transport{Client: c, Base: f}
}

// warmWithStaleToken caches token-1 in c, then has another replica supersede
// it, so that the next business request carries a token WeChat rejects.
func warmWithStaleToken(t *testing.T, f *bizFake, c *Client) {
	t.Helper()
	tok, err := c.Get(context.Background())
	require.NoError(t, err)
	require.Equal(t, "token-1", tok)
	f.supersede()
}

func newSendRequest(t *testing.T, target string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, target, body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	return req
}

const message = `{"touser":"OPENID","msgtype":"text","text":{"content":"Hello"}}`

// readAll reads and closes resp.Body.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return string(b)
}

// sendMessage sends message through rt and returns the answer's body, read
// and closed. It fails t if the round trip fails.
func sendMessage(t *testing.T, rt http.RoundTripper) string {
	t.Helper()
	resp, err := rt.RoundTrip(newSendRequest(t, sendURL, strings.NewReader(message)))
	require.NoError(t, err)
	return readAll(t, resp)
}

func TestTransportAddsTokenAndPassesTheAnswer(t *testing.T) {
	f, c, tr := newTransportRig(t)
	assert.Equal(t, okAnswer, sendMessage(t, tr))
	assert.Equal(t, []string{"token-1"}, f.tokensSeen())
	assert.Equal(t, int64(1), c.Stats().Fetches)
	assert.Zero(t, f.open.Load(), "response body closed")
}

func TestTransportRejectionLeadsToOneFetchAndOneRetry(t *testing.T) {
	f, c, tr := newTransportRig(t)
	warmWithStaleToken(t, f, c)

	assert.Equal(t, okAnswer, sendMessage(t, tr))
	// token-2 went to the other replica; the fetch after the rejection gave token-3.
	assert.Equal(t, []string{"token-1", "token-3"}, f.tokensSeen())
	assert.Equal(t, int64(2), c.Stats().Fetches, "one fetch beyond the initial one")
	assert.Zero(t, f.open.Load(), "the rejected response and the answer are both closed")

	assert.Equal(t, okAnswer, sendMessage(t, tr))
	assert.Equal(t, int64(2), c.Stats().Fetches, "the next request uses the new token")
}

func TestTransportRejectionCodes(t *testing.T) {
	cases := []struct {
		code  int
		retry bool
	}{
		{CodeInvalidCredential, true},
		{CodeInvalidToken, true},
		{CodeTokenExpired, true},
		{CodeMissingToken, false},
		{CodeDailyQuota, false},
		{CodeSystemBusy, false},
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			f, c, tr := newTransportRig(t)
			f.rejectBody = fmt.Sprintf(`{"errcode":%d,"errmsg":"from wechat"}`, tc.code)
			warmWithStaleToken(t, f, c)
			got := sendMessage(t, tr)
			if tc.retry {
				assert.Equal(t, okAnswer, got)
				assert.Len(t, f.snapshot(), 2)
				assert.Equal(t, int64(2), c.Stats().Fetches)
			} else {
				assert.Equal(t, f.rejectBody, got, "handed back as it came")
				assert.Len(t, f.snapshot(), 1)
				assert.Equal(t, int64(1), c.Stats().Fetches)
			}
			assert.Zero(t, f.open.Load())
		})
	}
}

func TestTransportRejectionContentTypes(t *testing.T) {
	cases := []struct {
		ctype   string
		inspect bool
	}{
		{"text/plain", true},
		{"text/plain; charset=utf-8", true},
		{"application/json", true},
		{"Application/JSON; encoding=utf-8", true},
		{"text/json", true},
		{"", true},
		{"text/html", false},
		{"application/octet-stream", false},
		{"image/jpeg", false},
	}
	for _, tc := range cases {
		t.Run(tc.ctype, func(t *testing.T) {
			f, c, tr := newTransportRig(t)
			f.rejectType = tc.ctype
			warmWithStaleToken(t, f, c)
			got := sendMessage(t, tr)
			if tc.inspect {
				assert.Equal(t, okAnswer, got)
				assert.Len(t, f.snapshot(), 2)
			} else {
				assert.Equal(t, rejectedAnswer, got)
				assert.Len(t, f.snapshot(), 1)
			}
		})
	}
}

func TestTransportSecondRejectionIsReturned(t *testing.T) {
	f, c, tr := newTransportRig(t)
	f.rejectAll = true
	warmWithStaleToken(t, f, c)

	resp, err := tr.RoundTrip(newSendRequest(t, sendURL, strings.NewReader(message)))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, rejectedAnswer, readAll(t, resp))
	assert.Equal(t, []string{"token-1", "token-3"}, f.tokensSeen(), "exactly one retry")
	assert.Equal(t, int64(2), c.Stats().Fetches)
	assert.Zero(t, f.open.Load())
}

// With the default reject guard, a token obtained moments ago is not replaced:
// Invalidate refuses, and the caller gets WeChat's rejection to read.
func TestTransportGuardedRejectionIsReturned(t *testing.T) {
	f := newBizFake()
	c := newTestClient(t, newUpstream(t, f.issue))
	tr := &Transport{Client: c, Base: f}
	warmWithStaleToken(t, f, c)

	assert.Equal(t, rejectedAnswer, sendMessage(t, tr))
	assert.Len(t, f.snapshot(), 1)
	assert.Equal(t, int64(1), c.Stats().Fetches)
	assert.Zero(t, f.open.Load())
}

func TestTransportConcurrentRejectionsFetchOnce(t *testing.T) {
	f, c, tr := newTransportRig(t)
	warmWithStaleToken(t, f, c)
	const callers = 1000
	// No rejection is answered before every request has arrived carrying
	// token-1, so all of them see it rejected.
	allIn := make(chan struct{})
	var arrived atomic.Int64
	f.before = func(_ int, tok string) {
		if tok != "token-1" {
			return
		}
		if arrived.Add(1) == callers {
			close(allIn)
		}
		<-allIn
	}
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			resp, err := tr.RoundTrip(newSendRequest(t, sendURL, strings.NewReader(message)))
			if !assert.NoError(t, err) {
				return
			}
			b, err := io.ReadAll(resp.Body)
			assert.NoError(t, err)
			assert.NoError(t, resp.Body.Close())
			assert.Equal(t, okAnswer, string(b))
		})
	}
	wg.Wait()
	assert.Equal(t, int64(2), c.Stats().Fetches, "one fetch for all the rejections")
	seen := map[string]int{}
	for _, tok := range f.tokensSeen() {
		seen[tok]++
	}
	assert.Equal(t, map[string]int{"token-1": callers, "token-3": callers}, seen)
	assert.Zero(t, f.open.Load())
}

// A request that carried a token the cache has since replaced makes no fetch:
// Invalidate hands back the replacement.
func TestTransportRejectionOfReplacedTokenFetchesNothing(t *testing.T) {
	f, c, tr := newTransportRig(t)
	warmWithStaleToken(t, f, c)
	held, release := make(chan struct{}), make(chan struct{})
	f.before = func(n int, _ string) {
		if n == 1 {
			close(held)
			<-release
		}
	}
	slow := make(chan string)
	go func() {
		resp, err := tr.RoundTrip(newSendRequest(t, sendURL, strings.NewReader(message)))
		if assert.NoError(t, err) {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			slow <- string(b)
		} else {
			slow <- ""
		}
	}()
	<-held // the slow request carries token-1 and waits for its answer

	assert.Equal(t, okAnswer, sendMessage(t, tr))
	require.Equal(t, int64(2), c.Stats().Fetches, "the other request replaced token-1")

	close(release)
	assert.Equal(t, okAnswer, <-slow)
	assert.Equal(t, int64(2), c.Stats().Fetches, "no fetch for a token already replaced")
	assert.Equal(t, []string{"token-1", "token-1", "token-3", "token-3"}, f.tokensSeen())
}

// trackedReader is a request body without GetBody that records Close.
type trackedReader struct {
	r      io.Reader
	closed atomic.Bool
}

func (b *trackedReader) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *trackedReader) Close() error {
	b.closed.Store(true)
	return nil
}

// pattern returns n bytes that differ from one position to the next.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

func TestTransportReplaysBodyIntact(t *testing.T) {
	payload := pattern(300 << 10)
	bodies := map[string]func() io.Reader{
		"with GetBody":    func() io.Reader { return bytes.NewReader(payload) },
		"without GetBody": func() io.Reader { return &trackedReader{r: bytes.NewReader(payload)} },
	}
	for name, mk := range bodies {
		for _, loopback := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/loopback=%v", name, loopback), func(t *testing.T) {
				f, c, tr := newTransportRig(t)
				target := sendURL
				if loopback {
					f = newBizFake()
					srv := httptest.NewServer(f)
					base := &http.Transport{}
					t.Cleanup(func() {
						base.CloseIdleConnections()
						srv.Close()
					})
					// The server's origin is one the Transport may send the token to.
					f, c, tr = newTransportRigWith(t, f, WithAPIOrigins(srv.URL))
					tr.Base, target = base, srv.URL+"/cgi-bin/message/custom/send"
				}
				warmWithStaleToken(t, f, c)
				src := mk()
				req := newSendRequest(t, target, src)
				assert.Equal(t, name == "with GetBody", req.GetBody != nil)

				resp, err := tr.RoundTrip(req)
				require.NoError(t, err)
				assert.Equal(t, okAnswer, readAll(t, resp))
				calls := f.snapshot()
				require.Len(t, calls, 2)
				for i, call := range calls {
					assert.True(t, bytes.Equal(payload, call.body), "attempt %d body differs (%d bytes)", i+1, len(call.body))
					assert.Equal(t, "application/json", call.header.Get("Content-Type"))
				}
				if tracked, ok := src.(*trackedReader); ok {
					assert.True(t, tracked.closed.Load(), "the caller's body is closed")
				}
			})
		}
	}
}

func TestTransportEmptyBodyIsReplayed(t *testing.T) {
	f, c, tr := newTransportRig(t)
	warmWithStaleToken(t, f, c)
	req, err := http.NewRequest(http.MethodGet, sendURL, nil)
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, okAnswer, readAll(t, resp))
	calls := f.snapshot()
	require.Len(t, calls, 2)
	assert.Empty(t, calls[0].body)
	assert.Empty(t, calls[1].body)
}

func TestTransportNeverSendsNonReplayableBodyEmpty(t *testing.T) {
	payload := pattern(maxReplayBody + 100<<10)
	for _, length := range []int64{-1, int64(len(payload))} {
		t.Run(fmt.Sprintf("ContentLength=%d", length), func(t *testing.T) {
			f, c, tr := newTransportRig(t)
			warmWithStaleToken(t, f, c)
			src := &trackedReader{r: bytes.NewReader(payload)}
			req := newSendRequest(t, sendURL, src)
			req.ContentLength = length
			require.Nil(t, req.GetBody)

			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			assert.Equal(t, rejectedAnswer, readAll(t, resp), "the caller gets the rejection")
			calls := f.snapshot()
			require.Len(t, calls, 1, "sent once")
			assert.True(t, bytes.Equal(payload, calls[0].body), "with the whole body (%d bytes)", len(calls[0].body))
			assert.True(t, src.closed.Load())
			assert.Equal(t, int64(2), c.Stats().Fetches,
				"the token is still invalidated, so that the caller's own retry succeeds")
			assert.Zero(t, f.open.Load())
		})
	}
}

// A GetBody that fails on the retry leaves the caller with the rejection.
func TestTransportFailingGetBodyReturnsRejection(t *testing.T) {
	f, c, tr := newTransportRig(t)
	warmWithStaleToken(t, f, c)
	req := newSendRequest(t, sendURL, strings.NewReader(message))
	req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, rejectedAnswer, readAll(t, resp))
	assert.Len(t, f.snapshot(), 1)
}

func TestTransportStreamsImageResponse(t *testing.T) {
	const size, first = 4 << 20, 64 << 10
	payload := pattern(size)
	firstRead := make(chan struct{})
	var gaveUp atomic.Bool
	var gotToken atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotToken.Store(r.URL.Query().Get("access_token"))
		// No Content-Length: only the media type keeps the Transport from reading.
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(payload[:first])
		w.(http.Flusher).Flush()
		select {
		case <-firstRead:
		case <-r.Context().Done():
			return
		case <-time.After(30 * time.Second): // bounds a failing run; never reached when it works
			gaveUp.Store(true)
			return
		}
		w.Write(payload[first:])
	}))
	base := &http.Transport{}
	t.Cleanup(func() {
		base.CloseIdleConnections()
		srv.Close()
	})
	_, c, tr := newTransportRig(t, WithAPIOrigins(srv.URL))
	tr.Base = base

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/cgi-bin/media/get?media_id=M", nil)
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	switch resp.Body.(type) {
	case *joinedBody, *readBody:
		t.Errorf("the body was read by the Transport: %T", resp.Body)
	}

	head := make([]byte, first)
	_, err = io.ReadFull(resp.Body, head)
	require.NoError(t, err)
	close(firstRead) // only now does the server send the rest
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.False(t, gaveUp.Load(), "RoundTrip returned before the body was complete")
	assert.True(t, bytes.Equal(payload, append(head, rest...)), "bytes arrive intact")
	assert.Equal(t, "token-1", gotToken.Load())
	assert.Equal(t, int64(1), c.Stats().Fetches)
}

func TestTransportLeavesCallerRequestUnmodified(t *testing.T) {
	f, c, tr := newTransportRig(t)
	warmWithStaleToken(t, f, c)
	src := &trackedReader{r: strings.NewReader(message)}
	req := newSendRequest(t, sendURL+"?access_token=mine&x=1", src)
	req.Header.Set("X-Trace", "abc")
	wantURL, wantHeader := req.URL.String(), req.Header.Clone()
	wantLength := req.ContentLength

	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	assert.Equal(t, okAnswer, readAll(t, resp))
	require.Len(t, f.snapshot(), 2, "retried")

	assert.Equal(t, wantURL, req.URL.String())
	assert.Equal(t, "access_token=mine&x=1", req.URL.RawQuery)
	assert.Equal(t, wantHeader, req.Header)
	assert.Same(t, src, req.Body, "the body reader is the caller's")
	assert.Nil(t, req.GetBody)
	assert.Equal(t, wantLength, req.ContentLength)
	assert.Same(t, req, resp.Request, "the response names the caller's request, without the token")
	for _, call := range f.snapshot() {
		assert.Equal(t, "abc", call.header.Get("X-Trace"))
	}
}

func TestTransportReplacesAccessTokenParam(t *testing.T) {
	f, _, tr := newTransportRig(t)
	req := newSendRequest(t, sendURL+"?b=2&access_token=stale&a=x%20y&access_token=again&z", strings.NewReader(message))
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	readAll(t, resp)
	calls := f.snapshot()
	require.Len(t, calls, 1)
	assert.Equal(t, "b=2&access_token=token-1&a=x%20y&z", calls[0].rawQuery)
}

func TestTransportQueryEditing(t *testing.T) {
	cases := map[string]string{
		"":                                  "access_token=T%2B1",
		"a=1":                               "a=1&access_token=T%2B1",
		"access_token=old":                  "access_token=T%2B1",
		"access_token":                      "access_token=T%2B1",
		"a=1&access_token=old&b=2":          "a=1&access_token=T%2B1&b=2",
		"access%5Ftoken=old&b=%zz":          "access_token=T%2B1&b=%zz",
		"a=1&&access_token=x&access_token=": "a=1&access_token=T%2B1",
		"access_tokens=keep":                "access_tokens=keep&access_token=T%2B1",
	}
	for in, want := range cases {
		assert.Equal(t, want, setAccessToken(in, "T+1"), "query %q", in)
	}
}

// transportFunc is a RoundTripper made of a function.
type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// answerWith returns a response with the given body, content type and length.
func answerWith(req *http.Request, body io.ReadCloser, ctype string, length int64) *http.Response {
	h := http.Header{}
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: h, Body: body, ContentLength: length, Request: req}
}

// closeRecorder records Close of a response body.
type closeRecorder struct {
	io.Reader
	closed atomic.Int64
}

func (b *closeRecorder) Close() error {
	b.closed.Add(1)
	return nil
}

func TestTransportInspectedResponseIsReadableFromFirstByte(t *testing.T) {
	large := `{"errcode":0,"data":"` + strings.Repeat("x", 200<<10) + `"}`
	cases := []struct {
		name, body, ctype string
		length            int64
	}{
		{"small json with length", okAnswer, "application/json", int64(len(okAnswer))},
		{"small json without length", okAnswer, "application/json", -1},
		{"text mentioning 40001", `{"errcode":0,"msgid":40001}`, "text/plain", -1},
		{"large text without length", large, "text/plain", -1},
		{"large text with length", large, "text/plain", int64(len(large))},
		{"not json", "<html>40001</html>", "text/plain", -1},
		{"exactly the inspection cap", strings.Repeat(" ", maxInspectBody), "", -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, c, _ := newTransportRig(t)
			body := &closeRecorder{Reader: strings.NewReader(tc.body)}
			var sent atomic.Int64
			tr := &Transport{Client: c, Base: transportFunc(func(req *http.Request) (*http.Response, error) {
				sent.Add(1)
				return answerWith(req, body, tc.ctype, tc.length), nil
			})}
			req, err := http.NewRequest(http.MethodGet, sendURL, nil)
			require.NoError(t, err)
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.body, string(got))
			assert.Zero(t, body.closed.Load())
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, int64(1), body.closed.Load(), "Close closes the original body")
			assert.Equal(t, int64(1), sent.Load())
		})
	}
}

func TestTransportInspectionKeepsBodyReadError(t *testing.T) {
	_, c, _ := newTransportRig(t)
	broken := errors.New("connection reset")
	tr := &Transport{Client: c, Base: transportFunc(func(req *http.Request) (*http.Response, error) {
		body := io.MultiReader(strings.NewReader(`{"errcode":400`), errReader{broken})
		return answerWith(req, io.NopCloser(body), "text/plain", -1), nil
	})}
	req, err := http.NewRequest(http.MethodGet, sendURL, nil)
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	assert.Equal(t, `{"errcode":400`, string(got), "the bytes before the failure")
	assert.ErrorIs(t, err, broken, "then the failure itself")
}

func TestTransportErrorsHideSecretAndToken(t *testing.T) {
	t.Run("no token", func(t *testing.T) {
		up := newUpstream(t, body(`{"errcode":40013,"errmsg":"invalid appid"}`))
		c := newTestClient(t, up)
		var sent atomic.Int64
		tr := &Transport{Client: c, Base: transportFunc(func(*http.Request) (*http.Response, error) {
			sent.Add(1)
			return nil, errors.New("unreachable")
		})}
		src := &trackedReader{r: strings.NewReader(message)}
		resp, err := tr.RoundTrip(newSendRequest(t, sendURL, src))
		require.Error(t, err)
		assert.Nil(t, resp)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, CodeInvalidAppID, apiErr.Code)
		assert.NotContains(t, err.Error(), testSecret)
		assert.NotContains(t, err.Error(), "s3cr3t")
		assert.True(t, src.closed.Load(), "the request body is closed")
		assert.Zero(t, sent.Load())
	})
	t.Run("base quotes the URL", func(t *testing.T) {
		up := newUpstream(t, body(`{"access_token":"tok+en/1","expires_in":7200}`))
		c := newTestClient(t, up)
		refused := errors.New("connection refused")
		base := transportFunc(func(req *http.Request) (*http.Response, error) {
			closeRequestBody(req)
			return nil, fmt.Errorf("dial %s (token %s): %w", req.URL, req.URL.Query().Get("access_token"), refused)
		})
		hc := NewHTTPClient(c, base)
		resp, err := hc.Post(sendURL+"?x=1", "application/json", strings.NewReader(message))
		require.Error(t, err)
		assert.Nil(t, resp)
		assert.ErrorIs(t, err, refused)
		assert.NotContains(t, err.Error(), "tok+en/1")
		assert.NotContains(t, err.Error(), "tok%2Ben%2F1")
		assert.Contains(t, err.Error(), "token:"+fingerprint("tok+en/1"))
		assert.NotContains(t, err.Error(), "s3cr3t")
	})
	t.Run("timeouts stay timeouts", func(t *testing.T) {
		up := newUpstream(t, body(`{"access_token":"tok-9","expires_in":7200}`))
		c := newTestClient(t, up)
		base := transportFunc(func(req *http.Request) (*http.Response, error) {
			return nil, fmt.Errorf("%s: %w", req.URL, context.DeadlineExceeded)
		})
		_, err := NewHTTPClient(c, base).Get(sendURL)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "tok-9")
		var netErr interface{ Timeout() bool }
		require.ErrorAs(t, err, &netErr)
		assert.True(t, netErr.Timeout())
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("nil client", func(t *testing.T) {
		src := &trackedReader{r: strings.NewReader(message)}
		_, err := (&Transport{}).RoundTrip(newSendRequest(t, sendURL, src))
		assert.EqualError(t, err, "wxtoken: Transport has no Client")
		assert.True(t, src.closed.Load())
	})
}

func TestTransportLogsNoFullToken(t *testing.T) {
	var logs logbuf.Buffer
	logger := logs.Logger(slog.LevelDebug)
	// Retried with the guard off, then refused by the default guard.
	f, c, tr := newTransportRig(t, WithLogger(logger))
	warmWithStaleToken(t, f, c)
	assert.Equal(t, okAnswer, sendMessage(t, tr))

	g := newBizFake()
	guarded := newTestClient(t, newUpstream(t, g.issue), WithLogger(logger))
	warmWithStaleToken(t, g, guarded)
	assert.Equal(t, rejectedAnswer, sendMessage(t, &Transport{Client: guarded, Base: g}))

	out := logs.String()
	for _, tok := range []string{"token-1", "token-3"} {
		assert.NotContains(t, out, tok)
	}
	assert.Contains(t, out, `retrying once with another" errcode=40001 token=`+fingerprint("token-1")+" next="+fingerprint("token-3"))
	assert.Contains(t, out, "no other is available")
	assert.NotContains(t, out, "s3cr3t")
}

func TestTransportNewHTTPClient(t *testing.T) {
	f, c, _ := newTransportRig(t)
	warmWithStaleToken(t, f, c)
	hc := NewHTTPClient(c, f)
	assert.Zero(t, hc.Timeout)
	resp, err := hc.Post(sendURL, "application/json", strings.NewReader(message))
	require.NoError(t, err)
	assert.Equal(t, okAnswer, readAll(t, resp))
	assert.Equal(t, []string{"token-1", "token-3"}, f.tokensSeen())
}

// The same recovery against wxtest, the project's fake of WeChat, over loopback.
func TestTransportAgainstWxtest(t *testing.T) {
	srv := wxtest.NewServer(wxtest.WithoutRID())
	base := &http.Transport{}
	t.Cleanup(func() {
		base.CloseIdleConnections()
		srv.Close()
	})
	c, err := New(wxtest.DefaultAppID, wxtest.DefaultSecret, WithBaseURL(srv.URL()),
		WithHTTPClient(&http.Client{Transport: base}), WithStore(NewMemoryStore()),
		WithLogger(quietLogger()), WithRejectGuard(0))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	hc := NewHTTPClient(c, base)

	first, err := c.Get(context.Background())
	require.NoError(t, err)
	require.True(t, srv.RevokeToken(first))
	resp, err := hc.Post(srv.URL()+wxtest.PathCustomSend, "application/json", &trackedReader{r: strings.NewReader(message)})
	require.NoError(t, err)
	assert.Equal(t, okAnswer, readAll(t, resp))
	assert.Equal(t, 2, srv.TokenCalls())
	assert.Equal(t, map[int]int{CodeInvalidCredential: 1}, srv.Rejections())
	reqs := srv.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, first, reqs[0].Query.Get("access_token"))
	assert.Equal(t, srv.CurrentToken(wxtest.DefaultAppID), reqs[1].Query.Get("access_token"))
	for _, r := range reqs {
		assert.Equal(t, message, string(r.Body))
	}

	resp, err = hc.Get(srv.URL() + wxtest.PathMediaGet + "?media_id=M1")
	require.NoError(t, err)
	assert.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
	assert.Equal(t, string(wxtest.MediaContent("M1")), readAll(t, resp))
	assert.Equal(t, 2, srv.TokenCalls())
}

// referenceRejection decodes body the slow, obvious way, for the fuzz target
// to compare rejectionCode with.
func referenceRejection(body []byte) (int, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil {
		return 0, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, false
	}
	n, ok := m["errcode"].(json.Number)
	if !ok {
		return 0, false
	}
	code, err := strconv.Atoi(string(n))
	if err != nil || !isRejectionCode(code) {
		return 0, false
	}
	return code, true
}

func FuzzRejectionCode(f *testing.F) {
	seeds := []string{
		rejectedAnswer,
		`{"errcode":40014,"errmsg":"invalid access_token"}`,
		`{"errcode":42001,"errmsg":"access_token expired rid: 1"}`,
		okAnswer,
		`{"errcode":41001,"errmsg":"access_token missing"}`,
		`{"errcode":"40001"}`,
		`{"errcode":40001.0}`,
		`{"errcode":4.0001e4}`,
		`{"errcode":40001`,
		`{"errcode":40001} trailing`,
		`{"errcode":40001}{"errcode":0}`,
		`{"errcode":0,"errcode":40001}`,
		`{"errcode":40001,"errcode":0}`,
		`{"ERRCODE":40001}`,
		`{"errcod\u0065":40001}`,
		`{"data":{"errcode":40001}}`,
		`[{"errcode":40001}]`,
		`null`,
		" \n{\"errcode\" : 42001 }\t",
		"\xef\xbb\xbf{\"errcode\":40001}",
		"",
		"\x89PNG\r\n\x1a\n40001",
	}
	for _, s := range seeds {
		f.Add([]byte(s), CodeInvalidCredential, "invalid credential")
	}
	f.Add([]byte(okAnswer), 0, "ok")
	f.Add([]byte(`{}`), CodeTokenExpired, "expired \"quoted\" \u00e9")
	f.Fuzz(func(t *testing.T, body []byte, code int, msg string) {
		got, ok := rejectionCode(body)
		want, wantOK := referenceRejection(body)
		if got != want || ok != wantOK {
			t.Fatalf("rejectionCode(%q) = %d, %v; the reference decoding says %d, %v", body, got, ok, want, wantOK)
		}
		if ok && !isRejectionCode(got) {
			t.Fatalf("rejectionCode(%q) = %d, which is not a rejection code", body, got)
		}
		// What WeChat sends is recognised exactly when its errcode is a rejection.
		built, err := json.Marshal(struct {
			ErrCode int    `json:"errcode"`
			ErrMsg  string `json:"errmsg"`
		}{code, msg})
		if err != nil {
			t.Fatal(err)
		}
		got, ok = rejectionCode(built)
		if ok != isRejectionCode(code) || (ok && got != code) {
			t.Fatalf("rejectionCode(%s) = %d, %v", built, got, ok)
		}
	})
}

func FuzzTransportQuery(f *testing.F) {
	for _, q := range []string{"", "a=1", "access_token=old", "a=1&access_token=x&b=2&access_token=y",
		"access%5Ftoken=z&%zz", "&&", "access_token", "x=access_token=1"} {
		f.Add(q, "token-1")
	}
	f.Add("a=1", "t+/=& ?%")
	f.Fuzz(func(t *testing.T, raw, tok string) {
		got := setAccessToken(raw, tok)
		param := "access_token=" + url.QueryEscape(tok)
		var kept, others []string
		firstAt := -1
		for part := range strings.SplitSeq(raw, "&") {
			switch {
			case part == "":
			case isAccessToken(part):
				if firstAt < 0 {
					firstAt = len(kept)
				}
			default:
				kept = append(kept, part)
			}
		}
		parts := strings.Split(got, "&")
		found := 0
		for i, part := range parts {
			if part == "" {
				t.Fatalf("setAccessToken(%q) = %q has an empty pair", raw, got)
			}
			if isAccessToken(part) {
				found++
				if part != param {
					t.Fatalf("setAccessToken(%q) = %q: token pair %q", raw, got, part)
				}
				if firstAt >= 0 && i != firstAt {
					t.Fatalf("setAccessToken(%q) = %q: token moved from pair %d to %d", raw, got, firstAt, i)
				}
				continue
			}
			others = append(others, part)
		}
		if found != 1 {
			t.Fatalf("setAccessToken(%q) = %q has %d access_token pairs", raw, got, found)
		}
		if strings.Join(others, "&") != strings.Join(kept, "&") {
			t.Fatalf("setAccessToken(%q) = %q changed the other pairs", raw, got)
		}
	})
}

// BenchmarkTransport compares a request sent through a Transport with the same
// request, token added by hand, sent straight to the same fake upstream: once
// in-process, where the Transport's own cost shows, and once over loopback.
func BenchmarkTransport(b *testing.B) {
	c := benchClient(b)
	inProcess := transportFunc(func(req *http.Request) (*http.Response, error) {
		closeRequestBody(req)
		h := http.Header{"Content-Type": {"application/json; encoding=utf-8"}}
		return answerWith(req, io.NopCloser(strings.NewReader(okAnswer)), h.Get("Content-Type"), int64(len(okAnswer))), nil
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; encoding=utf-8")
		io.WriteString(w, okAnswer)
	}))
	loopback := &http.Transport{MaxIdleConnsPerHost: 16}
	b.Cleanup(func() {
		loopback.CloseIdleConnections()
		srv.Close()
	})
	upstreams := []struct {
		name   string
		base   http.RoundTripper
		target string
	}{
		{"in-process", inProcess, sendURL},
		{"loopback", loopback, srv.URL + "/cgi-bin/message/custom/send"},
	}
	bodies := []struct {
		name string
		mk   func() io.Reader
	}{
		{"GetBody", func() io.Reader { return strings.NewReader(message) }},
		{"no-GetBody", func() io.Reader { return &trackedReader{r: strings.NewReader(message)} }},
	}
	for _, up := range upstreams {
		for _, bd := range bodies {
			b.Run(up.name+"/"+bd.name+"/plain", func(b *testing.B) {
				benchRoundTrips(b, up.base, up.target+"?access_token=bench", bd.mk)
			})
			b.Run(up.name+"/"+bd.name+"/transport", func(b *testing.B) {
				benchRoundTrips(b, &Transport{Client: c, Base: up.base}, up.target, bd.mk)
			})
		}
	}
}

func benchRoundTrips(b *testing.B, rt http.RoundTripper, target string, mk func() io.Reader) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, mk())
		if err != nil {
			b.Fatal(err)
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
