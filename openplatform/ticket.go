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
	p.ticketArrived.Store(true)
	return true, nil
}

// refusedTicket marks a verify ticket record that WeChat refused (61005,
// 61006): it replaces the ticket in the Store, dated just after it, so that
// no replica, nor a restarted process, sends that ticket again, while the
// next push, dated later, replaces it.
const refusedTicket = "-refused-"

// currentTicket returns the stored verify ticket record while it works and
// WeChat has not refused it.
func (p *Platform) currentTicket(ctx context.Context) (wxtoken.Token, error) {
	rec, err := p.store.Load(ctx, p.appID+ticketSuffix)
	if err != nil {
		return wxtoken.Token{}, err
	}
	p.ticketMu.Lock()
	refused := rec.AccessToken == p.refusedTicket || rec.AccessToken == refusedTicket
	p.ticketMu.Unlock()
	switch {
	case refused:
		return wxtoken.Token{}, errors.New("WeChat refused the stored ticket")
	case !time.Now().Before(rec.ExpiresAt()):
		return wxtoken.Token{}, errors.New("the stored ticket is over 12 hours old")
	}
	return rec, nil
}

// refuseTicket records that WeChat refused the ticket of rec (61005, 61006),
// in the Store and in this process (should the Store fail), so that it is
// not sent again; the next push replaces it.
func (p *Platform) refuseTicket(ctx context.Context, rec wxtoken.Token) {
	p.ticketMu.Lock()
	p.refusedTicket = rec.AccessToken
	p.ticketMu.Unlock()
	mark := wxtoken.Token{AccessToken: refusedTicket, ExpiresIn: rec.ExpiresIn, CreateTime: rec.CreateTime.Add(time.Millisecond)}
	if err := p.store.Save(ctx, p.appID+ticketSuffix, mark); err != nil && !errors.Is(err, wxtoken.ErrNewerToken) {
		p.log.Warn("openplatform: recording WeChat's refusal of the verify ticket in the store failed; other replicas may send it again",
			"component", p.appID, "err", err)
	}
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
