package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/wxtest"
)

// hiddenCause prints nothing of the error it wraps, as some libraries'
// errors do: only a walk down the chain finds what the cause quotes.
type hiddenCause struct{ cause error }

func (e hiddenCause) Error() string { return "request failed" }
func (e hiddenCause) Unwrap() error { return e.cause }

// dialRefused is the error a dialer returns, as net/http wraps it.
func dialRefused(rawURL string) error {
	return fmt.Errorf("dial for %s: %w", rawURL, &net.OpError{Op: "dial", Net: "tcp",
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
}

func TestFetchErrorChainsHoldNoSecret(t *testing.T) {
	cases := map[string]func(req *http.Request) error{
		"a level quotes the URL": func(req *http.Request) error { return dialRefused(req.URL.String()) },
		"a hidden level quotes the URL": func(req *http.Request) error {
			return hiddenCause{dialRefused(req.URL.String())}
		},
		"a joined level quotes the secret": func(req *http.Request) error {
			return errors.Join(io.EOF, fmt.Errorf("for secret=%s: %w", testSecret, context.DeadlineExceeded))
		},
	}
	for name, fail := range cases {
		t.Run(name, func(t *testing.T) {
			up := transportFunc(func(req *http.Request) (*http.Response, error) { return nil, fail(req) })
			c := faultHTTPClient(t, &http.Client{Transport: up})
			_, err := c.Get(context.Background())
			requireCleanChain(t, err, testSecret)
			assert.True(t, IsRetryable(err))
			// What callers inspect is still there.
			var ue interface{ Unwrap() error }
			require.ErrorAs(t, err, &ue)
			switch name {
			case "a joined level quotes the secret":
				assert.ErrorIs(t, err, io.EOF)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.Contains(t, err.Error(), "secret=REDACTED")
			default:
				assert.ErrorIs(t, err, syscall.ECONNREFUSED)
				var opErr *net.OpError
				require.ErrorAs(t, err, &opErr)
				assert.Equal(t, "dial", opErr.Op)
				var netErr net.Error
				require.ErrorAs(t, err, &netErr)
				assert.False(t, netErr.Timeout())
			}
		})
	}
}

func TestTransportErrorChainsHoldNoToken(t *testing.T) {
	const tok = "tok+en/1-full-token"
	cases := map[string]func(req *http.Request) error{
		"a level quotes the URL": func(req *http.Request) error { return dialRefused(req.URL.String()) },
		"a hidden level quotes the URL": func(req *http.Request) error {
			return hiddenCause{dialRefused(req.URL.String())}
		},
		"a timeout quotes the token": func(req *http.Request) error {
			return fmt.Errorf("token %s: %w", req.URL.Query().Get("access_token"), context.DeadlineExceeded)
		},
	}
	for name, fail := range cases {
		t.Run(name, func(t *testing.T) {
			c := newTestClient(t, newUpstream(t, body(`{"access_token":"`+tok+`","expires_in":7200}`)))
			base := transportFunc(func(req *http.Request) (*http.Response, error) {
				closeRequestBody(req)
				return nil, fail(req)
			})
			// Directly and through an http.Client, which wraps in *url.Error.
			_, direct := (&Transport{Client: c, Base: base}).RoundTrip(newSendRequest(t, sendURL, strings.NewReader(message)))
			_, viaClient := NewHTTPClient(c, base).Get(sendURL)
			for _, err := range []error{direct, viaClient} {
				requireCleanChain(t, err, tok)
				if name != "a hidden level quotes the URL" {
					assert.Contains(t, err.Error(), "token:"+fingerprint(tok))
				}
				if name == "a timeout quotes the token" {
					assert.ErrorIs(t, err, context.DeadlineExceeded)
					var timeout interface{ Timeout() bool }
					require.ErrorAs(t, err, &timeout)
					assert.True(t, timeout.Timeout())
				} else {
					assert.ErrorIs(t, err, syscall.ECONNREFUSED)
					var opErr *net.OpError
					assert.ErrorAs(t, err, &opErr)
				}
			}
		})
	}
}

// TestFaultErrorChainsHoldNoSecret produces the errors of the fault tests
// again (an upstream that hangs, drops, resets, floods or answers with a
// proxy's page) and walks every level of each.
func TestFaultErrorChainsHoldNoSecret(t *testing.T) {
	inBubble := map[string]func(t *testing.T) error{
		"fetch timeout": func(t *testing.T) error {
			srv := wxtest.NewHandler()
			hold := srv.Hold(wxtest.PathToken)
			defer hold.Release()
			_, err := faultClient(t, srv, WithFetchTimeout(2*time.Second)).Get(context.Background())
			return err
		},
		"http client timeout": func(t *testing.T) error {
			srv := wxtest.NewHandler()
			hold := srv.Hold(wxtest.PathToken)
			defer hold.Release()
			c := faultClient(t, srv, WithHTTPClient(&http.Client{Transport: srv.Transport(), Timeout: time.Second}))
			_, err := c.Get(context.Background())
			return err
		},
		"dropped": func(t *testing.T) error {
			srv := wxtest.NewHandler()
			srv.Inject(wxtest.FaultDrop().On(wxtest.PathToken))
			_, err := faultClient(t, srv).Get(context.Background())
			return err
		},
		"502 page": func(t *testing.T) error {
			srv := wxtest.NewHandler()
			srv.Inject(wxtest.FaultStatus(http.StatusBadGateway, "").On(wxtest.PathToken))
			_, err := faultClient(t, srv).Get(context.Background())
			return err
		},
		"200 html": func(t *testing.T) error {
			srv := wxtest.NewHandler()
			srv.Inject(wxtest.FaultStatus(http.StatusOK, nginxMaintenance).On(wxtest.PathToken))
			_, err := faultClient(t, srv).Get(context.Background())
			return err
		},
	}
	for name, produce := range inBubble {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				requireCleanChain(t, produce(t), wxtest.DefaultSecret)
			})
		})
	}

	t.Run("huge body", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"access_token":"`+strings.Repeat("a", maxResponseBytes)+`"}`)
		}))
		defer srv.Close()
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		_, err := faultHTTPClient(t, &http.Client{Transport: tr}, WithBaseURL(srv.URL)).Get(context.Background())
		require.ErrorIs(t, err, ErrMalformedResponse)
		requireCleanChain(t, err, testSecret)
	})

	t.Run("connection closed mid-answer", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = conn.Read(buf)
			_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"access")
			_ = conn.Close()
		}()
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		_, err = faultHTTPClient(t, &http.Client{Transport: tr}, WithBaseURL("http://"+ln.Addr().String())).
			Get(context.Background())
		require.Error(t, err)
		requireCleanChain(t, err, testSecret)
	})

	t.Run("nothing listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		_, err = faultHTTPClient(t, &http.Client{Transport: tr}, WithBaseURL("http://"+addr)).Get(context.Background())
		assert.ErrorIs(t, err, syscall.ECONNREFUSED)
		requireCleanChain(t, err, testSecret)
		assert.Contains(t, err.Error(), "secret=REDACTED")
	})
}
