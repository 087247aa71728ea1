package wxtoken

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A business API's 40001 is a rejected token, not a wrong secret: it is
// IsTokenRejected and not IsPermanent (the token endpoint's 40001 is the
// other way round).
func TestCheckBodyClassifiesByOrigin(t *testing.T) {
	for _, tc := range []struct {
		body                         string
		rejected, permanent, retries bool
	}{
		{`{"errcode":40001,"errmsg":"invalid credential"}`, true, false, true},
		{`{"errcode":40014,"errmsg":"invalid access_token"}`, true, false, true},
		{`{"errcode":42001,"errmsg":"access_token expired"}`, true, false, true},
		{`{"errcode":-1,"errmsg":"system error"}`, false, false, true},
		{`{"errcode":45011,"errmsg":"api minute-quota reach limit"}`, false, false, true},
		{`{"errcode":40003,"errmsg":"invalid openid"}`, false, false, false},
		{`{"errcode":45009,"errmsg":"reach max api daily quota limit"}`, false, false, false},
	} {
		err := CheckBody([]byte(tc.body))
		require.Error(t, err, tc.body)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, tc.rejected, IsTokenRejected(err), tc.body)
		assert.Equal(t, tc.permanent, IsPermanent(err), tc.body)
		assert.Equal(t, tc.retries, IsRetryable(err), tc.body)
	}
	for _, ok := range []string{`{"errcode":0,"errmsg":"ok"}`, `{"msgid":1}`, `not json`, ``, `[1,2]`,
		`{"errcode":40001,"errcode":0}`} {
		assert.NoError(t, CheckBody([]byte(ok)), ok)
	}
	tokenEndpoint := &APIError{Code: 40001, Kind: KindPermanent}
	assert.True(t, IsPermanent(tokenEndpoint))
	assert.False(t, IsTokenRejected(tokenEndpoint))
}

// CheckResponse leaves the body readable from its first byte, names the
// endpoint, and does not read binary or large answers.
func TestCheckResponseKeepsTheBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cgi-bin/message/custom/send":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, `{"errcode":40001,"errmsg":"invalid credential"}`)
		case "/media":
			w.Header().Set("Content-Type", "image/jpeg")
			_, _ = io.WriteString(w, `{"errcode":40001}`)
		default:
			_, _ = io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
		}
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/cgi-bin/message/custom/send")
	require.NoError(t, err)
	defer resp.Body.Close()
	err = CheckResponse(resp)
	require.True(t, IsTokenRejected(err))
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "/cgi-bin/message/custom/send", apiErr.Endpoint)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, `{"errcode":40001,"errmsg":"invalid credential"}`, string(raw))

	media, err := http.Get(srv.URL + "/media")
	require.NoError(t, err)
	defer media.Body.Close()
	assert.NoError(t, CheckResponse(media), "an image is not inspected")

	okResp, err := http.Get(srv.URL + "/ok")
	require.NoError(t, err)
	defer okResp.Body.Close()
	assert.NoError(t, CheckResponse(okResp))
	raw, _ = io.ReadAll(okResp.Body)
	assert.True(t, strings.HasPrefix(string(raw), `{"errcode":0`))
}

// FuzzCheckBody: any body gives nil or a classified *APIError, never a panic,
// and an errmsg that cannot break a log line.
func FuzzCheckBody(f *testing.F) {
	for _, seed := range []string{`{"errcode":40001,"errmsg":"x"}`, `{"errcode":0}`, `{"errcode":"1"}`,
		`{"errcode":1e3}`, `{"errcode":42001,"errmsg":"a\nb\u001b[2J"}`, `{`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := CheckBody(body)
		if err == nil {
			return
		}
		apiErr, ok := err.(*APIError)
		if !ok || apiErr.Kind == KindUnknown || apiErr.Code == 0 {
			t.Fatalf("unclassified error %#v", err)
		}
		if strings.ContainsAny(apiErr.Msg, "\n\r\x1b") {
			t.Fatalf("errmsg keeps control characters: %q", apiErr.Msg)
		}
	})
}
