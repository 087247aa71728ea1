package wxtoken

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidPageURL is matched by the error NewJSSDKConfig returns for a page
// URL that is not an absolute http or https URL as a browser shows it in
// location.href. The error gives the reason, not the URL.
var ErrInvalidPageURL = errors.New("wxtoken: JS-SDK page URL must be an absolute http or https URL")

// SignJSSDK returns the JS-SDK signature for wx.config: the lower-case hex SHA-1
// of "jsapi_ticket=T&noncestr=N&timestamp=TS&url=U", where U is url without its
// #fragment (WeChat signs location.href.split('#')[0]). ticket is the jsapi
// ticket (getticket with type=jsapi).
func SignJSSDK(ticket, nonceStr string, timestamp int64, url string) string {
	if i := strings.IndexByte(url, '#'); i >= 0 {
		url = url[:i]
	}
	h := sha1.New()
	io.WriteString(h, "jsapi_ticket="+ticket+"&noncestr="+nonceStr+"&timestamp="+strconv.FormatInt(timestamp, 10)+"&url="+url)
	return hex.EncodeToString(h.Sum(nil))
}

// SignCard returns the card signature of wx.addCard's cardExt: the lower-case
// hex SHA-1 of the values of api_ticket (the ticket of getticket with
// type=wx_card), nonce_str, timestamp, card_id, code and openid, sorted as
// strings and concatenated. It is not the JS-SDK signature: the names take no
// part, only the values.
//
// code and openid are "" for cards that do not use them (no custom code, no
// bound openid). An empty value adds nothing to the concatenation, so leaving
// it out and including it as "" sign alike; WeChat's own example, which has no
// openid, is reproduced either way. nonceStr and timestamp must be the ones
// cardExt carries.
func SignCard(apiTicket, nonceStr string, timestamp int64, cardID, code, openID string) string {
	return SignCardValues(apiTicket, nonceStr, strconv.FormatInt(timestamp, 10), cardID, code, openID)
}

// SignCardValues is the algorithm of the card signatures: the lower-case hex
// SHA-1 of the values sorted as strings and concatenated. SignCard uses it for
// wx.addCard; wx.chooseCard's cardSign is SignCardValues of api_ticket, appid,
// location_id, timestamp, nonce_str, card_id and card_type.
func SignCardValues(values ...string) string {
	v := append([]string(nil), values...) // the caller's slice stays in its order
	sort.Strings(v)
	h := sha1.New()
	for _, s := range v {
		io.WriteString(h, s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// JSSDKConfig holds the fields of wx.config that the server computes. Encoded
// as JSON it has the names wx.config expects; the page adds jsApiList (and
// debug) itself.
type JSSDKConfig struct {
	AppID     string `json:"appId"`
	Timestamp int64  `json:"timestamp"` // Unix seconds
	NonceStr  string `json:"nonceStr"`
	Signature string `json:"signature"`
}

// NewJSSDKConfig returns the wx.config fields for the page at pageURL, signed
// with the jsapi ticket, a nonce from crypto/rand and the current time. A
// handler that the page asks for its configuration needs three lines:
//
//	cfg, err := wxtoken.NewJSSDKConfig(appID, ticket, r.FormValue("url"))
//	if err != nil { http.Error(w, err.Error(), http.StatusBadRequest); return }
//	json.NewEncoder(w).Encode(cfg)
//
// pageURL is the page's location.href; its #fragment is ignored. One that is
// not an absolute http or https URL, or holds characters a browser would have
// percent-encoded (spaces, control characters, non-ASCII), is refused with an
// error matching ErrInvalidPageURL, since WeChat would reject its signature.
// An empty appID or ticket is an error too. No error quotes the ticket.
func NewJSSDKConfig(appID, ticket, pageURL string) (JSSDKConfig, error) {
	return NewJSSDKConfigAt(appID, ticket, pageURL, rand.Text(), time.Now())
}

// NewJSSDKConfigAt is NewJSSDKConfig with the nonce and the time given, for
// tests and reproducible output. nonceStr must not be empty.
func NewJSSDKConfigAt(appID, ticket, pageURL, nonceStr string, now time.Time) (JSSDKConfig, error) {
	switch {
	case appID == "":
		return JSSDKConfig{}, errors.New("wxtoken: JS-SDK config: empty appID")
	case ticket == "":
		return JSSDKConfig{}, errors.New("wxtoken: JS-SDK config: empty ticket")
	case nonceStr == "":
		return JSSDKConfig{}, errors.New("wxtoken: JS-SDK config: empty nonceStr")
	}
	if err := checkPageURL(pageURL); err != nil {
		return JSSDKConfig{}, err
	}
	ts := now.Unix()
	return JSSDKConfig{
		AppID:     appID,
		Timestamp: ts,
		NonceStr:  nonceStr,
		Signature: SignJSSDK(ticket, nonceStr, ts, pageURL),
	}, nil
}

// checkPageURL refuses what cannot be a location.href. The URL is not quoted
// in the error: its query may carry an OAuth code or other user data.
func checkPageURL(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Errorf("%w: it holds a space, a control or a non-ASCII character (pass location.href, which is percent-encoded)", ErrInvalidPageURL)
		}
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%w: it does not parse", ErrInvalidPageURL) // url.Error would quote it
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: the scheme is not http or https", ErrInvalidPageURL)
	case u.Opaque != "" || u.Host == "":
		return fmt.Errorf("%w: it has no host", ErrInvalidPageURL)
	}
	return nil
}
