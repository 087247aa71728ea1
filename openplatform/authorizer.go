package openplatform

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxtoken/wxtoken"
)

// An authorizer's record is a wxtoken.Token under "<component>.authorizer.<appid>":
// the authorizer_access_token with its authorizer_refresh_token in Refresh.
// Records with a Refresh never lapse from a Store. Two other shapes share the
// key, which the authorizer's CheckStored tells the engine never to serve:
//
//   - a recovered record: a refresh token restored by Recover without an
//     access token (AccessToken placeholderAccess);
//   - a tombstone: the account cancelled (unauthorized event); Refresh is
//     tombstoneRefresh followed by the event's CreateTime in Unix seconds,
//     and no exchange is tried. An authorization newer than the event saves
//     a newer record over it.
//
// The time of the account's latest authorization has a key of its own,
// "<component>.authorized.<appid>" (an authorizedMark record dated then),
// so that an unauthorized event older than it (a late retry, a replay)
// changes nothing.
const (
	placeholderAccess = "-"
	tombstoneRefresh  = "-unauthorized-"
	authorizedInfix   = ".authorized."
	authorizedMark    = "authorized"
	// maxEventAge: an unauthorized event older than this is refused, so that
	// the authorization time needs keeping only for a day.
	maxEventAge = time.Hour
)

// isTombstone reports whether rec is the mark an unauthorized event left.
func isTombstone(rec wxtoken.Token) bool { return strings.HasPrefix(rec.Refresh, tombstoneRefresh) }

// tombstone is the record of an unauthorized event of cancelled, dated at.
func tombstone(cancelled, at time.Time) wxtoken.Token {
	return wxtoken.Token{AccessToken: placeholderAccess, ExpiresIn: 1, CreateTime: at,
		Refresh: tombstoneRefresh + strconv.FormatInt(cancelled.Unix(), 10)}
}

// cancelledAt returns when the account cancelled by the tombstone rec: the
// event's CreateTime, or, for a tombstone that does not say, its own date.
func cancelledAt(rec wxtoken.Token) time.Time {
	secs, err := strconv.ParseInt(strings.TrimPrefix(rec.Refresh, tombstoneRefresh), 10, 64)
	if err != nil || secs <= 0 {
		return rec.CreateTime
	}
	return time.Unix(secs, 0)
}

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

// CheckStored tells the engine that a tombstone revokes the authorizer
// (callers get ErrNotAuthorized, WeChat is not asked) and that a recovered
// record is no access token (its refresh token is exchanged).
func (s *authorizerSource) CheckStored(rec wxtoken.Token) error {
	switch {
	case isTombstone(rec):
		return &NotAuthorizedError{AppID: s.appID, Err: fmt.Errorf("%w: %w", wxtoken.ErrRevoked,
			&wxtoken.APIError{Code: CodeNotAuthorized, Kind: wxtoken.KindPermanent,
				Msg: "the account cancelled the authorization (unauthorized event); WeChat not asked"})}
	case rec.AccessToken == placeholderAccess:
		return errors.New("openplatform: a refresh token restored without an access token")
	}
	return nil
}

// Fetch exchanges the refresh token of the record read under the Store's
// lock (req.Current) for a new access token, returning whatever refresh
// token WeChat hands back, so that the engine saves both at once. A record
// with no refresh token, or one WeChat calls invalid (61023), is recovered
// from the authorizer list once; then it is ErrNotAuthorized. A list that
// cannot be read leaves the error retryable: the refresh token may be good.
func (s *authorizerSource) Fetch(ctx context.Context, req wxtoken.FetchRequest) (wxtoken.Token, error) {
	p := s.p
	if isTombstone(req.Current) {
		return wxtoken.Token{}, notAuthorized(s.appID, "the account cancelled the authorization (unauthorized event); WeChat not asked")
	}
	refresh := req.Current.Refresh
	if refresh == "" {
		// No exchange to race with: a walk of the last minute will do.
		recovered, err := p.listedRefresh(ctx, s.appID, time.Now().Add(-listReuse))
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
	started := time.Now()
	tok, err := p.exchange(ctx, req, s.appID, refresh)
	if apiCode(err) != CodeRefreshTokenInvalid {
		return tok, err
	}
	recovered, lerr := p.listedRefresh(ctx, s.appID, started)
	if lerr != nil {
		p.log.Error("openplatform: the authorizer's refresh token is invalid and the authorizer list cannot be read; retrying later",
			"component", p.appID, "appid", s.appID, "list_err", lerr)
		return wxtoken.Token{}, fmt.Errorf("openplatform: authorizer %s: refresh token refused (%w) and the authorizer list unavailable: %w",
			s.appID, retryable(err), lerr)
	}
	if recovered == "" || recovered == refresh {
		p.log.Error("openplatform: the authorizer's refresh token is invalid and the authorizer list has no other",
			"component", p.appID, "appid", s.appID)
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
	if apiCode(err) == CodeNotAuthorized {
		return wxtoken.Token{}, &NotAuthorizedError{AppID: appID, Err: err}
	}
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

// markGone saves a tombstone for appID, cancelled at the unauthorized
// event's CreateTime, newer than whatever is stored, and drops the
// Registry's Client of it so that the next use sees the tombstone. An event
// no newer than the account's latest authorization changes nothing: WeChat
// retried it late, or it is replayed.
func (p *Platform) markGone(ctx context.Context, appID string, cancelled time.Time) error {
	if newer, err := p.authorizedSince(ctx, appID, cancelled); err != nil || newer {
		return err
	}
	key := p.authorizerKey(appID)
	for range 4 {
		at := time.Now()
		cur, err := p.store.Load(ctx, key)
		if err == nil && isTombstone(cur) && !cancelledAt(cur).Before(cancelled) {
			return nil // marked already
		}
		if err == nil && !cur.CreateTime.Before(at) {
			at = cur.CreateTime.Add(time.Millisecond)
		}
		err = p.store.Save(ctx, key, tombstone(cancelled, at))
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

// authorizedSince reports whether appID authorized the platform at or after
// t, by the time of its latest authorization kept in the Store.
func (p *Platform) authorizedSince(ctx context.Context, appID string, t time.Time) (bool, error) {
	mark, err := p.store.Load(ctx, p.authorizedKey(appID))
	switch {
	case errors.Is(err, wxtoken.ErrNotFound), errors.Is(err, wxtoken.ErrCorrupt):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("openplatform: reading the authorization time of %s: %w", appID, err)
	}
	if mark.CreateTime.Before(t) {
		return false, nil
	}
	p.log.Info("openplatform: an unauthorized event older than the account's latest authorization changed nothing",
		"component", p.appID, "appid", appID, "cancelled", t, "authorized", mark.CreateTime)
	return true, nil
}

// noteAuthorized keeps at as the time appID authorized the platform, unless
// a later one is kept already.
func (p *Platform) noteAuthorized(ctx context.Context, appID string, at time.Time) error {
	mark := wxtoken.Token{AccessToken: authorizedMark, ExpiresIn: int64(24 * time.Hour / time.Second), CreateTime: at}
	err := p.store.Save(ctx, p.authorizedKey(appID), mark)
	if err != nil && !errors.Is(err, wxtoken.ErrNewerToken) {
		return fmt.Errorf("openplatform: saving the authorization time of %s: %w", appID, err)
	}
	return nil
}

// retryable marks a WeChat error as retryable for the Client: a refusal
// that the authorizer list could not confirm.
func retryable(err error) error {
	var apiErr *wxtoken.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	cp := *apiErr
	cp.Kind = wxtoken.KindRetryable
	return &cp
}
