package wxtoken

// Fault-injection tests: each scenario pushes one thing outside the Client to
// fail the way it fails in production (an upstream that hangs, dribbles,
// resets, floods or answers with a proxy's HTML; a cache folder that turns
// read-only or disappears; a process killed mid-save; a clock that jumped) and
// checks that it ends with a served token or a clear, typed error, that a valid
// token already held is still served, that nothing panics, and that no error
// quotes the app secret. goleak (TestMain) checks that no goroutine is left.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
	"github.com/wxtoken/wxtoken/wxtest"
)

// faultClient returns a Client of wxtest's default account that reaches the
// fake srv in process, which works inside a synctest bubble.
func faultClient(t *testing.T, srv *wxtest.Server, opts ...Option) *Client {
	t.Helper()
	base := []Option{
		WithBaseURL(srv.URL()),
		WithHTTPClient(srv.Client()),
		WithStore(NewMemoryStore()),
		WithLogger(quietLogger()),
	}
	c, err := New(wxtest.DefaultAppID, wxtest.DefaultSecret, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// faultHTTPClient returns a Client of the test account that calls WeChat
// through hc.
func faultHTTPClient(t *testing.T, hc *http.Client, opts ...Option) *Client {
	t.Helper()
	base := []Option{WithHTTPClient(hc), WithStore(NewMemoryStore()), WithLogger(quietLogger())}
	c, err := New(testAppID, testSecret, append(base, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// requireNoSecret fails unless err is an error whose text hides secret in
// every form the request carried it.
func requireNoSecret(t *testing.T, err error, secret string) {
	t.Helper()
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret)
	assert.NotContains(t, err.Error(), url.QueryEscape(secret))
	requireCleanChain(t, err, secret) // and no level of its Unwrap chain either
}

// renewThroughFaults lets c's renewal of first and its retries run into the
// faults injected in srv, checks that first is still served, then clears the
// faults and checks that the next retry brings a new token that srv accepts.
func renewThroughFaults(t *testing.T, srv *wxtest.Server, c *Client, first string) {
	t.Helper()
	advance(6869 * time.Second) // just before the earliest stale point of a two-hour token
	advanceUntil(t, 60, func() bool { return c.Stats().FetchFailures >= 2 })
	assert.Equal(t, first, mustGet(t, c), "the valid token is still served")
	srv.ClearFaults()
	advance(2 * time.Minute)
	second := mustGet(t, c)
	assert.NotEqual(t, first, second)
	assert.Equal(t, wxtest.CodeOK, srv.CheckToken(second))
}

// faultStream is an http.RoundTripper that runs a handler on a goroutine of its
// own and pipes what the handler writes to the client as it is written, as a
// socket would, but in process, so that it also works inside a synctest
// bubble. A Write blocks until the client has read it, so the handler learns
// exactly how much the client consumed; once the client closes the body or the
// request's context ends, the handler's next Write fails.
type faultStream func(http.ResponseWriter, *http.Request)

func (h faultStream) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	pr, pw := io.Pipe()
	w := &streamWriter{header: make(http.Header), pw: pw, ready: make(chan struct{})}
	// The client's side of the "connection" fails with the context's error,
	// as net/http's does; the handler finds out at its next Write.
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	go func() {
		h(w, req)
		w.WriteHeader(http.StatusOK) // a handler that wrote nothing
		// A handler that returns because the client gave up has not finished
		// its body: the client must see the failure, not a clean end.
		if err := ctx.Err(); err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
	}()
	select {
	case <-w.ready:
	case <-ctx.Done():
		stop()
		pw.CloseWithError(ctx.Err())
		return nil, ctx.Err()
	}
	return &http.Response{
		Status:     fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode: w.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        w.sent,
		ContentLength: -1,
		Body:          streamBody{pr, stop},
		Request:       req,
	}, nil
}

type streamWriter struct {
	header http.Header
	sent   http.Header // header as of WriteHeader, what the client sees
	status int
	once   sync.Once
	ready  chan struct{} // closed by WriteHeader
	pw     *io.PipeWriter
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) WriteHeader(code int) {
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.ready)
	})
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

func (w *streamWriter) Flush() {}

type streamBody struct {
	*io.PipeReader
	stop func() bool
}

func (b streamBody) Close() error {
	b.stop()
	return b.PipeReader.Close()
}

// countingWriter counts the bytes its writer accepted.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// --- 1. Upstream timeouts ----------------------------------------------------

func TestFaultUpstreamTimeout(t *testing.T) {
	t.Run("fetch timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			hold := srv.Hold(wxtest.PathToken) // WeChat never answers
			defer hold.Release()
			c := faultClient(t, srv, WithFetchTimeout(2*time.Second))

			start := time.Now()
			tok, err := c.Get(context.Background())
			assert.Equal(t, 2*time.Second, time.Since(start), "the fetch gives up at its timeout")
			assert.Empty(t, tok)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Contains(t, err.Error(), "deadline exceeded")
			assert.True(t, IsRetryable(err))
			assert.False(t, IsPermanent(err))
			requireNoSecret(t, err, wxtest.DefaultSecret)
			assert.Equal(t, int64(1), c.Stats().FetchFailures)
		})
	})

	t.Run("http client timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			hold := srv.Hold(wxtest.PathToken)
			defer hold.Release()
			c := faultClient(t, srv,
				WithHTTPClient(&http.Client{Transport: srv.Transport(), Timeout: time.Second}))

			start := time.Now()
			_, err := c.Get(context.Background())
			assert.Equal(t, time.Second, time.Since(start))
			require.Error(t, err)
			var netErr net.Error
			require.ErrorAs(t, err, &netErr)
			assert.True(t, netErr.Timeout(), "the error says it is a timeout: %v", err)
			// net/http adds "Client.Timeout exceeded" only when its own timer
			// fired before the context's, which fake time leaves to chance.
			assert.Regexp(t, `deadline exceeded|Client\.Timeout exceeded`, err.Error())
			assert.True(t, IsRetryable(err))
			requireNoSecret(t, err, wxtest.DefaultSecret)
			assert.Contains(t, err.Error(), "secret=REDACTED")
		})
	})

	t.Run("cached token served while its renewal times out", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			c := faultClient(t, srv, WithFetchTimeout(5*time.Second))
			first := mustGet(t, c)

			hold := srv.Hold(wxtest.PathToken)
			defer hold.Release()
			advance(6901 * time.Second) // past the stale point: the renewal starts and hangs
			select {
			case <-hold.Waiting():
			default:
				require.FailNow(t, "the renewal did not start")
			}
			for i := 0; c.Stats().FetchFailures == 0; i++ {
				require.Less(t, i, 10, "the renewal never timed out")
				assert.Equal(t, first, mustGet(t, c), "the valid token is served meanwhile")
				advance(time.Second)
			}
			assert.Equal(t, first, mustGet(t, c))
			assert.Equal(t, int64(1), c.Stats().Waits, "only the cold start waited")

			hold.Release()
			advance(time.Minute) // the retry after the backoff succeeds
			second := mustGet(t, c)
			assert.NotEqual(t, first, second)
			assert.Equal(t, wxtest.CodeOK, srv.CheckToken(second))
			assert.Equal(t, int64(1), c.Stats().Waits)
		})
	})
}

// --- 2. A slow body ---------------------------------------------------------

// dribble answers with token-N, sending the headers at once and then, while
// slow is set, one byte of the body a second, until the client gives up.
func dribble(slow *atomic.Bool) faultStream {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		body := fmt.Sprintf(`{"access_token":"token-%d","expires_in":7200}`, n.Add(1))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if !slow.Load() {
			_, _ = io.WriteString(w, body)
			return
		}
		for i := range len(body) {
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			}
			if _, err := w.Write([]byte{body[i]}); err != nil {
				return
			}
		}
	}
}

func TestFaultSlowBody(t *testing.T) {
	t.Run("beyond the http client timeout, then recovery", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var slow atomic.Bool
			slow.Store(true)
			c := faultHTTPClient(t, &http.Client{Transport: dribble(&slow), Timeout: 5 * time.Second})

			start := time.Now()
			_, err := c.Get(context.Background())
			assert.Equal(t, 5*time.Second, time.Since(start), "the read gives up at the client timeout")
			require.Error(t, err)
			assert.NotErrorIs(t, err, ErrMalformedResponse, "a timeout is the network's fault")
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Regexp(t, `deadline exceeded|Client\.Timeout`, err.Error())
			assert.True(t, IsRetryable(err))
			requireNoSecret(t, err, testSecret)
			assert.NotContains(t, err.Error(), "token-1", "the partial body is not quoted")

			slow.Store(false)
			advance(2 * time.Second) // past the backoff
			assert.Equal(t, "token-2", mustGet(t, c))

			// A renewal that dribbles keeps the valid token served, then succeeds.
			slow.Store(true)
			failures := c.Stats().FetchFailures
			advance(6869 * time.Second)
			advanceUntil(t, 60, func() bool {
				assert.Equal(t, "token-2", mustGet(t, c))
				return c.Stats().FetchFailures >= failures+2 // the renewal and a retry timed out
			})
			slow.Store(false)
			advance(2 * time.Minute)
			renewed := mustGet(t, c)
			assert.NotEqual(t, "token-2", renewed)
			assert.True(t, strings.HasPrefix(renewed, "token-"), renewed)
		})
	})

	t.Run("bounded by the fetch timeout alone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var slow atomic.Bool
			slow.Store(true)
			// No HTTP timeout at all: the fetch timeout still ends the read.
			c := faultHTTPClient(t, &http.Client{Transport: dribble(&slow)}, WithFetchTimeout(3*time.Second))
			start := time.Now()
			_, err := c.Get(context.Background())
			assert.Equal(t, 3*time.Second, time.Since(start))
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.True(t, IsRetryable(err))
			requireNoSecret(t, err, testSecret)
		})
	})
}

// --- 3. A reset connection --------------------------------------------------

func TestFaultResetConnection(t *testing.T) {
	t.Run("dropped in process, cold and during renewal", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			c := faultClient(t, srv)
			srv.Inject(wxtest.FaultDrop().On(wxtest.PathToken))
			_, err := c.Get(context.Background())
			require.ErrorIs(t, err, wxtest.ErrDropped)
			assert.True(t, IsRetryable(err))
			requireNoSecret(t, err, wxtest.DefaultSecret)

			advance(2 * time.Second) // past the backoff
			first := mustGet(t, c)

			srv.InjectN(1000, wxtest.FaultDrop().On(wxtest.PathToken))
			renewThroughFaults(t, srv, c, first) // the renewal and its retries meet drops
		})
	})

	t.Run("wxtest server drops the connection", func(t *testing.T) {
		srv := wxtest.NewServer()
		defer srv.Close()
		srv.Inject(wxtest.FaultDrop().On(wxtest.PathToken))
		// A fresh connection per request: Go would silently retry a GET whose
		// reused connection dropped.
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		c := faultClient(t, srv, WithHTTPClient(&http.Client{Transport: tr, Timeout: 5 * time.Second}))
		_, err := c.Get(context.Background())
		require.Error(t, err)
		assert.ErrorIs(t, err, io.EOF)
		assert.True(t, IsRetryable(err))
		requireNoSecret(t, err, wxtest.DefaultSecret)
		assert.Contains(t, err.Error(), "secret=REDACTED")
		assert.Equal(t, 1, srv.TokenCalls())
	})

	t.Run("tcp reset", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		served := make(chan struct{})
		go func() {
			defer close(served)
			conn, err := ln.Accept()
			_ = ln.Close() // one connection only: a retry would be refused, not hang
			if err != nil {
				return
			}
			_, _ = http.ReadRequest(bufio.NewReader(conn)) // the request has arrived whole
			_ = conn.(*net.TCPConn).SetLinger(0)           // so that Close sends RST
			_ = conn.Close()
		}()
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		c := faultHTTPClient(t, &http.Client{Transport: tr, Timeout: 5 * time.Second},
			WithBaseURL("http://"+ln.Addr().String()))
		_, err = c.Get(context.Background())
		<-served
		require.Error(t, err)
		assert.True(t, errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF), "got %v", err)
		assert.True(t, IsRetryable(err))
		requireNoSecret(t, err, testSecret)
		assert.NotContains(t, err.Error(), "s3cr3t")
		assert.Contains(t, err.Error(), "secret=REDACTED")
	})
}

// --- 4. A 1 GB body ---------------------------------------------------------

// floodBody writes a token answer that never ends: `{"access_token":"aaaa...`
// up to 1 GiB, generated a chunk at a time, counting what was accepted. It
// stops at the first failed write.
func floodBody(w io.Writer, written *atomic.Int64) {
	cw := countingWriter{w, written}
	if _, err := io.WriteString(cw, `{"access_token":"`); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("a"), 32<<10)
	for written.Load() < 1<<30 {
		if _, err := cw.Write(chunk); err != nil {
			return
		}
	}
}

func TestFaultHugeBody(t *testing.T) {
	t.Run("in process, every byte counted", func(t *testing.T) {
		var written atomic.Int64
		done := make(chan struct{})
		hc := &http.Client{Transport: faultStream(func(w http.ResponseWriter, r *http.Request) {
			defer close(done)
			w.Header().Set("Content-Type", "application/json")
			floodBody(w, &written)
		})}
		c := faultHTTPClient(t, hc)

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := c.Get(context.Background())
		runtime.ReadMemStats(&after)
		<-done
		require.ErrorIs(t, err, ErrMalformedResponse)
		assert.Contains(t, err.Error(), "larger than")
		assert.True(t, IsRetryable(err))
		requireNoSecret(t, err, testSecret)
		assert.NotContains(t, err.Error(), "aaaa", "the body is not quoted")
		assert.LessOrEqual(t, written.Load(), int64(maxResponseBytes+1),
			"the client read no more than the cap before it hung up")
		assert.Greater(t, written.Load(), int64(maxResponseBytes), "the client read up to the cap")
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(32<<20), "memory stays bounded")
	})

	t.Run("real server", func(t *testing.T) {
		var written, read atomic.Int64
		done := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(done)
			w.Header().Set("Content-Type", "application/json")
			floodBody(w, &written)
		}))
		defer srv.Close()
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		counted := transportFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body = struct {
					io.Reader
					io.Closer
				}{io.TeeReader(resp.Body, countingWriter{io.Discard, &read}), resp.Body}
			}
			return resp, err
		})
		c := faultHTTPClient(t, &http.Client{Transport: counted, Timeout: 5 * time.Second},
			WithBaseURL(srv.URL))

		start := time.Now()
		_, err := c.Get(context.Background())
		require.ErrorIs(t, err, ErrMalformedResponse)
		assert.Less(t, time.Since(start), 2*time.Second, "rejected quickly")
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			require.FailNow(t, "the server kept streaming after the client hung up")
		}
		assert.LessOrEqual(t, read.Load(), int64(maxResponseBytes+1))
		// The server got ahead of the client by no more than the sockets' buffers.
		assert.Less(t, written.Load(), int64(64<<20))
	})
}

// --- 5. HTML error pages ----------------------------------------------------

const nginxMaintenance = "<html>\r\n<head><title>Maintenance</title></head>\r\n" +
	"<body><center><h1>Back soon</h1></center><hr><center>nginx</center></body>\r\n</html>\r\n"

func TestFaultHTMLErrorPages(t *testing.T) {
	for _, status := range []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := wxtest.NewHandler()
				c := faultClient(t, srv)
				srv.Inject(wxtest.FaultStatus(status, "").On(wxtest.PathToken)) // nginx's HTML page
				_, err := c.Get(context.Background())
				var st *StatusError
				require.ErrorAs(t, err, &st)
				assert.Equal(t, status, st.StatusCode)
				assert.Contains(t, err.Error(), strconv.Itoa(status))
				assert.True(t, IsRetryable(err))
				assert.False(t, IsPermanent(err))
				assert.NotContains(t, err.Error(), "<html")
				requireNoSecret(t, err, wxtest.DefaultSecret)

				advance(2 * time.Second) // past the backoff
				assert.Equal(t, wxtest.CodeOK, srv.CheckToken(mustGet(t, c)))
			})
		})
	}

	t.Run("200 with an HTML body", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			c := faultClient(t, srv)
			srv.Inject(wxtest.FaultStatus(http.StatusOK, nginxMaintenance).On(wxtest.PathToken))
			_, err := c.Get(context.Background())
			require.ErrorIs(t, err, ErrMalformedResponse)
			assert.True(t, IsRetryable(err))
			assert.NotContains(t, err.Error(), "nginx")
			requireNoSecret(t, err, wxtest.DefaultSecret)
			advance(2 * time.Second)
			assert.Equal(t, wxtest.CodeOK, srv.CheckToken(mustGet(t, c)))
		})
	})

	t.Run("renewal meets HTML pages and keeps the token", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			c := faultClient(t, srv)
			first := mustGet(t, c)
			srv.Inject(wxtest.FaultStatus(http.StatusOK, nginxMaintenance).On(wxtest.PathToken))
			srv.InjectN(1000, wxtest.FaultStatus(http.StatusServiceUnavailable, "").On(wxtest.PathToken))
			renewThroughFaults(t, srv, c, first) // the renewal and its retries meet the pages
		})
	})
}

// --- 6. FileStore folder read-only or replaced by a file --------------------

// fileStoreClient returns a Client on a FileStore in a fresh folder, whose log
// is collected, and which renews at once when asked (WithRejectGuard(0)).
func fileStoreClient(t *testing.T, up upstream) (*Client, string, *logbuf.Buffer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	fs, err := NewFileStore(dir)
	require.NoError(t, err)
	logs := &logbuf.Buffer{}
	c := newTestClient(t, up, WithStore(fs), WithLogger(logs.Logger(slog.LevelDebug)), WithRejectGuard(0))
	return c, dir, logs
}

// replaceWithFile makes dir a regular file.
func replaceWithFile(t *testing.T, dir string) []byte {
	t.Helper()
	content := []byte("I am not a folder\n")
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.WriteFile(dir, content, 0o600))
	return content
}

// checkFileStoreLogs checks that saving failed with a warning and that the
// log reveals neither the secret nor a full token.
func checkFileStoreLogs(t *testing.T, c *Client, logs *logbuf.Buffer) {
	t.Helper()
	c.waitIdle() // saving comes after the callers have their token
	assert.Contains(t, strings.Join(logs.Warnings(), "\n"), "saving the token failed; serving it from memory")
	all := logs.String()
	assert.NotContains(t, all, "s3cr3t")
	assert.NotContains(t, all, "token-1")
	assert.NotContains(t, all, "token-2")
}

func TestFaultFileStoreReadOnly(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores folder permissions; TestFaultFileStoreReplacedByFile makes the folder unusable instead")
	}
	up := newUpstream(t, tokens(t))
	c, dir, logs := fileStoreClient(t, up)
	require.Equal(t, "token-1", mustGet(t, c))
	c.waitIdle() // the token is saved after it is handed out
	require.NoError(t, os.Chmod(dir, 0o500))
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) }) // so that TempDir can remove it

	assert.Equal(t, "token-1", mustGet(t, c), "the cached token is served")
	next, err := c.Invalidate(context.Background(), "token-1")
	require.NoError(t, err)
	assert.Equal(t, "token-2", next, "a renewal still brings a token")
	assert.Equal(t, "token-2", mustGet(t, c))
	assert.Equal(t, 2, up.GetTotalCallCount())
	checkFileStoreLogs(t, c, logs)

	// What the folder held stays intact and readable.
	fs, err := NewFileStore(dir)
	require.NoError(t, err)
	saved, err := fs.Load(context.Background(), testAppID)
	require.NoError(t, err)
	assert.Equal(t, "token-1", saved.AccessToken)
}

func TestFaultFileStoreReplacedByFile(t *testing.T) {
	t.Run("after the first token", func(t *testing.T) {
		up := newUpstream(t, tokens(t))
		c, dir, logs := fileStoreClient(t, up)
		require.Equal(t, "token-1", mustGet(t, c))
		c.waitIdle() // the token is saved after it is handed out
		content := replaceWithFile(t, dir)

		for range 10 {
			assert.Equal(t, "token-1", mustGet(t, c), "the cached token is served")
		}
		next, err := c.Invalidate(context.Background(), "token-1")
		require.NoError(t, err)
		assert.Equal(t, "token-2", next)
		assert.Equal(t, "token-2", mustGet(t, c))
		assert.Equal(t, 2, up.GetTotalCallCount())
		checkFileStoreLogs(t, c, logs)
		assert.Contains(t, strings.Join(logs.Warnings(), "\n"), "fetching without its lock")

		got, err := os.ReadFile(dir)
		require.NoError(t, err)
		assert.Equal(t, content, got, "the file in the folder's place is left alone")
	})

	t.Run("before the first token", func(t *testing.T) {
		up := newUpstream(t, tokens(t))
		c, dir, logs := fileStoreClient(t, up)
		replaceWithFile(t, dir)
		assert.Equal(t, "token-1", mustGet(t, c), "fetched although nothing can be stored")
		assert.Equal(t, "token-1", mustGet(t, c))
		assert.Equal(t, 1, up.GetTotalCallCount())
		checkFileStoreLogs(t, c, logs)
	})
}

// --- 7. SIGKILL while saving in a loop --------------------------------------

// Environment of a TestHelperSaveLoop child.
const (
	saveLoopDirEnv = "WXTOKEN_FAULT_SAVELOOP_DIR"
	saveLoopRunEnv = "WXTOKEN_FAULT_SAVELOOP_RUN"
	saveLoopLine   = "saved "
)

// TestHelperSaveLoop is not a test of its own: TestFaultKilledWhileSaving runs
// the test binary again with only this test, which saves tokens to a
// FileStore as fast as it can, printing "saved N" after each, until killed.
func TestHelperSaveLoop(t *testing.T) {
	dir, run := os.Getenv(saveLoopDirEnv), os.Getenv(saveLoopRunEnv)
	if dir == "" {
		t.Skip("runs only as a child process of TestFaultKilledWhileSaving")
	}
	st, err := NewFileStore(dir)
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second) // the parent kills us long before
	for i := 1; time.Now().Before(deadline); i++ {
		tok := Token{
			AccessToken: fmt.Sprintf("loop-%s-%d", run, i),
			ExpiresIn:   7200,
			CreateTime:  time.Now().Add(-time.Hour),
		}
		require.NoError(t, st.Save(context.Background(), testAppID, tok))
		fmt.Printf("%s%d\n", saveLoopLine, i)
	}
	t.Error("was never killed")
}

// killSaverAfter runs a TestHelperSaveLoop child on dir, kills it with SIGKILL
// once it has reported target saves, and returns the last save it reported.
func killSaverAfter(t *testing.T, dir string, run, target int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSaveLoop$", "-test.count=1")
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), saveLoopDirEnv+"="+dir, saveLoopRunEnv+"="+strconv.Itoa(run), "GORACE="+gorace)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waited := false
	defer func() {
		if !waited { // failed early: do not leave the child running
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	last, killed := 0, false
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(lines.Text(), saveLoopLine))
		if err != nil || !strings.HasPrefix(lines.Text(), saveLoopLine) {
			continue
		}
		last = n
		if n >= target && !killed {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	err = cmd.Wait()
	waited = true
	require.True(t, killed, "child ended after %d saves without being killed: %v; stderr:\n%s", last, err, stderr.String())
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child was not killed: %v\n%s", err, stderr.String())
	return last
}

func TestFaultKilledWhileSaving(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	// The files a FileStore may leave: the record, its save lock (the folder's
	// .lock on Linux), and the temporary files of saves that a kill interrupted.
	allowed := regexp.MustCompile(`^(` + regexp.QuoteMeta(testAppID) + `\.json|\.lock|\.` +
		regexp.QuoteMeta(testAppID) + `\.save\.lock|\.` + regexp.QuoteMeta(testAppID) + `\.\d+\.tmp)$`)

	// Several kill points, each run restarting on what the previous one left.
	for run, target := range []int{1, 4, 15, 40, 90} {
		last := killSaverAfter(t, dir, run, target)

		st, err := NewFileStore(dir)
		require.NoError(t, err)
		tok, err := st.Load(ctx, testAppID)
		require.NoError(t, err, "run %d: the record must parse after SIGKILL", run)
		require.NoError(t, tok.Validate())
		var gotRun, gotSave int
		_, err = fmt.Sscanf(tok.AccessToken, "loop-%d-%d", &gotRun, &gotSave)
		require.NoError(t, err, "run %d: unexpected record", run)
		assert.Equal(t, run, gotRun)
		// The last save reported, or the one under way when the kill came.
		assert.Contains(t, []int{last, last + 1}, gotSave, "run %d: killed after save %d", run, last)

		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			assert.Regexp(t, allowed, e.Name(), "run %d left an unexpected file", run)
		}
	}

	// A Client on the folder serves the surviving token without fetching, and a
	// later save replaces it despite leftovers and the dead child's lock.
	st, err := NewFileStore(dir)
	require.NoError(t, err)
	up := newUpstream(t, tokens(t))
	c := newTestClient(t, up, WithStore(st))
	assert.True(t, strings.HasPrefix(mustGet(t, c), "loop-4-"))
	assert.Zero(t, up.GetTotalCallCount())
	saveCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, st.Save(saveCtx, testAppID, Token{AccessToken: "after", ExpiresIn: 7200, CreateTime: time.Now()}))
	tok, err := st.Load(ctx, testAppID)
	require.NoError(t, err)
	assert.Equal(t, "after", tok.AccessToken)
}

// --- 8. A clock that jumped -------------------------------------------------

// storeWith returns a MemoryStore holding tok under the test account's key.
func storeWith(t *testing.T, tok Token) *MemoryStore {
	t.Helper()
	st := NewMemoryStore()
	require.NoError(t, st.Save(context.Background(), testAppID, tok))
	return st
}

func countingTokens() *script {
	return &script{reply: func(n int64) (*http.Response, error) { return okToken(n, 7200) }}
}

func TestFaultClockJumps(t *testing.T) {
	// The clock was ahead when the token was saved and has since been put
	// back: the record claims to have been obtained an hour from now.
	t.Run("token dated ahead is not served past its ExpiresAt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			future := Token{AccessToken: "future", ExpiresIn: 7200, CreateTime: time.Now().Add(time.Hour)}
			s := countingTokens()
			c := newTestClient(t, newUpstream(t, s.responder), WithStore(storeWith(t, future)))
			// Serving it while now < ExpiresAt, or distrusting it and fetching,
			// are both fine; serving it past ExpiresAt is not.
			_, err := c.Get(context.Background())
			require.NoError(t, err)
			advance(time.Until(future.ExpiresAt()))
			tok := mustGet(t, c)
			assert.NotEqual(t, "future", tok, "renewed by its ExpiresAt")
			assert.True(t, strings.HasPrefix(tok, "token-"), tok)
			assert.LessOrEqual(t, s.calls.Load(), int64(2))
		})
	})

	t.Run("token dated ahead can be invalidated", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			future := Token{AccessToken: "future", ExpiresIn: 7200, CreateTime: time.Now().Add(time.Hour)}
			s := countingTokens()
			store := storeWith(t, future)
			c := newTestClient(t, newUpstream(t, s.responder), WithStore(store))
			_, err := c.Get(context.Background()) // "future", or a token fetched instead
			require.NoError(t, err)
			advance(DefaultRejectGuard + time.Second) // clear of the reject guard by any clock

			// WeChat rejects it (it really expired an hour ago): at most one
			// fetch replaces it, here and for every process sharing the store.
			next, err := c.Invalidate(context.Background(), "future")
			require.NoError(t, err)
			assert.Equal(t, "token-1", next)
			assert.Equal(t, "token-1", mustGet(t, c))
			assert.Equal(t, int64(1), s.calls.Load())
			c.waitIdle() // the token is handed out before it is saved
			saved, err := store.Load(context.Background(), testAppID)
			require.NoError(t, err)
			assert.Equal(t, "token-1", saved.AccessToken, "other processes stop loading the rejected token")
		})
	})

	t.Run("token dated a year ahead is not served for a year", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			far := Token{AccessToken: "far-future", ExpiresIn: 7200, CreateTime: time.Now().Add(365 * 24 * time.Hour)}
			s := countingTokens()
			c := newTestClient(t, newUpstream(t, s.responder), WithStore(storeWith(t, far)))
			_, err := c.Get(context.Background())
			require.NoError(t, err)
			// No token WeChat issued lives longer than its expires_in from now.
			advance(7200*time.Second + time.Second)
			assert.NotEqual(t, "far-future", mustGet(t, c))
		})
	})

	// The clock jumped forward while the process was down: the record expired
	// long ago.
	t.Run("token long expired leads to one fetch", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			old := Token{AccessToken: "old", ExpiresIn: 7200, CreateTime: time.Now().Add(-10 * time.Hour)}
			s := countingTokens()
			store := storeWith(t, old)
			c := newTestClient(t, newUpstream(t, s.responder), WithStore(store))
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() { assert.Equal(t, "token-1", mustGet(t, c)) })
			}
			wg.Wait()
			assert.Equal(t, int64(1), s.calls.Load())
			c.waitIdle() // the token is handed out before it is saved
			saved, err := store.Load(context.Background(), testAppID)
			require.NoError(t, err)
			assert.Equal(t, "token-1", saved.AccessToken)
		})
	})
}

// A host suspended past the token's expiry: on waking, Get serves a valid
// token after at most one fetch, never the expired one.
func TestFaultSuspendedPastExpiry(t *testing.T) {
	t.Run("background refresh on", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			c := faultClient(t, srv)
			first := mustGet(t, c)
			advance(3 * time.Hour) // past the first token's expiry (2 h)
			assert.NotEqual(t, wxtest.CodeOK, srv.CheckToken(first))
			assert.Equal(t, 2, srv.TokenCalls(), "one renewal in the 3 h, not one per timer or caller")
			got := mustGet(t, c)
			assert.Equal(t, wxtest.CodeOK, srv.CheckToken(got))
			assert.Equal(t, 2, srv.TokenCalls())
			assert.Equal(t, int64(1), c.Stats().Waits, "the renewal was ready before anyone asked")
		})
	})

	t.Run("background refresh off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := wxtest.NewHandler()
			c := faultClient(t, srv, WithBackgroundRefresh(false))
			first := mustGet(t, c)
			advance(10 * time.Hour)
			assert.Equal(t, 1, srv.TokenCalls(), "nothing ran while suspended")
			var wg sync.WaitGroup
			got := make([]string, 20)
			for i := range got {
				wg.Go(func() { got[i] = mustGet(t, c) })
			}
			wg.Wait()
			assert.Equal(t, 2, srv.TokenCalls(), "one fetch on waking")
			for _, tok := range got {
				assert.NotEqual(t, first, tok)
				assert.Equal(t, wxtest.CodeOK, srv.CheckToken(tok))
			}
		})
	})
}
