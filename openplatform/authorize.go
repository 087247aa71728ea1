package openplatform

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/wxtoken/wxtoken"
)

// Authorization is what api_query_auth says of an account that just
// authorized the platform.
type Authorization struct {
	AppID    string // the authorizer's appid
	FuncInfo []int  // the permission sets (funcscope_category ids) it granted
}

// Authorize exchanges the authorization code that the merchant's redirect
// (auth_code) or an authorized event carries (api_query_auth), and saves the
// authorizer's record, with its refresh token, before it returns. A code is
// good for 10 minutes. A Save that fails is tried again while ctx allows;
// then the record is served from memory and handed to a background retry
// (logged at Error) until the Store takes it, and the error is returned.
func (p *Platform) Authorize(ctx context.Context, authCode string) (Authorization, error) {
	return p.authorize(ctx, authCode, time.Time{})
}

// authorize is Authorize for an authorization made at authorized (an
// event's CreateTime), or, when that is zero, now.
func (p *Platform) authorize(ctx context.Context, authCode string, authorized time.Time) (Authorization, error) {
	if authCode == "" {
		return Authorization{}, errors.New("openplatform: empty authorization code")
	}
	var out struct {
		Info struct {
			AppID        string `json:"authorizer_appid"`
			AccessToken  string `json:"authorizer_access_token"`
			ExpiresIn    int64  `json:"expires_in"`
			RefreshToken string `json:"authorizer_refresh_token"`
			FuncInfo     []struct {
				Category struct {
					ID int `json:"id"`
				} `json:"funcscope_category"`
			} `json:"func_info"`
		} `json:"authorization_info"`
	}
	var started time.Time
	err := p.withComponentToken(ctx, func(ctok string) error {
		started = time.Now()
		body := map[string]string{"component_appid": p.appID, "authorization_code": authCode}
		return call(ctx, p.hc, p.baseURL, "/cgi-bin/component/api_query_auth",
			url.Values{"component_access_token": {ctok}}, body, &out, classifyWithToken, p.secret(), ctok, authCode)
	})
	if apiCode(err) == CodeNotAuthorized {
		return Authorization{}, &NotAuthorizedError{Err: err} // the code does not say whose it is
	}
	if err != nil {
		return Authorization{}, err
	}
	info := out.Info
	rec := wxtoken.Token{AccessToken: info.AccessToken, ExpiresIn: info.ExpiresIn, CreateTime: started,
		Refresh: info.RefreshToken}
	if !validAppID(info.AppID) || info.RefreshToken == "" || rec.Validate() != nil {
		return Authorization{}, fmt.Errorf("%w: api_query_auth: no valid authorizer appid, access token and refresh token",
			wxtoken.ErrMalformedResponse)
	}
	auth := Authorization{AppID: info.AppID}
	for _, f := range info.FuncInfo {
		auth.FuncInfo = append(auth.FuncInfo, f.Category.ID)
	}
	if authorized.IsZero() {
		authorized = started
	}
	if err := p.saveRecord(ctx, info.AppID, rec, authorized); err != nil {
		return auth, err
	}
	p.log.Info("openplatform: account authorized the platform", "component", p.appID, "appid", info.AppID,
		"func_info", auth.FuncInfo)
	return auth, nil
}

// Tries of saveRecord before it hands the record to a background retry.
const (
	saveTries     = 4
	saveTryPause  = 100 * time.Millisecond // doubled after each try
	saveTryMargin = 500 * time.Millisecond // left of ctx's deadline for the answer
)

// saveRecord stores a fresh authorizer record, authorized at authorized,
// and drops the Registry's Client of appID, whose state (a tombstone, a
// cooled-down failure) it supersedes. A Store holding a newer record keeps
// it. A Save that keeps failing hands the record to the new Client of
// appID, which serves it and retries the Save until the Store takes it.
func (p *Platform) saveRecord(ctx context.Context, appID string, rec wxtoken.Token, authorized time.Time) error {
	key := p.authorizerKey(appID)
	err := p.store.Save(ctx, key, rec)
	for try, pause := 1, saveTryPause; try < saveTries && err != nil && !errors.Is(err, wxtoken.ErrNewerToken); try++ {
		if !timeLeft(ctx, pause+saveTryMargin) || !sleep(ctx, pause) {
			break
		}
		p.log.Warn("openplatform: saving an authorizer's record failed; trying again", "component", p.appID,
			"appid", appID, "try", try, "err", err)
		err = p.store.Save(ctx, key, rec)
		pause *= 2
	}
	p.registry.Forget(appID)
	if err != nil && !errors.Is(err, wxtoken.ErrNewerToken) {
		p.log.Error("openplatform: saving an authorizer's record with its refresh token failed; serving it from memory and retrying until it is saved",
			"component", p.appID, "appid", appID, "err", err)
		p.keepRetrying(ctx, appID, rec)
		return wxtoken.ScrubError(fmt.Errorf("openplatform: saving the record of %s (retried in the background): %w", appID, err),
			rec.AccessToken, rec.Refresh)
	}
	if err := p.noteAuthorized(ctx, appID, authorized); err != nil {
		p.log.Error("openplatform: the authorization time was not saved; a late unauthorized event of the account may cancel it",
			"component", p.appID, "appid", appID, "err", err)
	}
	return nil
}

// keepRetrying hands rec to appID's Client, whose save retry keeps it.
func (p *Platform) keepRetrying(ctx context.Context, appID string, rec wxtoken.Token) {
	c, err := p.registry.Client(context.WithoutCancel(ctx), appID)
	if err == nil {
		if err = c.Keep(context.WithoutCancel(ctx), rec); !errors.Is(err, wxtoken.ErrClosed) {
			return // saved, or being retried
		}
	}
	if err != nil {
		p.log.Error("openplatform: the authorizer's record could not be handed to a retrying save",
			"component", p.appID, "appid", appID, "err", wxtoken.ScrubError(err, rec.AccessToken, rec.Refresh))
	}
}

// timeLeft reports whether ctx leaves at least d before its deadline.
func timeLeft(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) >= d
}

// sleep waits d, or until ctx ends, reporting false then.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// AuthType says which accounts the authorization page lets a merchant pick
// (auth_type).
type AuthType int

// The auth_type values.
const (
	AuthOfficialAccounts AuthType = 1 // Official Accounts only
	AuthMiniPrograms     AuthType = 2 // Mini Programs only
	AuthBoth             AuthType = 3 // both (the default)
)

// AuthOptions are the authorization link's optional parts.
type AuthOptions struct {
	// Mobile selects the link for a page opened inside WeChat
	// (open.weixin.qq.com/wxaopen/safe/bindcomponent) instead of the PC
	// page with a QR code (mp.weixin.qq.com/cgi-bin/componentloginpage).
	Mobile   bool
	AuthType AuthType // 0: AuthBoth
	BizAppID string   // the one account the merchant may authorize, when set
}

// The authorization pages.
const (
	pcAuthPage     = "https://mp.weixin.qq.com/cgi-bin/componentloginpage"
	mobileAuthPage = "https://open.weixin.qq.com/wxaopen/safe/bindcomponent"
)

// AuthURL returns the authorization link that sends a merchant to WeChat's
// consent page and back to redirectURI with auth_code. Its pre_auth_code is
// cached for its 30-minute lifetime (and shared through the Store), not
// fetched per click.
func (p *Platform) AuthURL(ctx context.Context, redirectURI string, opt AuthOptions) (string, error) {
	if u, err := url.Parse(redirectURI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("openplatform: redirect URI %q is not an http(s) URL", redirectURI)
	}
	code, err := p.preAuth.Get(ctx)
	if err != nil {
		return "", fmt.Errorf("openplatform: pre_auth_code: %w", err)
	}
	authType := opt.AuthType
	if authType == 0 {
		authType = AuthBoth
	}
	q := url.Values{"component_appid": {p.appID}, "pre_auth_code": {code}, "redirect_uri": {redirectURI},
		"auth_type": {strconv.Itoa(int(authType))}}
	if opt.BizAppID != "" {
		q.Set("biz_appid", opt.BizAppID)
	}
	if opt.Mobile {
		q.Set("action", "bindcomponent")
		q.Set("no_scan", "1")
		return mobileAuthPage + "?" + q.Encode() + "#wechat_redirect", nil
	}
	return pcAuthPage + "?" + q.Encode(), nil
}

// preAuthSource obtains a pre_auth_code (api_create_preauthcode).
type preAuthSource struct{ p *Platform }

// Info: a pre_auth_code is not an access_token.
func (s *preAuthSource) Info() wxtoken.SourceInfo {
	return wxtoken.SourceInfo{Name: s.p.appID + " pre_auth_code", AppID: s.p.appID, NotAccessToken: true}
}

// Redact removes the component secret from text.
func (s *preAuthSource) Redact(text string) string { return wxtoken.ScrubText(text, s.p.secret()) }

// Fetch asks for a new pre_auth_code.
func (s *preAuthSource) Fetch(ctx context.Context, req wxtoken.FetchRequest) (wxtoken.Token, error) {
	p := s.p
	var out struct {
		Code      string `json:"pre_auth_code"`
		ExpiresIn int64  `json:"expires_in"`
	}
	err := p.withComponentToken(ctx, func(ctok string) error {
		return call(ctx, req.HTTPClient, baseOf(req), "/cgi-bin/component/api_create_preauthcode",
			url.Values{"component_access_token": {ctok}}, map[string]string{"component_appid": p.appID},
			&out, classifyWithToken, p.secret(), ctok)
	})
	if err != nil {
		return wxtoken.Token{}, err
	}
	return wxtoken.Token{AccessToken: out.Code, ExpiresIn: out.ExpiresIn}, nil
}
