package openplatform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/wxtoken/wxtoken"
)

// componentSource obtains the component_access_token with the stored verify
// ticket (api_component_token).
type componentSource struct{ p *Platform }

// Info names the component; the token is not an Official Account's
// access_token, so a Transport refuses it.
func (s *componentSource) Info() wxtoken.SourceInfo {
	return wxtoken.SourceInfo{Name: s.p.appID + " component_access_token", AppID: s.p.appID, NotAccessToken: true}
}

// Redact removes the component secret from text.
func (s *componentSource) Redact(text string) string { return wxtoken.ScrubText(text, s.p.secret()) }

// InputArrived reports whether a verify ticket was saved in this process
// since the last Fetch began: the engine then runs Fetch again at once.
func (s *componentSource) InputArrived() bool { return s.p.ticketArrived.Load() }

// Fetch exchanges the stored verify ticket for a component_access_token.
// Without a usable ticket it asks WeChat for a push and fails with
// ErrNoVerifyTicket, without calling api_component_token.
func (s *componentSource) Fetch(ctx context.Context, req wxtoken.FetchRequest) (wxtoken.Token, error) {
	p := s.p
	base := baseOf(req)
	p.ticketArrived.Store(false) // before the read: a ticket saved from now on is read, or arrives anew
	rec, err := p.currentTicket(ctx)
	if err != nil {
		p.askForTicket(ctx, req.HTTPClient, base)
		return wxtoken.Token{}, fmt.Errorf("%w (%v)", ErrNoVerifyTicket, err)
	}
	ticket := rec.AccessToken
	body, err := json.Marshal(map[string]string{"component_appid": p.appID,
		"component_appsecret": p.secret(), "component_verify_ticket": ticket})
	if err != nil {
		return wxtoken.Token{}, fmt.Errorf("openplatform: encode api_component_token: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/cgi-bin/component/api_component_token",
		bytes.NewReader(body))
	if err != nil {
		return wxtoken.Token{}, wxtoken.ScrubError(fmt.Errorf("openplatform: api_component_token: %w", err), p.secret())
	}
	hreq.Header.Set("Content-Type", "application/json")
	tok, err := wxtoken.FetchToken(req.HTTPClient, hreq, "component_access_token", classifyComponentToken,
		p.secret(), ticket)
	if code := apiCode(err); code == CodeTicketExpired || code == CodeTicketInvalid {
		p.refuseTicket(ctx, rec)
		p.askForTicket(ctx, req.HTTPClient, base)
		return wxtoken.Token{}, fmt.Errorf("%w: %w", ErrNoVerifyTicket, err)
	}
	return tok, err
}

// baseOf is the origin a Source calls: the Client's base URL, or WeChat's.
func baseOf(req wxtoken.FetchRequest) string {
	if req.BaseURL != "" {
		return req.BaseURL
	}
	return defaultBaseURL
}

// componentToken returns the component_access_token and calls f with it;
// when f's error says WeChat rejected that token, it is invalidated and f is
// called once more with the next one.
func (p *Platform) withComponentToken(ctx context.Context, f func(tok string) error) error {
	tok, err := p.component.Get(ctx)
	if err != nil {
		return fmt.Errorf("openplatform: component_access_token: %w", err)
	}
	err = f(tok)
	if !wxtoken.IsTokenRejected(err) {
		return err
	}
	if tok, err = p.component.Invalidate(ctx, tok); err != nil {
		return fmt.Errorf("openplatform: component_access_token after a rejection: %w", err)
	}
	return f(tok)
}
