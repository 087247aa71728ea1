package openplatform

import (
	"errors"
	"fmt"

	"github.com/wxtoken/wxtoken"
)

// Open Platform errcodes that this package classifies.
const (
	CodeNotAuthorized         = 61003 // the account has not authorized the platform, or cancelled it
	CodeClientIPNotRegistered = 61004 // the caller's IP is not on the platform's whitelist: permanent
	CodeTicketExpired         = 61005 // component_verify_ticket expired: wait for the next push
	CodeTicketInvalid         = 61006 // component_verify_ticket invalid: wait for the next push
	CodeAuthCodeInvalid       = 61009
	CodeAuthCodeExpired       = 61010
	CodeInvalidComponent      = 61011 // the component appid is wrong: permanent
	CodeRefreshTokenInvalid   = 61023 // authorizer_refresh_token invalid: Recover, then ErrNotAuthorized
)

var (
	// ErrNotAuthorized is matched by an authorizer's error when the account
	// no longer authorizes the platform: it cancelled (an unauthorized
	// event), or its refresh token is invalid and the authorizer list has no
	// other. Errors that match it are *NotAuthorizedError and permanent.
	ErrNotAuthorized = errors.New("openplatform: the account does not authorize the platform")
	// ErrSignature is matched by the handler's refusal of an event whose
	// signature, padding or receiver id does not check out.
	ErrSignature = errors.New("openplatform: event refused: it does not come from WeChat for this platform")
)

// ErrNoVerifyTicket is matched by the component token's error while no
// usable component_verify_ticket is stored: on a first start, after 12 h
// without a push, or after WeChat refused the stored one (61005, 61006; the
// refusal is kept in the Store, so that no replica sends that ticket again).
// The Platform has asked WeChat to push one (api_start_push_ticket, at most
// once per push interval per process); the error is retryable, it also
// matches wxtoken.ErrAwaitingInput, and it clears with the next push: the
// first Get after a push received by this process fetches the token at once,
// and any other process finds the ticket in the Store within a second.
var ErrNoVerifyTicket error = noTicketError{}

// noTicketError is ErrNoVerifyTicket's type: a missing input, not WeChat failing.
type noTicketError struct{}

func (noTicketError) Error() string {
	return "openplatform: no usable component_verify_ticket; waiting for WeChat's push"
}

// Is makes ErrNoVerifyTicket match wxtoken.ErrAwaitingInput, by which the
// engine knows that callers may try again as soon as a ticket is stored.
func (noTicketError) Is(target error) bool { return target == wxtoken.ErrAwaitingInput }

// NotAuthorizedError names the authorizer that is not authorized, and why.
// It matches ErrNotAuthorized (errors.Is) and its cause is a permanent
// *wxtoken.APIError, so that the authorizer's Client cools down instead of
// asking again.
type NotAuthorizedError struct {
	AppID string // the authorizer's appid; "" when not known (an authorization code's)
	Err   error  // the cause: WeChat's answer, or the tombstone an unauthorized event left
}

// Error names the appid and the cause.
func (e *NotAuthorizedError) Error() string {
	if e.AppID == "" {
		return fmt.Sprintf("openplatform: the account does not authorize the platform: %v", e.Err)
	}
	return fmt.Sprintf("openplatform: authorizer %s does not authorize the platform: %v", e.AppID, e.Err)
}

// Unwrap returns the cause.
func (e *NotAuthorizedError) Unwrap() error { return e.Err }

// Is reports whether target is ErrNotAuthorized.
func (e *NotAuthorizedError) Is(target error) bool { return target == ErrNotAuthorized }

// notAuthorized is a NotAuthorizedError whose cause we state ourselves (no
// upstream call was made), as WeChat would answer it.
func notAuthorized(appID, why string) error {
	return &NotAuthorizedError{AppID: appID, Err: &wxtoken.APIError{Code: CodeNotAuthorized, Msg: why,
		Kind: wxtoken.KindPermanent}}
}

// classify is the Open Platform's errcode table for its component endpoints:
// credentials, the IP whitelist, an authorization gone and the daily quota
// are permanent; a ticket refused clears with the next push and is retried,
// as is anything else (-1 busy among them).
func classify(code int) wxtoken.ErrorKind {
	switch code {
	case CodeNotAuthorized, CodeClientIPNotRegistered, CodeInvalidComponent, CodeRefreshTokenInvalid,
		CodeAuthCodeInvalid, CodeAuthCodeExpired,
		wxtoken.CodeInvalidAppID, wxtoken.CodeInvalidSecret, wxtoken.CodeMissingAppID,
		wxtoken.CodeMissingSecret, wxtoken.CodeDailyQuota:
		return wxtoken.KindPermanent
	}
	return wxtoken.KindRetryable
}

// classifyWithToken is classify for endpoints that take the
// component_access_token, where 40001, 40014 and 42001 reject that token.
func classifyWithToken(code int) wxtoken.ErrorKind {
	switch code {
	case wxtoken.CodeInvalidCredential, wxtoken.CodeInvalidToken, wxtoken.CodeTokenExpired:
		return wxtoken.KindTokenRejected
	}
	return classify(code)
}

// classifyComponentToken is classify for api_component_token, where 40001
// is a wrong component secret.
func classifyComponentToken(code int) wxtoken.ErrorKind {
	if code == wxtoken.CodeInvalidCredential {
		return wxtoken.KindPermanent
	}
	return classify(code)
}

// apiCode returns the errcode of err's *wxtoken.APIError, or 0.
func apiCode(err error) int {
	var apiErr *wxtoken.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	return 0
}
