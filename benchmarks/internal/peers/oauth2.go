package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/wxtoken/wxtoken/wxtest"
	"golang.org/x/oauth2"
)

// NewOAuth2 returns oauth2.ReuseTokenSource over a token source that asks the
// fake's /cgi-bin/token, as a user of x/oauth2 would write it, and the HTTP
// client it uses.
func NewOAuth2(env Env) (oauth2.TokenSource, *http.Client) {
	hc := newHTTPClient()
	q := url.Values{
		"grant_type": {"client_credential"},
		"appid":      {wxtest.DefaultAppID},
		"secret":     {wxtest.DefaultSecret},
	}
	src := &wechatSource{hc: hc, url: env.BaseURL + wxtest.PathToken + "?" + q.Encode()}
	return oauth2.ReuseTokenSource(nil, src), hc
}

// oauth2ExpiresIn: ReuseTokenSource renews once Expiry - 10 s has passed,
// and the source sets Expiry to the fetch time plus expires_in.
func oauth2ExpiresIn(d time.Duration) int64 { return 10 + seconds(d) }

// wechatSource fetches one token per call: ReuseTokenSource does the caching.
type wechatSource struct {
	hc  *http.Client
	url string
}

func (s *wechatSource) Token() (*oauth2.Token, error) {
	resp, err := s.hc.Get(s.url)
	if err != nil {
		// *url.Error quotes the URL, secret included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("oauth2 peer: token request: %w", err)
	}
	defer resp.Body.Close()
	var r struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		ErrCode     int    `json:"errcode"`
		ErrMsg      string `json:"errmsg"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&r); err != nil {
		return nil, fmt.Errorf("oauth2 peer: decode token answer: %w", err)
	}
	if r.ErrCode != 0 || r.AccessToken == "" {
		return nil, fmt.Errorf("oauth2 peer: WeChat errcode %d: %s", r.ErrCode, r.ErrMsg)
	}
	return &oauth2.Token{
		AccessToken: r.AccessToken,
		Expiry:      time.Now().Add(time.Duration(r.ExpiresIn) * time.Second),
	}, nil
}

type oauth2Getter struct {
	ts oauth2.TokenSource
	hc *http.Client
}

func newOAuth2(env Env) (Getter, error) {
	ts, hc := NewOAuth2(env)
	return &oauth2Getter{ts: ts, hc: hc}, nil
}

// Get ignores ctx: oauth2.TokenSource has no context.
func (g *oauth2Getter) Get(context.Context) (string, error) {
	t, err := g.ts.Token()
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

func (g *oauth2Getter) Close() error {
	g.hc.CloseIdleConnections()
	return nil
}
