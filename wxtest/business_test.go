package wxtest

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBusinessTokenChecks(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		r := f.callbackIP(t, "")
		assert.Equal(t, CodeMissingToken, r.Errcode)
		assert.True(t, strings.HasPrefix(r.Errmsg, "access_token missing"), r.Errmsg)
		assert.Equal(t, CodeInvalidCredential, f.callbackIP(t, "made-up-token").Errcode)

		tok := f.mustToken(t)
		resp, b := f.do(t, http.MethodGet, PathCallbackIP, url.Values{"access_token": {tok}}, "")
		assert.Equal(t, "text/plain", resp.Header.Get("Content-Type"))
		assert.JSONEq(t, `{"ip_list":["127.0.0.1"]}`, string(b))

		assert.True(t, f.ExpireToken(tok))
		assert.Equal(t, CodeTokenExpired, f.callbackIP(t, tok).Errcode)
		assert.Equal(t, 4, f.BusinessCalls())
		assert.Equal(t, map[int]int{41001: 1, 40001: 1, 42001: 1}, f.Rejections())
	})
}

func TestBusinessMethodChecks(t *testing.T) {
	f := newLocalFake(t)
	tok := f.mustToken(t)
	q := url.Values{"access_token": {tok}}
	assert.Equal(t, CodeRequireGET, f.decode(t, http.MethodPost, PathCallbackIP, q, "{}").Errcode)
	assert.Equal(t, CodeRequirePOST, f.decode(t, http.MethodGet, PathCustomSend, q, "").Errcode)
}

func TestRevokeToken(t *testing.T) {
	f := newLocalFake(t)
	tok := f.mustToken(t)
	assert.True(t, f.RevokeToken(tok))
	assert.Equal(t, CodeInvalidCredential, f.callbackIP(t, tok).Errcode)
	assert.False(t, f.RevokeToken("unknown"))
	assert.False(t, f.ExpireToken("unknown"))
	assert.Equal(t, CodeMissingToken, f.CheckToken(""))
	// Revoked then expired: still the revocation that counts.
	f.clk.Advance(3 * time.Hour)
	assert.Equal(t, CodeInvalidCredential, f.CheckToken(tok))
}

func TestCustomSendRecordsBodyExactly(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		tok := f.mustToken(t)
		q := url.Values{"access_token": {tok}}
		body := "{\"touser\":\"OPENID\",\"msgtype\":\"text\",\"text\":{\"content\":\"你好 \\u0026 bye\"}}\n"
		resp, b := f.do(t, http.MethodPost, PathCustomSend, q, body)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.JSONEq(t, `{"errcode":0,"errmsg":"ok"}`, string(b))
		assert.Equal(t, []byte(body), f.LastBody())

		r := f.decode(t, http.MethodPost, PathCustomSend, q, "not json")
		assert.Equal(t, CodeDataFormat, r.Errcode)
		assert.Equal(t, CodeDataFormat, f.decode(t, http.MethodPost, PathCustomSend, q, "[1]").Errcode)

		reqs := f.Requests()
		require.Len(t, reqs, 3)
		assert.Equal(t, []byte(body), reqs[0].Body)
		assert.Equal(t, http.MethodPost, reqs[0].Method)
		assert.Equal(t, PathCustomSend, reqs[0].Path)
		assert.Equal(t, tok, reqs[0].Query.Get("access_token"))
		assert.Zero(t, reqs[0].Errcode)
		assert.Equal(t, f.clk.Now(), reqs[0].Time)
		assert.Equal(t, []byte("not json"), reqs[1].Body)
		assert.Equal(t, CodeDataFormat, reqs[1].Errcode)
	})
}

func TestRequestsKeepsTheLatest(t *testing.T) {
	f := newLocalFake(t)
	for i := range maxRequests + 5 {
		f.callbackIP(t, strings.Repeat("x", i%3+1))
	}
	reqs := f.Requests()
	assert.Len(t, reqs, maxRequests)
	assert.Equal(t, maxRequests+5, f.BusinessCalls())
}

func TestOnBusinessCallHook(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := func(r *http.Request, body []byte) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.URL.Path+" "+string(body))
	}
	both(t, func(t *testing.T, f *fake) {
		mu.Lock()
		got = nil
		mu.Unlock()
		tok := f.mustToken(t)
		f.decode(t, http.MethodPost, PathCustomSend, url.Values{"access_token": {tok}}, `{"a":1}`)
		f.callbackIP(t, "") // rejected calls reach the hook too
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, []string{PathCustomSend + ` {"a":1}`, PathCallbackIP + " "}, got)
	}, WithOnBusinessCall(hook))
}

func TestMediaGetServesBinary(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		tok := f.mustToken(t)
		resp, b := f.do(t, http.MethodGet, PathMediaGet, url.Values{"access_token": {tok}, "media_id": {"M1"}}, "")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
		assert.Equal(t, int64(256<<10), resp.ContentLength)
		assert.True(t, bytes.Equal(MediaContent("M1"), b), "media bytes differ")
		assert.True(t, bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}))
		assert.False(t, bytes.Equal(MediaContent("M1"), MediaContent("M2")))

		r := f.decode(t, http.MethodGet, PathMediaGet, url.Values{"access_token": {tok}}, "")
		assert.Equal(t, CodeInvalidMediaID, r.Errcode)
		r = f.decode(t, http.MethodGet, PathMediaGet, url.Values{"media_id": {"M1"}}, "")
		assert.Equal(t, CodeMissingToken, r.Errcode)
	})
}

func TestUnknownPathIs404(t *testing.T) {
	f := newLocalFake(t)
	resp, _ := f.do(t, http.MethodGet, "/cgi-bin/nope", nil, "")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestReset(t *testing.T) {
	f := newLocalFake(t, WithDailyQuota(1))
	tok := f.mustToken(t)
	f.callbackIP(t, tok)
	f.Inject(FaultErrcode(-1, ""))
	f.Reset()
	assert.Zero(t, f.TokenCalls())
	assert.Zero(t, f.BusinessCalls())
	assert.Empty(t, f.Rejections())
	assert.Empty(t, f.Requests())
	assert.Zero(t, f.PendingFaults())
	assert.Equal(t, CodeInvalidCredential, f.CheckToken(tok), "tokens forgotten")
	f.mustToken(t) // quota reset too
}
