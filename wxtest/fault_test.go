package wxtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fetch requests a token with ctx and returns the response and its body, or
// the first error met.
func (f *fake) fetch(ctx context.Context) (*http.Response, []byte, error) {
	u := f.base + PathToken + "?" + tokenQuery(DefaultAppID, DefaultSecret).Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestFaultErrcode(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		f.InjectN(2, FaultErrcode(-1, ""))
		f.Inject(FaultErrcode(45011, "slow down"))
		assert.Equal(t, 3, f.PendingFaults())
		for range 2 {
			r := f.token(t)
			assert.Equal(t, -1, r.Errcode)
			assert.True(t, strings.HasPrefix(r.Errmsg, "system error"), r.Errmsg)
		}
		r := f.token(t)
		assert.Equal(t, 45011, r.Errcode)
		assert.True(t, strings.HasPrefix(r.Errmsg, "slow down"), r.Errmsg)
		assert.Zero(t, f.token(t).Errcode, "faults used up")
		assert.Equal(t, map[int]int{-1: 2, 45011: 1}, f.Rejections())
		assert.Equal(t, 4, f.TokenCalls())
		assert.Zero(t, f.PendingFaults())
	})
}

func TestFaultOnPath(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		f.Inject(FaultErrcode(40001, "").On(PathCallbackIP))
		tok := f.mustToken(t) // not hit: other path
		assert.Equal(t, 1, f.PendingFaults())
		assert.Equal(t, 40001, f.callbackIP(t, tok).Errcode)
		assert.Zero(t, f.callbackIP(t, tok).Errcode)
	})
}

func TestFaultStatus(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		f.Inject(FaultStatus(http.StatusBadGateway, ""))
		f.Inject(FaultStatus(http.StatusServiceUnavailable, "busy"))
		resp, b, err := f.fetch(context.Background())
		require.NoError(t, err)
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
		assert.Equal(t, "text/html", resp.Header.Get("Content-Type"))
		assert.Contains(t, string(b), "<h1>502 Bad Gateway</h1>")

		resp, b, err = f.fetch(context.Background())
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "busy", string(b))
		assert.Empty(t, f.CurrentToken(DefaultAppID), "no token issued behind a fault")
	})
}

func TestFaultMalformed(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		f.Inject(FaultMalformed())
		resp, b, err := f.fetch(context.Background())
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/json; encoding=utf-8", resp.Header.Get("Content-Type"))
		assert.NotEmpty(t, b)
		assert.False(t, json.Valid(b), "body %s", b)
	})
}

func TestFaultTruncate(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		f.Inject(FaultTruncate())
		resp, b, err := f.fetch(context.Background())
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Greater(t, resp.ContentLength, int64(len(b)))
		assert.True(t, strings.HasPrefix(string(b), `{"access_token":`), "partial body %q", b)
		_, _, err = f.fetch(context.Background())
		assert.NoError(t, err, "next request served normally")
	})
}

func TestFaultDrop(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		f.Inject(FaultDrop())
		_, _, err := f.fetch(context.Background())
		require.Error(t, err)
		assert.ErrorIs(t, err, io.EOF)
		if f.HTTPServer() == nil {
			assert.ErrorIs(t, err, ErrDropped)
		}
		assert.NotContains(t, err.Error(), "wxtest: drop") // nothing invented on the wire
		_, _, err = f.fetch(context.Background())
		assert.NoError(t, err, "next request served normally")
		assert.Equal(t, 2, f.TokenCalls())
	})
}

func TestFaultDropOnPlainHandlerAborts(t *testing.T) {
	// A ResponseWriter that can neither hijack nor fail the trip: the handler
	// aborts the way net/http understands.
	srv := NewHandler()
	srv.Inject(FaultDrop())
	req, err := http.NewRequest(http.MethodGet, HandlerURL+PathToken, nil)
	require.NoError(t, err)
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() { srv.ServeHTTP(plainWriter{http.Header{}}, req) })
}

type plainWriter struct{ h http.Header }

func (w plainWriter) Header() http.Header       { return w.h }
func (plainWriter) Write(b []byte) (int, error) { return len(b), nil }
func (plainWriter) WriteHeader(int)             {}

func TestFaultDelayHonoursContextOnNetwork(t *testing.T) {
	f := newNetFake(t)
	f.Inject(FaultDelay(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, _, err := f.fetch(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Empty(t, f.CurrentToken(DefaultAppID), "abandoned request issues no token")

	f.Inject(FaultDelay(10 * time.Millisecond))
	start := time.Now()
	_, b, err := f.fetch(context.Background())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 10*time.Millisecond)
	assert.Contains(t, string(b), "access_token")
}

func TestFaultDelayInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := NewHandler()
		defer srv.Close()
		f := &fake{Server: srv, hc: srv.Client(), base: srv.URL()}

		srv.Inject(FaultDelay(10 * time.Second))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, _, err := f.fetch(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 5*time.Second, time.Since(start))

		srv.Inject(FaultErrcode(-1, "").After(10 * time.Second))
		start = time.Now()
		_, b, err := f.fetch(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 10*time.Second, time.Since(start))
		assert.Contains(t, string(b), `"errcode":-1`)
	})
}

func TestDefaultClockInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := NewHandler()
		defer srv.Close()
		f := &fake{Server: srv, hc: srv.Client(), base: srv.URL()}
		tok := f.mustToken(t)
		time.Sleep(2*time.Hour - time.Second)
		assert.Zero(t, f.callbackIP(t, tok).Errcode)
		time.Sleep(time.Second)
		assert.Equal(t, CodeTokenExpired, f.callbackIP(t, tok).Errcode)
	})
}

func TestHoldRelease(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		h := f.Hold(PathToken)
		done := make(chan []byte)
		go func() {
			_, b, _ := f.fetch(context.Background())
			done <- b
		}()
		<-h.Waiting()
		assert.Equal(t, 1, h.Held())
		assert.Equal(t, 1, f.TokenCalls(), "counted on arrival")
		assert.Empty(t, f.CurrentToken(DefaultAppID), "held before any token is issued")
		assert.Equal(t, CodeMissingToken, f.callbackIP(t, "").Errcode, "other paths pass")

		h.Release()
		b := <-done
		assert.Contains(t, string(b), f.CurrentToken(DefaultAppID))
		assert.Zero(t, h.Held())
		h.Release()    // idempotent
		f.mustToken(t) // no longer held
	})
}

func TestHoldHonoursContext(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		h := f.Hold("")
		defer h.Release()
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			_, _, err := f.fetch(ctx)
			errc <- err
		}()
		<-h.Waiting()
		cancel()
		assert.ErrorIs(t, <-errc, context.Canceled)
		assert.Empty(t, f.CurrentToken(DefaultAppID))
	})
}

func TestCloseReleasesHolds(t *testing.T) {
	f := newNetFake(t)
	h := f.Hold(PathToken)
	done := make(chan error)
	go func() {
		_, _, err := f.fetch(context.Background())
		done <- err
	}()
	<-h.Waiting()
	f.Close()
	assert.NoError(t, <-done, "held request completes when the server closes")
}

func TestHoldAfterCloseHoldsNothing(t *testing.T) {
	f := newLocalFake(t)
	f.Close()
	h := f.Hold(PathToken)
	f.mustToken(t)
	assert.Zero(t, h.Held())
	h.Release()
}

func TestResetReleasesHolds(t *testing.T) {
	f := newLocalFake(t)
	h := f.Hold(PathToken)
	done := make(chan error)
	go func() {
		_, _, err := f.fetch(context.Background())
		done <- err
	}()
	<-h.Waiting()
	f.Reset()
	assert.NoError(t, <-done)
}

func TestClearFaults(t *testing.T) {
	f := newLocalFake(t)
	f.InjectN(3, FaultMalformed())
	f.InjectN(0, FaultMalformed())
	assert.Equal(t, 3, f.PendingFaults())
	f.ClearFaults()
	assert.Zero(t, f.PendingFaults())
	f.mustToken(t)
}

func TestInProcessTransportContextAlreadyDone(t *testing.T) {
	f := newLocalFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := f.fetch(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, f.TokenCalls(), "never reached the fake")
}

func TestInProcessTransportRequestIntact(t *testing.T) {
	var got *http.Request
	srv := NewHandler(WithOnBusinessCall(func(r *http.Request, _ []byte) { got = r }))
	defer srv.Close()
	tok := (&fake{Server: srv, hc: srv.Client(), base: srv.URL()}).mustToken(t)
	req, err := http.NewRequest(http.MethodPost, HandlerURL+PathCustomSend+"?access_token="+url.QueryEscape(tok), strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("X-Test", "1")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "wxtest.invalid", got.Host)
	assert.Equal(t, "1", got.Header.Get("X-Test"))
	assert.Equal(t, int64(2), got.ContentLength)
	assert.Equal(t, PathCustomSend+"?access_token="+url.QueryEscape(tok), got.RequestURI)
	assert.Same(t, req, resp.Request)
}
