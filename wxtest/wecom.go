package wxtest

import (
	"net"
	"net/http"
	"slices"
	"time"
)

// The WeCom corp the fake knows when no WithCorp option is given, with one
// application. They have the shape of real ones: "ww" and 16 hex digits, and
// 43 characters of [A-Za-z0-9_-].
const (
	DefaultCorpID     = "ww0123456789abcdef"
	DefaultCorpSecret = "Cs0123456789abcdefghijklmnopqrstuvwxyzABCDE"
)

// WeCom's paths. They share the fake's one base URL with the Official Account
// paths (none collide), so a test points a WeCom client's base URL, in place
// of https://qyapi.weixin.qq.com, at the same URL().
const (
	// PathWeComToken is WeCom's gettoken: a token per (corpid, application secret).
	PathWeComToken = "/cgi-bin/gettoken"
	// PathWeComSend is WeCom's message/send, the business endpoint that
	// checks a WeCom token.
	PathWeComSend = "/cgi-bin/message/send"
	// PathWeComJSAPITicket hands out the corp's JS-SDK ticket (kind TicketJSAPI).
	PathWeComJSAPITicket = "/cgi-bin/get_jsapi_ticket"
	// PathWeComAgentTicket hands out an application's agent_config ticket
	// (type=agent_config, kind TicketAgentConfig).
	PathWeComAgentTicket = "/cgi-bin/ticket/get"
)

// WeCom's numbers, the fake's defaults.
const (
	// DefaultWeComTokenQuota is how many successful gettoken calls each
	// application may make a day. WeCom publishes no figure; this one only
	// catches runaway callers.
	DefaultWeComTokenQuota = 2000
	// DefaultWeComTicketQuota is how many calls each application may make an
	// hour for each kind of ticket, WeCom's documented limit.
	DefaultWeComTicketQuota = 100
)

// contentWeCom is the content type qyapi.weixin.qq.com labels its JSON with.
const contentWeCom = "application/json; charset=UTF-8"

type wecomConfig struct {
	corps            map[string][]string // corpid → application secrets; nil: the default corp
	wecomTokenDaily  int
	wecomTicketHour  int
	wecomTrustedIPs  []string // nil: any address
	wecomTrustedOnly bool
}

func defaultWeCom() wecomConfig {
	return wecomConfig{wecomTokenDaily: DefaultWeComTokenQuota, wecomTicketHour: DefaultWeComTicketQuota}
}

// WithCorp adds a WeCom corp and its applications, one secret each; each
// (corpID, secret) gets its own token. Given at least once, it replaces the
// default corp (DefaultCorpID with DefaultCorpSecret); give it several times
// for several corps, or for more applications of one.
func WithCorp(corpID string, secrets ...string) Option {
	return func(c *config) {
		if c.corps == nil {
			c.corps = make(map[string][]string)
		}
		c.corps[corpID] = append(c.corps[corpID], secrets...)
	}
}

// WithWeComTokenQuota sets how many successful gettoken calls each WeCom
// application may make per day before errcode 45009 (default
// DefaultWeComTokenQuota). n <= 0 means no limit.
func WithWeComTokenQuota(perDay int) Option {
	return func(c *config) { c.wecomTokenDaily = perDay }
}

// WithWeComTicketQuota sets how many ticket calls each WeCom application may
// make per clock hour for each kind of ticket before errcode 45009 (default
// DefaultWeComTicketQuota). n <= 0 means no limit.
func WithWeComTicketQuota(perHour int) Option {
	return func(c *config) { c.wecomTicketHour = perHour }
}

// WithWeComTrustedIPs makes every WeCom endpoint answer 60020 to requests
// from any other address, as WeCom does for an application with a trusted-IP
// list. Requests through Client come from 127.0.0.1, as do those to a
// NewServer listener, so WithWeComTrustedIPs("10.0.0.1") refuses them all.
func WithWeComTrustedIPs(ips ...string) Option {
	return func(c *config) { c.wecomTrustedIPs, c.wecomTrustedOnly = ips, true }
}

// wecomApp is one WeCom application: a (corpid, secret) with its token,
// tickets and quota counts.
type wecomApp struct {
	corpID, secret string
	token          *token
	tokenDay       window
	tickets        map[string]*ticketSlot // by kind, made on first use
}

// wecomToken is an issued WeCom token and the application it belongs to.
type wecomToken struct {
	*token
	app *wecomApp
}

func (s *Server) resetWeCom() {
	corps := s.cfg.corps
	if corps == nil {
		corps = map[string][]string{DefaultCorpID: {DefaultCorpSecret}}
	}
	s.corps = make(map[string]map[string]*wecomApp, len(corps))
	for id, secrets := range corps {
		apps := make(map[string]*wecomApp, len(secrets))
		for _, secret := range secrets {
			apps[secret] = &wecomApp{corpID: id, secret: secret}
		}
		s.corps[id] = apps
	}
	s.wecomTokens = make(map[string]*wecomToken)
}

// wecomErrmsg is WeCom's wording where it differs from the Official Account's.
func wecomErrmsg(code int) string {
	switch code {
	case CodeMissingAppID:
		return "corpid missing"
	case CodeMissingSecret:
		return "corpsecret missing"
	case CodeInvalidAppID:
		return "invalid corpid"
	case CodeInvalidCredential:
		return "invalid credential"
	case CodeDailyQuota:
		return "api freq out of limit"
	}
	return errmsg(code)
}

func (s *Server) rejectWeCom(w http.ResponseWriter, r *http.Request, code int) {
	msg := wecomErrmsg(code)
	if code == CodeIPNotAllowed {
		msg += ", from ip: " + remoteIP(r)
	}
	s.rejectMsg(w, contentWeCom, code, msg)
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// trusted reports whether r comes from an address WithWeComTrustedIPs allows.
func (s *Server) trusted(r *http.Request) bool {
	return !s.cfg.wecomTrustedOnly || slices.Contains(s.cfg.wecomTrustedIPs, remoteIP(r))
}

// serveWeComToken is GET /cgi-bin/gettoken. While the application's token
// works and has at least a second left it comes back with its remaining
// expires_in; otherwise a new one is issued, as WeCom documents.
func (s *Server) serveWeComToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	corpID, secret := q.Get("corpid"), q.Get("corpsecret")
	s.mu.Lock()
	now := s.cfg.now()
	var a *wecomApp
	code := CodeOK
	switch {
	case r.Method != http.MethodGet:
		code = CodeRequireGET
	case corpID == "":
		code = CodeMissingAppID
	case secret == "":
		code = CodeMissingSecret
	case s.corps[corpID] == nil:
		code = CodeInvalidAppID
	case s.corps[corpID][secret] == nil:
		code = CodeInvalidCredential
	case !s.trusted(r):
		code = CodeIPNotAllowed
	default:
		a = s.corps[corpID][secret]
		if !a.tokenDay.take(beijingDay(now), s.cfg.wecomTokenDaily) {
			code = CodeDailyQuota
		}
	}
	var body tokenBody
	if code == CodeOK {
		t := a.token
		if t == nil || t.check(now) != CodeOK || t.expires.Sub(now) < time.Second {
			t = &token{value: randomToken(), appID: corpID, expires: now.Add(s.cfg.lifetime)}
			a.token = t
			s.wecomTokens[t.value] = &wecomToken{token: t, app: a}
		}
		body = tokenBody{AccessToken: t.value, ExpiresIn: t.remaining(now)}
	}
	s.mu.Unlock()
	if code != CodeOK {
		s.rejectWeCom(w, r, code)
		return
	}
	writeJSON(w, contentWeCom, struct {
		errorBody
		tokenBody
	}{errorBody{CodeOK, "ok"}, body})
}

// lookupWeComToken finds a WeCom token and checks it as WeCom's business
// endpoints do: missing 41001, unknown or revoked 40014, expired 42001. The
// caller holds s.mu.
func (s *Server) lookupWeComToken(tok string, now time.Time) (*wecomToken, int) {
	if tok == "" {
		return nil, CodeMissingToken
	}
	t, ok := s.wecomTokens[tok]
	if !ok {
		return nil, CodeInvalidToken
	}
	switch t.check(now) {
	case CodeOK:
		return t, CodeOK
	case CodeTokenExpired:
		return t, CodeTokenExpired
	}
	return t, CodeInvalidToken
}

// serveWeComTicket is GET /cgi-bin/get_jsapi_ticket (the corp ticket) and GET
// /cgi-bin/ticket/get?type=agent_config (the application's agent ticket):
// the token first, then the trusted IPs, the method, the type and the hourly
// quota; then the rule of issueTicket.
func (s *Server) serveWeComTicket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, typeOK := TicketJSAPI, true
	if r.URL.Path == PathWeComAgentTicket {
		kind = q.Get("type")
		typeOK = kind == TicketAgentConfig // the corp ticket has its own path
	}
	s.mu.Lock()
	now := s.cfg.now()
	tok, code := s.lookupWeComToken(q.Get("access_token"), now)
	switch {
	case code != CodeOK:
	case !s.trusted(r):
		code = CodeIPNotAllowed
	case r.Method != http.MethodGet:
		code = CodeRequireGET
	case !typeOK:
		code = CodeInvalidArgs
	}
	var t *ticket
	if code == CodeOK {
		sl := slot(&tok.app.tickets, kind)
		if sl.quota.take(hourOf(now), s.cfg.wecomTicketHour) {
			t = s.issueTicket(sl, tok.token, now)
		} else {
			code = CodeDailyQuota
		}
	}
	s.mu.Unlock()
	if code != CodeOK {
		s.rejectWeCom(w, r, code)
		return
	}
	writeTicket(w, t, now)
}

// wecomSendCode is the errcode of a message/send call: the token, the
// trusted IPs, then the method (GET or POST). The body is not checked.
func (s *Server) wecomSendCode(r *http.Request) int {
	s.mu.Lock()
	_, code := s.lookupWeComToken(r.URL.Query().Get("access_token"), s.cfg.now())
	s.mu.Unlock()
	switch {
	case code != CodeOK:
		return code
	case !s.trusted(r):
		return CodeIPNotAllowed
	case r.Method != http.MethodGet && r.Method != http.MethodPost:
		return CodeRequirePOST
	}
	return CodeOK
}

// WeComTokenCalls returns how many requests reached /cgi-bin/gettoken,
// whatever the answer.
func (s *Server) WeComTokenCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.wecomToken
}

// WeComTicketCalls returns how many requests reached WeCom's ticket
// endpoints for kind (TicketJSAPI for get_jsapi_ticket, otherwise the type
// parameter of ticket/get as sent), whatever the answer. WeComTicketCalls("")
// counts every request to both.
func (s *Server) WeComTicketCalls(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == "" {
		return s.counts.wecomTicketAll
	}
	return s.counts.wecomTicket[kind]
}

// CurrentWeComToken returns the latest token gettoken issued to the
// application (corpID, secret), or "" if none. It may since have expired or
// been revoked.
func (s *Server) CurrentWeComToken(corpID, secret string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.corps[corpID][secret]; a != nil && a.token != nil {
		return a.token.value
	}
	return ""
}

// CheckWeComToken returns the errcode a WeCom business endpoint would answer
// for tok now: 0 when valid, 40014 unknown or revoked, 42001 expired, 41001
// empty.
func (s *Server) CheckWeComToken(tok string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, code := s.lookupWeComToken(tok, s.cfg.now())
	return code
}

// RevokeWeComToken makes the current token of the application (corpID,
// secret) answer 40014 from now on, as WeCom may drop a token early; the next
// gettoken call issues a new one. It reports whether there was a token.
func (s *Server) RevokeWeComToken(corpID, secret string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.corps[corpID][secret]
	if a == nil || a.token == nil {
		return false
	}
	a.token.invalidateAt(s.cfg.now())
	return true
}

// CurrentWeComTicket returns the latest ticket of kind (TicketJSAPI or
// TicketAgentConfig) issued to the application (corpID, secret), or "" if
// none. It may since have expired or been rotated away.
func (s *Server) CurrentWeComTicket(corpID, secret, kind string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.corps[corpID][secret]; a != nil {
		if sl := a.tickets[kind]; sl != nil && sl.cur != nil {
			return sl.cur.value
		}
	}
	return ""
}

// WeComTicketValid reports whether tk is a ticket of kind of the application
// (corpID, secret) that still works now, by the rules of TicketValid.
func (s *Server) WeComTicketValid(corpID, secret, kind, tk string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.corps[corpID][secret]
	return a != nil && a.tickets[kind].has(tk, s.cfg.now(), s.cfg.ticketsDie)
}
