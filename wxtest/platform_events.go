package wxtest

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
)

// The InfoTypes of the Open Platform's authorization events.
const (
	InfoVerifyTicket     = "component_verify_ticket"
	InfoAuthorized       = "authorized"
	InfoUpdateAuthorized = "updateauthorized"
	InfoUnauthorized     = "unauthorized"
)

// PlatformEvent is one authorization event WeChat sends to a component's
// event URL: its plain XML fields. Make one with NewVerifyTicket, Authorize or
// Unauthorize, or by hand for an unknown InfoType or a replay.
type PlatformEvent struct {
	ComponentAppID    string
	InfoType          string
	CreateTime        int64 // Unix seconds
	VerifyTicket      string
	AuthorizerAppID   string
	AuthorizationCode string
	CodeExpiredTime   int64
	PreAuthCode       string
}

// XML returns the event's plain XML, as it is before encryption.
func (ev PlatformEvent) XML() []byte {
	var b bytes.Buffer
	b.WriteString("<xml>")
	field := func(name, value string) {
		if value == "" {
			return
		}
		b.WriteString("<" + name + ">")
		_ = xml.EscapeText(&b, []byte(value))
		b.WriteString("</" + name + ">")
	}
	field("AppId", ev.ComponentAppID)
	field("CreateTime", strconv.FormatInt(ev.CreateTime, 10))
	field("InfoType", ev.InfoType)
	field("ComponentVerifyTicket", ev.VerifyTicket)
	field("AuthorizerAppid", ev.AuthorizerAppID)
	field("AuthorizationCode", ev.AuthorizationCode)
	if ev.CodeExpiredTime != 0 {
		field("AuthorizationCodeExpiredTime", strconv.FormatInt(ev.CodeExpiredTime, 10))
	}
	field("PreAuthCode", ev.PreAuthCode)
	b.WriteString("</xml>")
	return b.Bytes()
}

// ErrUnknownComponent is matched by the error of the event methods for a
// component appid the fake does not know.
var ErrUnknownComponent = errors.New("wxtest: unknown component appid")

// NewVerifyTicket issues a new component_verify_ticket to componentAppID, as
// WeChat does every 10 minutes, and returns its push. The ticket pushed
// before it keeps working for VerifyTicketInterval.
func (s *Server) NewVerifyTicket(componentAppID string) (PlatformEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.componentOf(componentAppID)
	if c == nil {
		return PlatformEvent{}, fmt.Errorf("%w %q", ErrUnknownComponent, componentAppID)
	}
	now := s.cfg.now()
	c.prevTicket = c.ticket
	c.ticket = &verifyTicket{value: randomCode("ticket@@@"), pushed: now}
	return PlatformEvent{ComponentAppID: componentAppID, InfoType: InfoVerifyTicket,
		CreateTime: now.Unix(), VerifyTicket: c.ticket.value}, nil
}

// Authorize is a merchant's consent on the authorization page: appID
// authorizes componentAppID with the permission sets funcs, gets a refresh
// token (a new one, as at WeChat, when it authorized before) and an
// authorization code. It returns the authorized event (updateauthorized when
// appID was already authorized), whose AuthorizationCode is also what the
// redirect carries.
func (s *Server) Authorize(componentAppID, appID string, funcs ...int) (PlatformEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.componentOf(componentAppID)
	if c == nil {
		return PlatformEvent{}, fmt.Errorf("%w %q", ErrUnknownComponent, componentAppID)
	}
	now := s.cfg.now()
	a := c.authorizers[appID]
	info := InfoAuthorized
	if a == nil {
		a = &authorizer{appID: appID}
		c.authorizers[appID] = a
	} else if a.authorized {
		info = InfoUpdateAuthorized
	}
	if len(funcs) == 0 {
		funcs = []int{1}
	}
	a.funcs, a.authorized, a.authTime = append([]int(nil), funcs...), true, now
	if info == InfoAuthorized || a.refresh == "" {
		a.newRefresh()
	}
	code := randomCode("queryauthcode@@@")
	c.authCodes[code] = authCode{appID: appID, expires: now.Add(AuthCodeLifetime)}
	return PlatformEvent{ComponentAppID: componentAppID, InfoType: info, CreateTime: now.Unix(),
		AuthorizerAppID: appID, AuthorizationCode: code, CodeExpiredTime: now.Add(AuthCodeLifetime).Unix()}, nil
}

// Unauthorize is the merchant cancelling the authorization: appID's refresh
// token stops working (61003) and it leaves the authorizer list. It returns
// the unauthorized event.
func (s *Server) Unauthorize(componentAppID, appID string) (PlatformEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.componentOf(componentAppID)
	if c == nil {
		return PlatformEvent{}, fmt.Errorf("%w %q", ErrUnknownComponent, componentAppID)
	}
	if a := c.authorizers[appID]; a != nil {
		a.authorized = false
	}
	return PlatformEvent{ComponentAppID: componentAppID, InfoType: InfoUnauthorized,
		CreateTime: s.cfg.now().Unix(), AuthorizerAppID: appID}, nil
}

// EventRequest returns the POST WeChat would send to target with ev: the
// XML encrypted for ev's component and signed, with timestamp, nonce,
// encrypt_type=aes and msg_signature in the query. A test may alter it (a
// flipped bit, another signature) before delivering it.
func (s *Server) EventRequest(target string, ev PlatformEvent) (*http.Request, error) {
	s.mu.Lock()
	c := s.componentOf(ev.ComponentAppID)
	s.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownComponent, ev.ComponentAppID)
	}
	ts := strconv.FormatInt(ev.CreateTime, 10)
	nonce := strconv.FormatInt(int64(len(target))+ev.CreateTime%1000003, 10)
	enc, sig, err := c.crypter.Encrypt(ev.XML(), ts, nonce)
	if err != nil {
		return nil, fmt.Errorf("wxtest: encrypt event: %w", err)
	}
	var body bytes.Buffer
	body.WriteString("<xml><AppId><![CDATA[" + ev.ComponentAppID + "]]></AppId><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>")
	q := url.Values{"timestamp": {ts}, "nonce": {nonce}, "encrypt_type": {"aes"}, "msg_signature": {sig}}
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	req, err := http.NewRequest(http.MethodPost, target+sep+q.Encode(), &body)
	if err != nil {
		return nil, fmt.Errorf("wxtest: event request: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml")
	return req, nil
}

// Deliver sends ev to the handler h in process (it works inside a
// testing/synctest bubble) and returns the HTTP status and body it answered.
func (s *Server) Deliver(h http.Handler, ev PlatformEvent) (status int, body string, err error) {
	req, err := s.EventRequest("http://platform.invalid/wechat/events", ev)
	if err != nil {
		return 0, "", err
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), nil
}

// DeliverURL sends ev to the event URL target through hc (nil:
// http.DefaultClient) and returns the status and body of the answer.
func (s *Server) DeliverURL(ctx context.Context, hc *http.Client, target string, ev PlatformEvent) (status int, body string, err error) {
	req, err := s.EventRequest(target, ev)
	if err != nil {
		return 0, "", err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		return 0, "", fmt.Errorf("wxtest: deliver event: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, string(b), err
}

// PushTicket issues a new verify ticket (NewVerifyTicket) and delivers it to
// h, as WeChat's ten-minute push. It returns the ticket, and an error unless
// h answered 200 "success".
func (s *Server) PushTicket(h http.Handler, componentAppID string) (string, error) {
	ev, err := s.NewVerifyTicket(componentAppID)
	if err != nil {
		return "", err
	}
	status, body, err := s.Deliver(h, ev)
	if err == nil && (status != http.StatusOK || body != "success") {
		err = fmt.Errorf("wxtest: the platform answered the ticket push with HTTP %d %q", status, body)
	}
	return ev.VerifyTicket, err
}
