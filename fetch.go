package wxtoken

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponseBytes caps how much of a token response is read: a real one is about
// 200 bytes, so anything near this is not a token and must not exhaust memory.
const maxResponseBytes = 64 << 10

// maxErrMsgLen bounds the errmsg kept in an APIError.
const maxErrMsgLen = 256

// fetcher calls one of WeChat's two token endpoints.
type fetcher struct {
	hc      *http.Client
	baseURL string
	appID   string
	secret  string
	stable  bool
}

// fetch obtains a new token. force asks stable_token for force_refresh and is
// ignored by the plain endpoint. Errors never contain the secret.
func (f *fetcher) fetch(ctx context.Context, force bool) (Token, error) {
	req, err := f.newRequest(ctx, force)
	if err != nil {
		return Token{}, err
	}
	started := time.Now().UTC()
	resp, err := f.hc.Do(req)
	if err != nil {
		return Token{}, f.redactErr(err)
	}
	defer resp.Body.Close()
	body, err := readCapped(resp.Body)
	if err != nil {
		return Token{}, f.redactErr(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Token{}, &StatusError{StatusCode: resp.StatusCode, Status: resp.Status}
	}
	return decodeTokenResponse(body, started)
}

func (f *fetcher) newRequest(ctx context.Context, force bool) (*http.Request, error) {
	if f.stable {
		body, err := json.Marshal(stableRequest{
			GrantType: "client_credential", AppID: f.appID, Secret: f.secret, ForceRefresh: force,
		})
		if err != nil {
			return nil, fmt.Errorf("wxtoken: encode stable_token request: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			f.baseURL+"/cgi-bin/stable_token", bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("wxtoken: build stable_token request: %w", f.redactErr(err))
		}
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	}
	q := url.Values{"grant_type": {"client_credential"}, "appid": {f.appID}, "secret": {f.secret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		f.baseURL+"/cgi-bin/token?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("wxtoken: build token request: %w", f.redactErr(err))
	}
	return req, nil
}

type stableRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

func readCapped(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxResponseBytes+1))
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: body truncated after %d bytes: %w", ErrMalformedResponse, len(body), err)
	case err != nil:
		// A timeout or a reset: the network's fault, reported as such.
		return nil, fmt.Errorf("wxtoken: reading the token response: %w", err)
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("%w: body larger than %d bytes", ErrMalformedResponse, maxResponseBytes)
	}
	return body, nil
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	ErrCode     int    `json:"errcode"`
	ErrMsg      string `json:"errmsg"`
}

// decodeTokenResponse turns a token endpoint's body into a Token obtained at
// created, or an error: *APIError for a WeChat error, ErrMalformedResponse for
// anything else. The body is never quoted in the error, since it may hold a token.
func decodeTokenResponse(body []byte, created time.Time) (Token, error) {
	var r tokenResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return Token{}, fmt.Errorf("%w: %d bytes that are not a JSON object (%s)",
			ErrMalformedResponse, len(body), jsonProblem(err))
	}
	if r.ErrCode != 0 {
		return Token{}, &APIError{Code: r.ErrCode, Msg: truncate(r.ErrMsg, maxErrMsgLen)}
	}
	tok := Token{AccessToken: r.AccessToken, ExpiresIn: r.ExpiresIn, CreateTime: created}
	if err := tok.Validate(); err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrMalformedResponse, err)
	}
	return tok, nil
}

// jsonProblem describes a decoding error without quoting the input.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	}
	return "undecodable"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// redactErr removes the secret from err. The plain endpoint carries the secret in
// its URL, and *url.Error prints the whole URL.
func (f *fetcher) redactErr(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = &url.Error{Op: ue.Op, URL: f.redact(ue.URL), Err: f.redactText(ue.Err)}
	}
	return f.redactText(err)
}

// redactText keeps err as it is unless its text quotes the secret, as some
// transports' errors do; then only the redacted text is kept.
func (f *fetcher) redactText(err error) error {
	if msg := err.Error(); quotes(msg, f.secret) {
		return errors.New(f.redact(msg))
	}
	return err
}

// redact replaces every form of the secret in s.
func (f *fetcher) redact(s string) string {
	return scrub(s, f.secret, "REDACTED")
}

// quotes reports whether s holds value, as it is or query-escaped.
func quotes(s, value string) bool {
	return value != "" && (strings.Contains(s, value) || strings.Contains(s, url.QueryEscape(value)))
}

// scrub replaces value in s, as it is and query-escaped, with name.
func scrub(s, value, name string) string {
	if value == "" {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, url.QueryEscape(value), name), value, name)
}
