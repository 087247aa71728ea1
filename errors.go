package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
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
	// ErrForeignOrigin is matched by the error a Transport returns, without
	// sending anything, for a request to an origin that is not the Client's API
	// origin (WithBaseURL, WithAPIOrigins): the access_token must not reach it.
	ErrForeignOrigin = errors.New("wxtoken: transport: not an API origin; the access_token is not sent there")
	// ErrNotAccessToken is matched by the error a Transport returns, without
	// sending anything, when its Client's credential is not an access_token
	// (a JS-SDK ticket): sent as one, it would be rejected, and the rejection
	// would make the ticket Client fetch again and again.
	ErrNotAccessToken = errors.New("wxtoken: transport: the Client's credential is not an access_token")
)

// APIError is an error WeChat reported in its JSON body: {"errcode":N,"errmsg":"..."}.
// WeChat sends these with HTTP status 200.
//
// What an errcode means depends on where it came from: 40001 from a token
// endpoint is a wrong secret (permanent), from a business API a rejected token.
// Kind says which; errors the library builds always set it.
type APIError struct {
	Code int    // errcode
	Msg  string // errmsg, scrubbed of secrets and tokens
	// Endpoint is the path of the API that answered, such as "/cgi-bin/token";
	// "" when not known.
	Endpoint string
	// Kind classifies the error where it was made. KindUnknown (the zero
	// value, for an APIError built by hand) is classified by Code alone, as
	// the access_token endpoint's table says.
	Kind ErrorKind
}

// ErrorKind classifies an APIError.
type ErrorKind uint8

// The kinds of APIError.
const (
	KindUnknown       ErrorKind = iota // classified by Code alone
	KindRetryable                      // worth another try after a backoff: busy, a minute quota
	KindPermanent                      // will not go away by retrying soon: wrong credentials, IP, daily quota
	KindTokenRejected                  // a business API rejected the access_token it was given
	KindBusiness                       // a business API's own error, not about the token
)

// Error reads "wxtoken: errcode N: errmsg".
func (e *APIError) Error() string {
	return fmt.Sprintf("wxtoken: errcode %d: %s", e.Code, e.Msg)
}

// StatusError is returned when the token endpoint answers with a non-2xx HTTP
// status, which WeChat itself never does for its own errors: it comes from a proxy,
// a gateway or a wrong base URL. A redirect (3xx) is never followed, since it
// would carry the secret to the host it names; it is reported as a StatusError
// too, without its Location.
type StatusError struct {
	StatusCode int
	Status     string // such as "502 Bad Gateway", scrubbed of the secret
}

// Error names the HTTP status.
func (e *StatusError) Error() string {
	if e.StatusCode >= 300 && e.StatusCode < 400 {
		return fmt.Sprintf("wxtoken: token endpoint answered HTTP %s; redirects are not followed", e.Status)
	}
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
// frozen account, the daily quota spent, a redirect or a 4xx status. The Client stops calling
// WeChat for a cool-down after such an error and shares it with every caller.
func IsPermanent(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Kind == KindPermanent || (apiErr.Kind == KindUnknown && isPermanentCode(apiErr.Code))
	}
	var st *StatusError
	if errors.As(err, &st) {
		return st.StatusCode >= 300 && st.StatusCode < 500 &&
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
	var apiErr *APIError
	return !errors.As(err, &apiErr) || apiErr.Kind != KindBusiness
}

// IsQuota reports whether err is one of WeChat's quota errors: 45009 (daily
// quota, permanent until the next day) or 45011 (per-minute quota, retryable).
func IsQuota(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && (apiErr.Code == CodeDailyQuota || apiErr.Code == CodeMinuteQuota)
}

// IsTokenRejected reports whether err is a business API's verdict that the
// access_token it was given is invalid, superseded or expired (40001, 40014,
// 42001): the caller should Invalidate that token and retry once. A token
// endpoint's 40001 (a wrong secret) is not one.
func IsTokenRejected(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && (apiErr.Kind == KindTokenRejected ||
		(apiErr.Kind == KindUnknown && isRejectionCode(apiErr.Code)))
}

// tokenEndpointKind classifies an errcode answered by the access_token
// endpoints (/cgi-bin/token, /cgi-bin/stable_token).
func tokenEndpointKind(code int) ErrorKind {
	if isPermanentCode(code) {
		return KindPermanent
	}
	return KindRetryable
}

func isRejectionCode(code int) bool {
	return code == CodeInvalidCredential || code == CodeInvalidToken || code == CodeTokenExpired
}

// maxChainDepth bounds how deep err walks an error chain: deeper than any
// real chain, and a guard against a chain that loops.
const maxChainDepth = 64

// err returns err itself when no level of its chain (every error reachable
// through Unwrap) quotes a value of r, and otherwise a copy in which no level
// does: an error-reporting tool that walks the chain must find the secret and
// tokens nowhere. The copy keeps what callers inspect: the levels that quote
// nothing (sentinels such as context.DeadlineExceeded, io.EOF, syscall errnos,
// ErrMalformedResponse) are the very same values, a *url.Error or *net.OpError
// is rebuilt as one, and a level that was a timeout still says so.
func (r redactor) err(err error) error {
	return r.rebuild(err, 0)
}

func (r redactor) rebuild(err error, depth int) error {
	if !r.taints(err, depth) {
		return err
	}
	if depth >= maxChainDepth {
		return errors.New(r.text(err.Error()))
	}
	switch e := err.(type) {
	case *url.Error:
		rebuilt := &url.Error{Op: e.Op, URL: r.text(e.URL), Err: r.rebuild(e.Err, depth+1)}
		if !r.quoted(rebuilt.Error()) {
			return rebuilt
		}
	case *net.OpError:
		rebuilt := *e
		rebuilt.Err = r.rebuild(e.Err, depth+1)
		if !r.quoted(rebuilt.Error()) {
			return &rebuilt
		}
	}
	msg := r.text(err.Error())
	var inner []error
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if in := u.Unwrap(); in != nil {
			inner = []error{r.rebuild(in, depth+1)}
		}
	case interface{ Unwrap() []error }:
		for _, in := range u.Unwrap() {
			inner = append(inner, r.rebuild(in, depth+1))
		}
	}
	if len(inner) > 1 {
		return &redactedJoin{msg: msg, errs: inner}
	}
	red := redactedError{msg: msg, timeout: isTimeout(err)}
	if len(inner) == 1 {
		red.err = inner[0]
	}
	if ne, ok := err.(net.Error); ok {
		//lint:ignore SA1019 Temporary is deprecated, but callers may still ask it.
		return &redactedNetError{redactedError: red, temporary: ne.Temporary()}
	}
	return &red
}

// taints reports whether err or any error in its chain quotes a value of r.
func (r redactor) taints(err error, depth int) bool {
	if err == nil {
		return false
	}
	if depth > maxChainDepth || r.quoted(err.Error()) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return r.taints(u.Unwrap(), depth+1)
	case interface{ Unwrap() []error }:
		for _, in := range u.Unwrap() {
			if r.taints(in, depth+1) {
				return true
			}
		}
	}
	return false
}

// isTimeout reports whether err's chain holds a timeout, as net/http asks of
// the error a transport returns.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// redactedError stands for one level of an error chain whose text quoted a
// secret or a token: it keeps the scrubbed text, the scrubbed rest of the
// chain, and whether the level was a timeout (*url.Error.Timeout asks the
// error it wraps directly).
type redactedError struct {
	msg     string
	err     error
	timeout bool
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
func (e *redactedError) Timeout() bool { return e.timeout }

// redactedNetError is a redactedError standing for a net.Error, so that
// errors.As(err, &netErr) still finds one.
type redactedNetError struct {
	redactedError
	temporary bool
}

func (e *redactedNetError) Temporary() bool { return e.temporary }

// redactedJoin stands for a level that wrapped several errors.
type redactedJoin struct {
	msg  string
	errs []error
}

func (e *redactedJoin) Error() string   { return e.msg }
func (e *redactedJoin) Unwrap() []error { return e.errs }

// ScrubText returns text with every form of each of secrets (plain, URL- and
// JSON-escaped) replaced by REDACTED: for a Source's text that might quote
// its secret.
func ScrubText(text string, secrets ...string) string { return secretRedactor(secrets).text(text) }

// ScrubError returns err with no level of its Unwrap chain quoting any of
// secrets in any form, keeping the levels that quote none (sentinels, context
// errors, *url.Error and *net.OpError rebuilt as such), so that errors.Is and
// errors.As keep working: for a Source's errors.
func ScrubError(err error, secrets ...string) error { return secretRedactor(secrets).err(err) }

func secretRedactor(secrets []string) redactor {
	var r redactor
	for _, s := range secrets {
		r = append(r, redaction{value: s, name: "REDACTED"})
	}
	return r
}
