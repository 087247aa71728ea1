package wxtest

import (
	"net/http"
	"time"
)

// Ticket types of GET /cgi-bin/ticket/getticket, and the kinds of WeCom
// ticket: WeCom's corp ticket (get_jsapi_ticket) is its "jsapi" kind.
const (
	TicketJSAPI       = "jsapi"
	TicketWxCard      = "wx_card"
	TicketAgentConfig = "agent_config"
)

// ticket is one JS-SDK ticket the fake issued.
type ticket struct {
	value   string
	expires time.Time
	// invalidAt, when set, is when a rotated-away ticket stops working.
	invalidAt time.Time
	// via is the token that fetched the ticket; it matters only under
	// WithTicketsDieWithToken.
	via *token
}

// valid reports whether t still works at now.
func (t *ticket) valid(now time.Time, dieWithToken bool) bool {
	if !now.Before(t.expires) {
		return false
	}
	if !t.invalidAt.IsZero() && !now.Before(t.invalidAt) {
		return false
	}
	return !dieWithToken || t.via.check(now) == CodeOK
}

func (t *ticket) invalidateAt(at time.Time) {
	if t.invalidAt.IsZero() || at.Before(t.invalidAt) {
		t.invalidAt = at
	}
}

// ticketSlot is the ticket state of one (account, type): the current ticket,
// the one before (alive only during a rotation's overlap) and the quota count.
type ticketSlot struct {
	cur, prev *ticket
	quota     window
}

// slot returns the slot for typ in m, making it on first use.
func slot(m *map[string]*ticketSlot, typ string) *ticketSlot {
	if *m == nil {
		*m = make(map[string]*ticketSlot)
	}
	sl, ok := (*m)[typ]
	if !ok {
		sl = &ticketSlot{}
		(*m)[typ] = sl
	}
	return sl
}

// has reports whether tk is a ticket of sl that works at now. Older tickets
// than sl.prev have all stopped working, so these two are enough.
func (sl *ticketSlot) has(tk string, now time.Time, dieWithToken bool) bool {
	if sl == nil || tk == "" {
		return false
	}
	for _, t := range []*ticket{sl.cur, sl.prev} {
		if t != nil && t.value == tk {
			return t.valid(now, dieWithToken)
		}
	}
	return false
}

// issueTicket answers a ticket call that passed every check. Without
// WithTicketRotation the current ticket comes back while it works and has at
// least a second left (so expires_in is never 0); otherwise, and on every call
// with rotation, a new one is issued. A rotated-away ticket works for Overlap
// more, as a superseded token does; any older one stops at once. The caller
// holds s.mu.
func (s *Server) issueTicket(sl *ticketSlot, via *token, now time.Time) *ticket {
	cur := sl.cur
	if !s.cfg.ticketRotation && cur != nil && cur.valid(now, s.cfg.ticketsDie) && cur.expires.Sub(now) >= time.Second {
		return cur
	}
	if s.cfg.ticketRotation {
		if sl.prev != nil {
			sl.prev.invalidateAt(now)
		}
		if cur != nil {
			cur.invalidateAt(now.Add(Overlap))
		}
	}
	sl.prev = cur
	sl.cur = &ticket{value: randomToken(), expires: now.Add(s.cfg.ticketLifetime), via: via}
	return sl.cur
}

type ticketBody struct {
	Errcode   int    `json:"errcode"`
	Errmsg    string `json:"errmsg"`
	Ticket    string `json:"ticket"`
	ExpiresIn int64  `json:"expires_in"`
}

// writeTicket sends a successful ticket answer.
func writeTicket(w http.ResponseWriter, t *ticket, now time.Time) {
	writeJSON(w, contentJSON, ticketBody{
		Errcode: CodeOK, Errmsg: "ok", Ticket: t.value,
		ExpiresIn: int64(t.expires.Sub(now) / time.Second),
	})
}

// serveTicket is GET /cgi-bin/ticket/getticket: the Official Account's
// JS-SDK (jsapi) and card (wx_card) tickets. The token is checked first, as
// at the business endpoints, then the method, the type and the daily quota.
func (s *Server) serveTicket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	typ := q.Get("type")
	s.mu.Lock()
	now := s.cfg.now()
	tok, code := s.lookupToken(q.Get("access_token"), now)
	switch {
	case code != CodeOK:
	case r.Method != http.MethodGet:
		code = CodeRequireGET
	case typ != TicketJSAPI && typ != TicketWxCard:
		code = CodeInvalidArgs
	}
	var t *ticket
	if code == CodeOK {
		sl := slot(&s.apps[tok.appID].tickets, typ)
		if sl.quota.take(beijingDay(now), s.cfg.ticketDaily) {
			t = s.issueTicket(sl, tok, now)
		} else {
			code = CodeDailyQuota
		}
	}
	s.mu.Unlock()
	if code != CodeOK {
		s.reject(w, contentJSON, code)
		return
	}
	writeTicket(w, t, now)
}

// lookupToken finds an Official Account token and checks it as the business
// endpoints do. The caller holds s.mu.
func (s *Server) lookupToken(tok string, now time.Time) (*token, int) {
	if tok == "" {
		return nil, CodeMissingToken
	}
	t, ok := s.tokens[tok]
	if !ok {
		return nil, CodeInvalidCredential
	}
	return t, t.check(now)
}

// TicketCalls returns how many requests reached /cgi-bin/ticket/getticket
// with type typ, whatever the answer (refused and faulted ones included).
// TicketCalls("") counts every getticket request, whatever its type.
func (s *Server) TicketCalls(typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if typ == "" {
		return s.counts.ticketAll
	}
	return s.counts.ticket[typ]
}

// CurrentTicket returns the latest ticket of type typ issued to appID, or ""
// if none. It may since have expired or been rotated away.
func (s *Server) CurrentTicket(appID, typ string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[appID]; ok {
		if sl := a.tickets[typ]; sl != nil && sl.cur != nil {
			return sl.cur.value
		}
	}
	return ""
}

// TicketValid reports whether tk is a ticket of type typ of appID that still
// works now: issued by the fake, not expired, not past the overlap of a
// rotation, and, under WithTicketsDieWithToken, fetched with a token that
// still works.
func (s *Server) TicketValid(appID, typ, tk string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[appID]
	return ok && a.tickets[typ].has(tk, s.cfg.now(), s.cfg.ticketsDie)
}
