package openplatform

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wxtoken/wxtoken"
)

// TicketLifetime is how long a component_verify_ticket works after WeChat
// pushed it.
const TicketLifetime = 12 * time.Hour

// The verify ticket is kept as a wxtoken.Token record: AccessToken is the
// ticket, CreateTime the push's CreateTime, ExpiresIn its 12 h. So the
// Store's newest-wins rule is the ticket's: a replayed older push is refused
// with ErrNewerToken and changes nothing.

// saveTicket stores the ticket pushed at created. It reports whether the
// Store took it; a push older than the stored ticket is not an error.
func (p *Platform) saveTicket(ctx context.Context, ticket string, created time.Time) (bool, error) {
	rec := wxtoken.Token{AccessToken: ticket, ExpiresIn: int64(TicketLifetime / time.Second), CreateTime: created}
	if err := rec.Validate(); err != nil {
		return false, fmt.Errorf("openplatform: the pushed verify ticket: %w", err)
	}
	if !time.Now().Before(rec.ExpiresAt()) {
		return false, nil // a replay from over 12 h ago
	}
	err := p.store.Save(ctx, p.appID+ticketSuffix, rec)
	switch {
	case errors.Is(err, wxtoken.ErrNewerToken):
		return false, nil
	case err != nil:
		return false, wxtoken.ScrubError(fmt.Errorf("openplatform: saving the verify ticket: %w", err), ticket)
	}
	return true, nil
}

// currentTicket returns the stored verify ticket while it works and WeChat
// has not refused it.
func (p *Platform) currentTicket(ctx context.Context) (string, error) {
	rec, err := p.store.Load(ctx, p.appID+ticketSuffix)
	if err != nil {
		return "", err
	}
	p.ticketMu.Lock()
	refused := rec.AccessToken == p.refusedTicket
	p.ticketMu.Unlock()
	switch {
	case refused:
		return "", errors.New("WeChat refused the stored ticket")
	case !time.Now().Before(rec.ExpiresAt()):
		return "", errors.New("the stored ticket is over 12 hours old")
	}
	return rec.AccessToken, nil
}

// refuseTicket remembers that WeChat refused ticket (61005, 61006), so that
// it is not sent again; the next push replaces it.
func (p *Platform) refuseTicket(ticket string) {
	p.ticketMu.Lock()
	p.refusedTicket = ticket
	p.ticketMu.Unlock()
}

// askForTicket calls api_start_push_ticket, at most once per push interval
// in this process, so that a Platform without a ticket costs WeChat a call
// every ten minutes at most, however often callers ask for a token.
func (p *Platform) askForTicket(ctx context.Context, hc *http.Client, base string) {
	p.ticketMu.Lock()
	now := time.Now()
	due := p.lastPushAsk.IsZero() || now.Sub(p.lastPushAsk) >= pushAskInterval
	if due {
		p.lastPushAsk = now
	}
	p.ticketMu.Unlock()
	if !due {
		return
	}
	body := map[string]string{"component_appid": p.appID, "component_secret": p.secret()}
	var out struct{}
	err := call(ctx, hc, base, "/cgi-bin/component/api_start_push_ticket", nil, body, &out, classify, p.secret())
	if err != nil {
		p.log.Error("openplatform: asking WeChat to push a verify ticket failed", "component", p.appID, "err", err)
		return
	}
	p.log.Warn("openplatform: no usable verify ticket; asked WeChat to push one", "component", p.appID)
}
