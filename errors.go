package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

var (
	// ErrNotFound is returned by a Store's Load when the key holds no token.
	ErrNotFound = errors.New("wxtoken: token not found in store")
	// ErrNewerToken is returned by a Store's Save when the store already holds a
	// token newer than the one offered; the stored token is kept.
	ErrNewerToken = errors.New("wxtoken: store holds a newer token")
	// ErrCorrupt is matched by the error a Store returns when the record under a
	// key cannot be decoded. The Client treats it as a miss and logs it; the next
	// Save replaces the record.
	ErrCorrupt = errors.New("wxtoken: stored token is corrupt")
	// ErrInvalidToken is matched by the error Token.Validate returns.
	ErrInvalidToken = errors.New("wxtoken: invalid token")
	// ErrClosed is returned by every method of a Client after Close.
	ErrClosed = errors.New("wxtoken: client closed")
	// ErrMalformedResponse is matched by the error returned when WeChat's answer
	// cannot be decoded as a token: not JSON, truncated, too large, without an
	// access_token or with an implausible expires_in. It is retryable.
	ErrMalformedResponse = errors.New("wxtoken: malformed token response")
	// ErrRejectedTooSoon is matched by Invalidate's error when the rejected token
	// was obtained moments ago (see WithRejectGuard): fetching again at once would
	// only feed a loop, so the Client refuses and keeps the token.
	ErrRejectedTooSoon = errors.New("wxtoken: token rejected moments after it was obtained; not fetching again yet")
	// ErrForceRefreshLimited is matched by Invalidate's error in stable-token mode
	// when WeChat keeps handing back the rejected token and a force refresh is not
	// allowed now (WeChat allows one per 30 s and 20 a day).
	ErrForceRefreshLimited = errors.New("wxtoken: stable token force refresh limit reached")
)

// APIError is an error WeChat reported in its JSON body: {"errcode":N,"errmsg":"..."}.
// WeChat sends these with HTTP status 200.
type APIError struct {
	Code int    // errcode
	Msg  string // errmsg
}

// Error reads "wxtoken: errcode N: errmsg".
func (e *APIError) Error() string {
	return fmt.Sprintf("wxtoken: errcode %d: %s", e.Code, e.Msg)
}

// StatusError is returned when the token endpoint answers with a non-2xx HTTP
// status, which WeChat itself never does for its own errors: it comes from a proxy,
// a gateway or a wrong base URL.
type StatusError struct {
	StatusCode int
	Status     string // such as "502 Bad Gateway"
}

// Error names the HTTP status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("wxtoken: token endpoint answered HTTP %s", e.Status)
}

// WeChat error codes that the classification below and the Transport know.
const (
	CodeSystemBusy        = -1
	CodeInvalidCredential = 40001 // at the token endpoint: wrong secret; elsewhere: bad token
	CodeInvalidGrantType  = 40002
	CodeInvalidAppID      = 40013
	CodeInvalidToken      = 40014
	CodeInvalidSecret     = 40125
	CodeIPNotWhitelisted  = 40164
	CodeSecretFrozen      = 40243
	CodeMissingToken      = 41001
	CodeMissingAppID      = 41002
	CodeMissingSecret     = 41004
	CodeTokenExpired      = 42001
	CodeDailyQuota        = 45009
	CodeMinuteQuota       = 45011
	CodeUserLimited       = 50004
	CodeAccountFrozen     = 50007
	CodeThirdPartyFirst   = 89501
	CodeThirdPartyLast    = 89507
)

// IsPermanent reports whether err, returned while obtaining a token, will not go
// away by retrying soon: a wrong appid or secret, an IP not on the whitelist, a
// frozen account, the daily quota spent, or a 4xx status. The Client stops calling
// WeChat for a cool-down after such an error and shares it with every caller.
func IsPermanent(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return isPermanentCode(apiErr.Code)
	}
	var st *StatusError
	if errors.As(err, &st) {
		return st.StatusCode >= 400 && st.StatusCode < 500 &&
			st.StatusCode != http.StatusTooManyRequests
	}
	return false
}

func isPermanentCode(code int) bool {
	switch code {
	case CodeInvalidCredential, CodeInvalidGrantType, CodeInvalidAppID, CodeInvalidSecret,
		CodeIPNotWhitelisted, CodeSecretFrozen, CodeMissingAppID, CodeMissingSecret,
		CodeDailyQuota, CodeUserLimited, CodeAccountFrozen:
		return true
	}
	return code >= CodeThirdPartyFirst && code <= CodeThirdPartyLast
}

// IsRetryable reports whether err, returned while obtaining a token, is worth
// another try after a backoff: WeChat busy (-1), the per-minute quota (45011),
// network trouble, a 5xx or 429 status, a malformed response. Context
// cancellation and ErrClosed are neither retryable nor permanent.
func IsRetryable(err error) bool {
	if err == nil || IsPermanent(err) || errors.Is(err, ErrClosed) ||
		errors.Is(err, context.Canceled) {
		return false
	}
	return true
}

// IsQuota reports whether err is one of WeChat's quota errors: 45009 (daily
// quota, permanent until the next day) or 45011 (per-minute quota, retryable).
func IsQuota(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && (apiErr.Code == CodeDailyQuota || apiErr.Code == CodeMinuteQuota)
}

// IsTokenRejected reports whether err is a business API's verdict that the
// access_token it was given is invalid, superseded or expired (40001, 40014,
// 42001): the caller should Invalidate that token and retry once.
func IsTokenRejected(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && isRejectionCode(apiErr.Code)
}

func isRejectionCode(code int) bool {
	return code == CodeInvalidCredential || code == CodeInvalidToken || code == CodeTokenExpired
}
