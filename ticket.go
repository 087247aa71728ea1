package wxtoken

import (
	"context"

	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// TicketType is the type of an Official Account's JS-SDK ticket.
type TicketType string

// The ticket types getticket hands out.
const (
	TicketJSAPI  TicketType = "jsapi"   // jsapi_ticket: signs wx.config (SignJSSDK)
	TicketWxCard TicketType = "wx_card" // the card api_ticket: signs card calls (SignCard)
)

// TicketSpec describes a ticket that an API hands out for an access_token:
// GET BaseURL + Path ? access_token=... & Query, answering
// {"errcode":0,"ticket":"...","expires_in":7200}. NewTicket fills one in for
// the Official Account's tickets; the wecom package for WeCom's.
type TicketSpec struct {
	Key   string     // the Store key of the ticket: derived from the account, never a secret
	Path  string     // the endpoint's path, such as "/cgi-bin/ticket/getticket"
	Query url.Values // query parameters besides access_token, such as type=jsapi
	Name  string     // names the ticket in logs
	JSAPI bool       // the ticket signs wx.config (or WeCom's wx.agentConfig): JSSDKConfig may use it
}

// NewTicket returns a Client for a JS-SDK ticket of the account whose
// access_token c provides. Like any Client it is cached, persisted, shared
// across replicas (one getticket per lifetime for the whole fleet) and renewed
// ahead of expiry; Get returns the ticket. Its key is "<appid>.ticket.<type>",
// so a plain and a stable token Client of one account share it.
//
// It shares c's Store, HTTP client, base URL, logger and Observer unless opts
// say otherwise. When getticket rejects c's token (40001, 40014, 42001) the
// ticket Client reports it to c.Invalidate (so that a thousand ticket fetchers
// cause one token fetch) and asks once more with the token that returns. A
// Transport refuses a ticket Client (ErrNotAccessToken).
func NewTicket(c *Client, typ TicketType, opts ...Option) (*Client, error) {
	if typ != TicketJSAPI && typ != TicketWxCard {
		return nil, fmt.Errorf("wxtoken: unknown ticket type %q", typ)
	}
	return NewTicketClient(c, TicketSpec{
		Key:   c.info.AppID + ".ticket." + string(typ),
		Path:  "/cgi-bin/ticket/getticket",
		Query: url.Values{"type": {string(typ)}},
		Name:  c.info.AppID + " " + string(typ) + " ticket",
		JSAPI: typ == TicketJSAPI,
	}, opts...)
}

// NewTicketClient returns a Client for the ticket spec describes, fetched with
// the access_token of tokens, with the sharing and healing NewTicket describes.
func NewTicketClient(tokens *Client, spec TicketSpec, opts ...Option) (*Client, error) {
	if tokens == nil || tokens.info.NotAccessToken {
		return nil, errors.New("wxtoken: a ticket needs a Client of an access_token")
	}
	inherited := []Option{WithStore(tokens.store), WithLogger(tokens.log), WithObserver(tokens.cfg.observer)}
	if tokens.cfg.httpClient != nil {
		inherited = append(inherited, WithHTTPClient(tokens.cfg.httpClient))
	}
	if tokens.cfg.baseURLSet {
		inherited = append(inherited, WithBaseURL(tokens.cfg.baseURL))
	}
	src := &ticketSource{tokens: tokens, spec: spec}
	return NewClient(spec.Key, src, append(inherited, opts...)...)
}

// JSSDKConfig returns the wx.config fields for pageURL (appId, timestamp,
// nonceStr, signature), signed with c's ticket: a handler writes it as JSON.
// c must be a jsapi ticket Client (NewTicket with TicketJSAPI, or WeCom's).
func (c *Client) JSSDKConfig(ctx context.Context, pageURL string) (JSSDKConfig, error) {
	src, ok := c.src.(*ticketSource)
	if !ok || !src.spec.JSAPI {
		return JSSDKConfig{}, fmt.Errorf("wxtoken: JSSDKConfig needs a jsapi ticket Client, not %s", c.info.Name)
	}
	ticket, err := c.Get(ctx)
	if err != nil {
		return JSSDKConfig{}, err
	}
	return NewJSSDKConfig(c.info.AppID, ticket, pageURL)
}

// ticketSource fetches a ticket with the access_token of another Client.
type ticketSource struct {
	tokens *Client
	spec   TicketSpec
}

// Info names the ticket; it belongs to the token's account, is not an
// access_token, and cannot be forced.
func (s *ticketSource) Info() SourceInfo {
	return SourceInfo{Name: s.spec.Name, AppID: s.tokens.info.AppID, APIOrigin: s.tokens.cfg.baseURL,
		NotAccessToken: true}
}

// Fetch gets a ticket; a rejection of the access_token is healed once.
func (s *ticketSource) Fetch(ctx context.Context, req FetchRequest) (Token, error) {
	access, err := s.tokens.Get(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("wxtoken: %s: no access_token: %w", s.spec.Name, err)
	}
	tok, err := s.get(ctx, req, access)
	if !IsTokenRejected(err) {
		return tok, err
	}
	next, ierr := s.tokens.Invalidate(ctx, access)
	if ierr != nil {
		return Token{}, fmt.Errorf("%w; the access_token could not be replaced: %w", err, ierr)
	}
	return s.get(ctx, req, next)
}

// get calls the ticket endpoint once with access.
func (s *ticketSource) get(ctx context.Context, req FetchRequest, access string) (Token, error) {
	base := req.BaseURL
	if base == "" {
		base = s.tokens.cfg.baseURL
	}
	q := url.Values{"access_token": {access}}
	for k, v := range s.spec.Query {
		q[k] = v
	}
	r := redactor{tokenRedaction(access)}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, base+s.spec.Path+"?"+q.Encode(), nil)
	if err != nil {
		return Token{}, r.err(fmt.Errorf("wxtoken: %s: %w", s.spec.Name, err))
	}
	return fetchToken(req.HTTPClient, hreq, "ticket", ticketKind, r)
}

// ticketKind classifies a ticket endpoint's errcode: a rejected access_token
// is healed by the caller, busy and the minute quota are retried, anything
// else (a wrong type, the day's quota spent) will not pass by retrying soon.
func ticketKind(code int) ErrorKind {
	if kind := businessKind(code); kind != KindBusiness {
		return kind
	}
	return KindPermanent
}
