package wxtoken

import (
	"context"
	"net/http"
	"time"
)

// A Source obtains a new credential from WeChat: an access_token, a JS-SDK
// ticket, a WeCom token, an Open Platform token. A Client caches, persists,
// shares and renews what its Source returns, with the same guarantees for
// every kind: one fetch at a time per key (across processes where the Store
// locks), refresh ahead, a failure gate, and healing after a rejection.
//
// Fetch is called on the Client's goroutines, at most one at a time per
// Client. It must honour ctx, use req.HTTPClient (which never follows a
// redirect) and req.BaseURL when set, and return errors that hold no secret
// and no full token at any Unwrap level. WeChat's own errors are best returned
// as *APIError with Kind set, so that the Client knows whether to back off
// (KindRetryable) or cool down (KindPermanent).
//
// A Source may also implement optional methods, found by type assertion:
// Info() SourceInfo (below), Redact(text string) string (removes its secrets
// from text), StoreKey() string (a Registry key's Store key), CheckStored(tok
// Token) error (tells records that are not credentials from those that are,
// and revoked credentials: see ErrRevoked) and InputArrived() bool (see
// ErrAwaitingInput).
type Source interface {
	Fetch(ctx context.Context, req FetchRequest) (Token, error)
}

// FetchRequest says what a Fetch is for.
type FetchRequest struct {
	// Force asks for a new credential even where WeChat would hand back the
	// current one (stable_token's force_refresh). It is set only for a Source
	// whose Info allows forcing, within its limits; others never see it.
	Force bool
	// Rejected is the token a caller reported rejected, "" for a renewal.
	Rejected string
	// Current is the Store's record under the Client's key, read under the
	// Store's lock just before this Fetch (zero when there is none): it carries
	// the Refresh token a credential such as an Open Platform authorizer's
	// needs to obtain the next one.
	Current Token
	// HTTPClient is the Client's HTTP client (WithHTTPClient), made to never
	// follow a redirect.
	HTTPClient *http.Client
	// BaseURL is the Client's WithBaseURL without a trailing slash, or "" when
	// none was given: the Source then uses its own default origin.
	BaseURL string
}

// SourceInfo is what a Source may tell the Client about itself, through an
// optional method Info() SourceInfo.
type SourceInfo struct {
	// Name names the credential in logs, such as "wx0123 jsapi ticket"; it
	// must hold no secret. The default is the Client's store key.
	Name string
	// AppID is the account the credential belongs to (an appid, a corpid),
	// which logs show and ticket keys derive from. The default is the key.
	AppID string
	// ForcePerDay and ForceInterval say whether and how often the Source can
	// force a new credential when WeChat keeps handing back a rejected one:
	// at most ForcePerDay times a day, ForceInterval apart, for the whole fleet
	// sharing the Store. Zero ForcePerDay: it cannot.
	ForcePerDay   int
	ForceInterval time.Duration
	// APIOrigin is the scheme and host of the APIs that take this credential,
	// where a Transport may send it when no WithBaseURL is given, such as
	// "https://qyapi.weixin.qq.com". The default is DefaultBaseURL.
	APIOrigin string
	// NotAccessToken marks a credential that is not an access_token, such as a
	// JS-SDK ticket: a Transport refuses to send it as one.
	NotAccessToken bool
}

// sourceInfo returns what src tells about itself, with the defaults filled in.
func sourceInfo(src Source, key string) SourceInfo {
	var info SourceInfo
	if s, ok := src.(interface{ Info() SourceInfo }); ok {
		info = s.Info()
	}
	if info.Name == "" {
		info.Name = key
	}
	if info.AppID == "" {
		info.AppID = key
	}
	if info.APIOrigin == "" {
		info.APIOrigin = DefaultBaseURL
	}
	if info.ForcePerDay > 0 && info.ForceInterval <= 0 {
		info.ForceInterval = forceInterval
	}
	return info
}

// redactText scrubs text with src's optional Redact method, by which a Source
// removes its secrets from text the Client did not write itself (a recovered
// panic's value).
func redactText(src Source, text string) string {
	if s, ok := src.(interface{ Redact(string) string }); ok {
		return s.Redact(text)
	}
	return text
}
