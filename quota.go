package wxtoken

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// WeChat counts every API call against a daily quota per account (2000 a day
// for /cgi-bin/token) and answers 45009 once it is spent, until midnight in
// Beijing. Quota reads what is left; ClearQuota and ClearQuotaV2 reset an
// account's quotas, ten times a month between them.

// Paths of the quota endpoints, relative to the base URL.
const (
	PathQuotaGet     = "/cgi-bin/openapi/quota/get"
	PathClearQuota   = "/cgi-bin/clear_quota"
	PathClearQuotaV2 = "/cgi-bin/clear_quota/v2"
)

// CodeClearQuotaSpent is WeChat's answer to clear_quota and clear_quota/v2
// once the month's ten resets are used.
const CodeClearQuotaSpent = 48006

// ErrNoSecret is matched by ClearQuotaV2's error for a Client whose Source
// is not the Official Account's: only that one holds an AppSecret to send.
var ErrNoSecret = errors.New("wxtoken: clear_quota/v2 needs the Client of an Official Account (New), which holds its AppSecret")

// beijing is the time zone in which WeChat's daily quotas reset.
var beijing = time.FixedZone("CST", 8*60*60)

// DailyQuotaReset returns the first Beijing midnight after now: when WeChat
// resets the daily quotas that answered 45009.
func DailyQuotaReset(now time.Time) time.Time {
	b := now.In(beijing)
	return time.Date(b.Year(), b.Month(), b.Day()+1, 0, 0, 0, 0, beijing)
}

// Quota is an API's daily quota for the account, as openapi/quota/get
// reports it.
type Quota struct {
	DailyLimit int `json:"daily_limit"`
	Used       int `json:"used"`
	Remain     int `json:"remain"`
}

// Quota reports the daily quota of the API at cgiPath (such as
// "/cgi-bin/token") for the Client's account, with the Client's access_token.
// A rejection of the token (40001, 40014, 42001) is healed once through
// Invalidate. WeChat's errors are *APIError; none holds the token.
func (c *Client) Quota(ctx context.Context, cgiPath string) (Quota, error) {
	body, err := json.Marshal(map[string]string{"cgi_path": cgiPath})
	if err != nil {
		return Quota{}, fmt.Errorf("wxtoken: quota: %w", err)
	}
	var answer struct {
		Quota *Quota `json:"quota"`
	}
	if err := c.withToken(ctx, PathQuotaGet, body, &answer); err != nil {
		return Quota{}, err
	}
	if answer.Quota == nil {
		return Quota{}, fmt.Errorf("%w: %s answered no quota", ErrMalformedResponse, PathQuotaGet)
	}
	return *answer.Quota, nil
}

// ClearQuota resets the daily quotas of the Client's account through
// /cgi-bin/clear_quota, with the Client's access_token: it cannot help once
// 45009 has left the account without a token (ClearQuotaV2 can). WeChat
// allows ten resets a month, shared with ClearQuotaV2; the eleventh answers
// CodeClearQuotaSpent.
func (c *Client) ClearQuota(ctx context.Context) error {
	body, err := json.Marshal(map[string]string{"appid": c.info.AppID})
	if err != nil {
		return fmt.Errorf("wxtoken: clear_quota: %w", err)
	}
	err = c.withToken(ctx, PathClearQuota, body, nil)
	if err == nil {
		c.reopenGate()
	}
	return err
}

// ClearQuotaV2 resets the daily quotas of the Client's account through
// /cgi-bin/clear_quota/v2, with the appid and AppSecret and no access_token:
// the way out after the token endpoint answered 45009. It shares ClearQuota's
// ten a month. A Client not made by New has no AppSecret: ErrNoSecret. No
// level of an error holds the secret.
func (c *Client) ClearQuotaV2(ctx context.Context) error {
	src, ok := c.src.(*officialSource)
	if !ok {
		return ErrNoSecret
	}
	secret := src.secret()
	r := redactor{{value: secret, name: "REDACTED"}}
	q := url.Values{"appid": {src.appID}, "appsecret": {secret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.baseURL+PathClearQuotaV2+"?"+q.Encode(), nil)
	if err != nil {
		return r.err(fmt.Errorf("wxtoken: clear_quota/v2: %w", err))
	}
	err = c.post(req, r, clearQuotaKind, nil)
	if err == nil {
		c.reopenGate()
	}
	return err
}

// withToken posts body to path with the Client's access_token and decodes
// the answer into v (when not nil); a rejected token is replaced once.
func (c *Client) withToken(ctx context.Context, path string, body []byte, v any) error {
	if c.info.NotAccessToken {
		return fmt.Errorf("%w: %s", ErrNotAccessToken, path)
	}
	access, err := c.Get(ctx)
	if err != nil {
		return err
	}
	err = c.postToken(ctx, path, access, body, v)
	if !IsTokenRejected(err) {
		return err
	}
	next, ierr := c.Invalidate(ctx, access)
	if ierr != nil {
		return fmt.Errorf("%w; the access_token could not be replaced: %w", err, ierr)
	}
	return c.postToken(ctx, path, next, body, v)
}

// postToken posts body to path once with access.
func (c *Client) postToken(ctx context.Context, path, access string, body []byte, v any) error {
	r := redactor{tokenRedaction(access)}
	u := c.cfg.baseURL + path + "?" + url.Values{"access_token": {access}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return r.err(fmt.Errorf("wxtoken: %s: %w", path, err))
	}
	req.Header.Set("Content-Type", "application/json")
	return c.post(req, r, businessKind, v)
}

// post sends req through the Client's redirect-safe HTTP client and reads a
// WeChat answer: an errcode other than 0 is an *APIError classified by
// classify, and v (when not nil) receives the rest. Errors are scrubbed by r.
func (c *Client) post(req *http.Request, r redactor, classify func(int) ErrorKind, v any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		return r.err(err)
	}
	defer resp.Body.Close()
	raw, err := readCapped(resp.Body)
	if err != nil {
		return r.err(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{StatusCode: resp.StatusCode, Status: upstreamText(r, resp.Status, maxStatusLen)}
	}
	var answer struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if checkUniqueKeys(raw) != nil || json.Unmarshal(raw, &answer) != nil {
		return fmt.Errorf("%w: %s answered %d bytes that are not one JSON object", ErrMalformedResponse, req.URL.Path, len(raw))
	}
	if answer.ErrCode != 0 {
		return &APIError{Code: answer.ErrCode, Msg: upstreamText(r, answer.ErrMsg, maxErrMsgLen),
			Endpoint: req.URL.Path, Kind: classify(answer.ErrCode)}
	}
	if v != nil && json.Unmarshal(raw, v) != nil {
		return fmt.Errorf("%w: %s answered fields of the wrong type", ErrMalformedResponse, req.URL.Path)
	}
	return nil
}

// clearQuotaKind classifies clear_quota/v2's errcodes: busy is worth another
// try, anything else (a wrong secret, the month's resets spent) is not.
func clearQuotaKind(code int) ErrorKind {
	if code == CodeSystemBusy {
		return KindRetryable
	}
	return KindPermanent
}

// noteQuotaSpent logs, and tells the Observer, when err is the token
// endpoint's 45009: nothing but the reset at Beijing midnight (or ClearQuota)
// brings the quota back, and the log says when.
func (c *Client) noteQuotaSpent(err error) {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != CodeDailyQuota {
		return
	}
	resetAt := DailyQuotaReset(time.Now())
	c.log.Warn("wxtoken: the daily quota of the token endpoint is spent; ClearQuotaV2 or the reset brings it back",
		"appid", c.appID, "resets_at", resetAt.Format(time.RFC3339), "err", err)
	c.observe(Event{Kind: EventQuotaSpent, Outcome: OutcomePermanent, Until: resetAt, Err: err})
}
