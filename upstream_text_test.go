package wxtoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// quotedSecret has characters that each escaping spells differently.
const quotedSecret = `s3cr3t<"q">/+=&v`

// quotingUpstream answers every request with status and body, through an
// in-process transport, as a gateway that quotes the request would.
func quotingUpstream(status string, code int, body string) http.RoundTripper {
	return transportFunc(func(req *http.Request) (*http.Response, error) {
		closeRequestBody(req)
		return &http.Response{
			Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/json"}}, ContentLength: -1,
			Body: io.NopCloser(strings.NewReader(body)), Request: req,
		}, nil
	})
}

// quotingClient returns a Client whose upstream answers as quotingUpstream,
// and the buffer its WARN lines go to.
func quotingClient(t *testing.T, rt http.RoundTripper, stable bool) (*Client, *logbuf.Buffer) {
	t.Helper()
	logs := &logbuf.Buffer{}
	opts := []Option{WithHTTPClient(&http.Client{Transport: rt}), WithStore(NewMemoryStore()),
		WithLogger(logs.Logger(slog.LevelDebug))}
	if stable {
		opts = append(opts, WithStableToken())
	}
	c, err := New(testAppID, quotedSecret, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, logs
}

func TestUpstreamErrmsgIsScrubbed(t *testing.T) {
	j, _ := json.Marshal(quotedSecret)
	quotes := map[string]string{
		"plain":         "secret=" + quotedSecret,
		"query-escaped": "/cgi-bin/token?grant_type=client_credential&secret=" + url.QueryEscape(quotedSecret),
		"json-escaped":  `{"secret":` + string(j) + `}`,
	}
	for name, quote := range quotes {
		for _, stable := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stable=%v", name, stable), func(t *testing.T) {
				body, err := json.Marshal(map[string]any{"errcode": 40013, "errmsg": "invalid appid, request was " + quote})
				require.NoError(t, err)
				c, logs := quotingClient(t, quotingUpstream("200 OK", http.StatusOK, string(body)), stable)
				_, err = c.Get(context.Background())
				var apiErr *APIError
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, CodeInvalidAppID, apiErr.Code)
				assert.True(t, strings.HasPrefix(apiErr.Msg, "invalid appid, request was "), apiErr.Msg)
				assert.Contains(t, apiErr.Msg, "REDACTED")
				assertNoSpelling(t, apiErr.Msg, quotedSecret)
				requireCleanChain(t, err, quotedSecret)
				require.Len(t, logs.Warnings(), 1)
				assertNoSpelling(t, logs.String(), quotedSecret)
			})
		}
	}
}

func TestUpstreamStatusLineIsScrubbed(t *testing.T) {
	j, _ := json.Marshal(quotedSecret)
	for _, quote := range []string{quotedSecret, url.QueryEscape(quotedSecret), strings.Trim(string(j), `"`)} {
		status := "502 upstream failed for /cgi-bin/token?secret=" + quote
		c, logs := quotingClient(t, quotingUpstream(status, http.StatusBadGateway, "<html></html>"), false)
		_, err := c.Get(context.Background())
		var st *StatusError
		require.ErrorAs(t, err, &st)
		assert.Equal(t, "502 upstream failed for /cgi-bin/token?secret=REDACTED", st.Status)
		requireCleanChain(t, err, quotedSecret)
		assertNoSpelling(t, logs.String(), quotedSecret)
	}
}

func TestUpstreamTextCannotWriteToATerminal(t *testing.T) {
	body := `{"errcode":-1,"errmsg":"busy\n\u001b[31mlevel=ERROR forged\u202e line\r"}`
	c, _ := quotingClient(t, quotingUpstream("503 busy\x1b[2J", http.StatusOK, body), false)
	_, err := c.Get(context.Background())
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "busy??[31mlevel=ERROR forged? line?", apiErr.Msg)

	c, _ = quotingClient(t, quotingUpstream("503 busy\x1b[2J", http.StatusServiceUnavailable, ""), false)
	_, err = c.Get(context.Background())
	var st *StatusError
	require.ErrorAs(t, err, &st)
	assert.Equal(t, "503 busy?[2J", st.Status)
}

func TestUpstreamErrmsgIsCutAfterScrubbing(t *testing.T) {
	// The secret straddles the cut: cutting first would keep its first half.
	msg := strings.Repeat("x", maxErrMsgLen-5) + quotedSecret + strings.Repeat("y", 100)
	body, err := json.Marshal(map[string]any{"errcode": 40013, "errmsg": msg})
	require.NoError(t, err)
	c, _ := quotingClient(t, quotingUpstream("200 OK", http.StatusOK, string(body)), false)
	_, err = c.Get(context.Background())
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.NotContains(t, apiErr.Msg, quotedSecret[:5])
	assert.Equal(t, strings.Repeat("x", maxErrMsgLen-5)+"REDAC...", apiErr.Msg)

	// A cut never splits a character.
	_, err = decodeTokenResponse([]byte(`{"errcode":1,"errmsg":"x`+strings.Repeat("é", 200)+`"}`), testNow)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "x"+strings.Repeat("é", 127)+"...", apiErr.Msg)
}

func TestUpstreamErrmsgDoesNotQuoteTheAnswersToken(t *testing.T) {
	body := `{"errcode":40001,"errmsg":"ISSUED-TOKEN-123 is not yours","access_token":"ISSUED-TOKEN-123"}`
	_, err := decodeTokenResponse([]byte(body), testNow)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "token:"+fingerprint("ISSUED-TOKEN-123")+" is not yours", apiErr.Msg)
	assert.False(t, errors.Is(err, ErrMalformedResponse))
}
