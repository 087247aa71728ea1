package wxtoken

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example of WeChat's JS-SDK documentation.
const (
	docTicket    = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
	docNonce     = "Wm3WZYTPz0wzccnW"
	docTimestamp = 1414587457
	docURL       = "http://mp.weixin.qq.com?params=value"
	docSignature = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
)

func TestSignJSSDKDocumentedExample(t *testing.T) {
	assert.Equal(t, docSignature, SignJSSDK(docTicket, docNonce, docTimestamp, docURL))
}

func TestSignJSSDKIgnoresFragment(t *testing.T) {
	for _, u := range []string{docURL + "#", docURL + "#wechat_redirect", docURL + "#/route?x=1#again"} {
		assert.Equal(t, docSignature, SignJSSDK(docTicket, docNonce, docTimestamp, u), u)
	}
	assert.NotEqual(t, docSignature, SignJSSDK(docTicket, docNonce, docTimestamp, docURL+"&more"))
	assert.NotEqual(t, docSignature, SignJSSDK(docTicket, docNonce, docTimestamp+1, docURL))
}

// The example of WeChat's card documentation (appendix 4 of the JS-SDK page):
// no openid, and the values sorted to
// "12314048966881434008071ojZ8YtyVyr30HheH3CM73y7h4jJEpjZ8Yt1XGILfi-FUsewpnnolGgZk".
func TestSignCardDocumentedExample(t *testing.T) {
	const (
		ticket = "ojZ8YtyVyr30HheH3CM73y7h4jJE"
		cardID = "pjZ8Yt1XGILfi-FUsewpnnolGgZk"
		code   = "1434008071"
		want   = "f137ab68b7f8112d20ee528ab6074564e2796250"
	)
	assert.Equal(t, want, SignCard(ticket, "123", 1404896688, cardID, code, ""))
	// An empty value signs as a value left out.
	assert.Equal(t, want, SignCardValues(ticket, "123", "1404896688", cardID, code))
	// The order of the arguments does not matter, only their values.
	assert.Equal(t, want, SignCardValues(code, cardID, "", "1404896688", ticket, "123"))
	// An openid does take part.
	assert.NotEqual(t, want, SignCard(ticket, "123", 1404896688, cardID, code, "oUser"))
}

func TestSignCardValuesKeepsCallerOrder(t *testing.T) {
	v := []string{"b", "a"}
	SignCardValues(v...)
	assert.Equal(t, []string{"b", "a"}, v)
}

func TestNewJSSDKConfigAt(t *testing.T) {
	cfg, err := NewJSSDKConfigAt(testAppID, docTicket, docURL+"#frag", docNonce, time.Unix(docTimestamp, 999))
	require.NoError(t, err)
	assert.Equal(t, JSSDKConfig{AppID: testAppID, Timestamp: docTimestamp, NonceStr: docNonce, Signature: docSignature}, cfg)

	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	assert.Equal(t, `{"appId":"`+testAppID+`","timestamp":1414587457,"nonceStr":"Wm3WZYTPz0wzccnW","signature":"`+docSignature+`"}`, string(b))
	assert.NotContains(t, string(b), docTicket)
}

func TestNewJSSDKConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const page = "https://example.com/shop/item?id=42"
		cfg, err := NewJSSDKConfig(testAppID, docTicket, page)
		require.NoError(t, err)
		assert.Equal(t, time.Now().Unix(), cfg.Timestamp) // the bubble's clock: exact
		assert.Equal(t, int64(946684800), cfg.Timestamp)
		assert.Regexp(t, regexp.MustCompile(`^[A-Z2-7]{26}$`), cfg.NonceStr, "128 random bits, within WeChat's 32 characters")
		assert.Equal(t, SignJSSDK(docTicket, cfg.NonceStr, cfg.Timestamp, page), cfg.Signature)

		again, err := NewJSSDKConfig(testAppID, docTicket, page)
		require.NoError(t, err)
		assert.NotEqual(t, cfg.NonceStr, again.NonceStr)
	})
}

func TestNewJSSDKConfigRefusesPageURL(t *testing.T) {
	for _, u := range []string{
		"",
		"/shop/item?id=42",
		"example.com/shop",
		"//example.com/shop",
		"ftp://example.com/shop",
		"javascript:alert(1)",
		"http:example.com",
		"https://",
		"https:///path",
		"https://exa mple.com/",
		"https://example.com/a b",
		"https://example.com/\tsecret-code",
		"https://例子.com/",
		"https://example.com/%zz",
		"https://[::1/",
	} {
		t.Run(u, func(t *testing.T) {
			cfg, err := NewJSSDKConfigAt(testAppID, docTicket, u, docNonce, time.Unix(docTimestamp, 0))
			assert.ErrorIs(t, err, ErrInvalidPageURL)
			assert.Zero(t, cfg)
			assert.NotContains(t, err.Error(), docTicket)
			if len(u) > 8 {
				assert.NotContains(t, err.Error(), u[8:], "the URL is not quoted")
			}
		})
	}
	for _, u := range []string{"http://mp.weixin.qq.com?params=value", "HTTPS://Example.com:8443/a/%E4%BE%8B?x=1&y=%20#top", "https://example.com"} {
		_, err := NewJSSDKConfigAt(testAppID, docTicket, u, docNonce, time.Unix(docTimestamp, 0))
		assert.NoError(t, err, u)
	}
}

func TestNewJSSDKConfigRefusesEmptyArguments(t *testing.T) {
	at := time.Unix(docTimestamp, 0)
	for name, call := range map[string]func() error{
		"appID":    func() error { _, err := NewJSSDKConfigAt("", docTicket, docURL, docNonce, at); return err },
		"ticket":   func() error { _, err := NewJSSDKConfigAt(testAppID, "", docURL, docNonce, at); return err },
		"nonceStr": func() error { _, err := NewJSSDKConfigAt(testAppID, docTicket, docURL, "", at); return err },
	} {
		err := call()
		require.Error(t, err, name)
		assert.True(t, strings.HasSuffix(err.Error(), "empty "+name), err.Error())
	}
}

// FuzzNewJSSDKConfigPageURL: the page URL comes from the browser, so any text.
func FuzzNewJSSDKConfigPageURL(f *testing.F) {
	for _, s := range []string{docURL, docURL + "#x", "", "/a", "https://[::1]:80/p?q#f", "http:x", "https://a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pageURL string) {
		cfg, err := NewJSSDKConfigAt(testAppID, docTicket, pageURL, docNonce, time.Unix(docTimestamp, 0))
		if err != nil {
			if !errors.Is(err, ErrInvalidPageURL) || strings.Contains(err.Error(), docTicket) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if cfg.Signature != SignJSSDK(docTicket, docNonce, docTimestamp, pageURL) {
			t.Fatal("signature differs from SignJSSDK")
		}
	})
}
