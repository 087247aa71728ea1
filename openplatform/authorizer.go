package openplatform

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/wxtoken/wxtoken"
)

// An authorizer's record is a wxtoken.Token under "<component>.authorizer.<appid>":
// the authorizer_access_token with its authorizer_refresh_token in Refresh.
// Records with a Refresh never lapse from a Store. Two other shapes share the
// key, both expired from the start so that the engine never serves them:
//
//   - a recovered record: a refresh token restored by Recover without an
//     access token (AccessToken placeholderAccess);
//   - a tombstone: the account cancelled (unauthorized event); Refresh is
//     tombstoneRefresh and no exchange is tried. An authorized event for
//     the account saves a newer record over it.
const (
	placeholderAccess = "-"
	tombstoneRefresh  = "-unauthorized-"
)

// isTombstone reports whether rec is the mark an unauthorized event left.
func isTombstone(rec wxtoken.Token) bool { return rec.Refresh == tombstoneRefresh }

// lookup is the Registry's: every key is an authorizer appid.
func (p *Platform) lookup(ctx context.Context, appID string) (wxtoken.Source, error) {
	if !validAppID(appID) {
		return nil, fmt.Errorf("openplatform: authorizer appid %q has characters outside [A-Za-z0-9_-]", appID)
	}
	return &authorizerSource{p: p, appID: appID}, nil
}

// authorizerSource obtains an authorizer_access_token with the stored
// refresh token (api_authorizer_token).
type authorizerSource struct {
	p     *Platform
	appID string
}

// StoreKey is "<component appid>.authorizer.<appid>".
func (s *authorizerSource) StoreKey() string { return s.p.authorizerKey(s.appID) }

// Info names the authorizer; its tokens go to api.weixin.qq.com like an
// Official Account's own.
func (s *authorizerSource) Info() wxtoken.SourceInfo {
	return wxtoken.SourceInfo{Name: "authorizer " + s.appID + " of " + s.p.appID, AppID: s.appID}
}

// Redact removes the component secret from text.
func (s *authorizerSource) Redact(text string) string { return wxtoken.ScrubText(text, s.p.secret()) }

// Fetch exchanges the refresh token of the record read under the Store's
// lock (req.Current) for a new access token, returning whatever refresh
// token WeChat hands back, so that the engine saves both at once. A record
// with no refresh token, or one WeChat calls invalid (61023), is recovered
// from the authorizer list once; then it is ErrNotAuthorized.
func (s *authorizerSource) Fetch(ctx context.Context, req wxtoken.FetchRequest) (wxtoken.Token, error) {
	p := s.p
	if isTombstone(req.Current) {
		return wxtoken.Token{}, notAuthorized(s.appID, "the account cancelled the authorization (unauthorized event); WeChat not asked")
	}
	refresh := req.Current.Refresh
	if refresh == "" {
		recovered, err := p.listedRefresh(ctx, s.appID)
		if err != nil {
			return wxtoken.Token{}, err
		}
		if recovered == "" {
			return wxtoken.Token{}, notAuthorized(s.appID, "no refresh token stored, none in the authorizer list")
		}
		p.log.Warn("openplatform: the stored record had no refresh token; using the one the authorizer list gives",
			"component", p.appID, "appid", s.appID)
		refresh = recovered
	}
	tok, err := p.exchange(ctx, req, s.appID, refresh)
	if apiCode(err) != CodeRefreshTokenInvalid {
		return tok, err
	}
	recovered, lerr := p.listedRefresh(ctx, s.appID)
	if lerr != nil || recovered == "" || recovered == refresh {
		p.log.Error("openplatform: the authorizer's refresh token is invalid and the authorizer list has no other",
			"component", p.appID, "appid", s.appID, "list_err", lerr)
		return wxtoken.Token{}, &NotAuthorizedError{AppID: s.appID, Err: err}
	}
	p.log.Warn("openplatform: refresh token invalid (61023); retrying with the one the authorizer list gives",
		"component", p.appID, "appid", s.appID)
	tok, err = p.exchange(ctx, req, s.appID, recovered)
	if apiCode(err) == CodeRefreshTokenInvalid {
		return wxtoken.Token{}, &NotAuthorizedError{AppID: s.appID, Err: err}
	}
	return tok, err
}

// exchange calls api_authorizer_token with refresh.
func (p *Platform) exchange(ctx context.Context, req wxtoken.FetchRequest, appID, refresh string) (wxtoken.Token, error) {
	var out struct {
		AccessToken  string `json:"authorizer_access_token"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"authorizer_refresh_token"`
	}
	var started time.Time
	err := p.withComponentToken(ctx, func(ctok string) error {
		started = time.Now()
		body := map[string]string{"component_appid": p.appID, "authorizer_appid": appID,
			"authorizer_refresh_token": refresh}
		return call(ctx, req.HTTPClient, baseOf(req), "/cgi-bin/component/api_authorizer_token",
			url.Values{"component_access_token": {ctok}}, body, &out, classifyWithToken, p.secret(), ctok, refresh)
	})
	if err != nil {
		return wxtoken.Token{}, err
	}
	if out.RefreshToken == "" {
		out.RefreshToken = refresh // not rotated: the one sent stays current
	}
	tok := wxtoken.Token{AccessToken: out.AccessToken, ExpiresIn: out.ExpiresIn, CreateTime: started,
		Refresh: out.RefreshToken}
	if err := tok.Validate(); err != nil {
		return wxtoken.Token{}, fmt.Errorf("%w: api_authorizer_token: %w", wxtoken.ErrMalformedResponse, err)
	}
	return tok, nil
}

// markGone saves a tombstone for appID, newer than whatever is stored, and
// drops the Registry's Client of it so that the next use sees the tombstone.
func (p *Platform) markGone(ctx context.Context, appID string) error {
	key := p.authorizerKey(appID)
	for range 4 {
		at := time.Now()
		if cur, err := p.store.Load(ctx, key); err == nil && !cur.CreateTime.Before(at) {
			at = cur.CreateTime.Add(time.Millisecond)
		}
		tomb := wxtoken.Token{AccessToken: placeholderAccess, ExpiresIn: 1, CreateTime: at, Refresh: tombstoneRefresh}
		err := p.store.Save(ctx, key, tomb)
		if errors.Is(err, wxtoken.ErrNewerToken) {
			continue // a renewal landed meanwhile: date the tombstone after it
		}
		p.registry.Forget(appID)
		if err != nil {
			return fmt.Errorf("openplatform: saving the tombstone of %s: %w", appID, err)
		}
		return nil
	}
	return fmt.Errorf("openplatform: saving the tombstone of %s: the record kept changing", appID)
}
