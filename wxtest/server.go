package wxtest

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
)

// Paths the fake serves, relative to its base URL.
const (
	PathToken       = "/cgi-bin/token"
	PathStableToken = "/cgi-bin/stable_token"
	PathCallbackIP  = "/cgi-bin/getcallbackip"
	PathCustomSend  = "/cgi-bin/message/custom/send"
	PathMediaGet    = "/cgi-bin/media/get"
	// PathTicket is the Official Account's JS-SDK and card ticket endpoint.
	PathTicket = "/cgi-bin/ticket/getticket"
)

// HandlerURL is the base URL of a Server made by NewHandler. Nothing listens
// there: requests reach the fake only through its Client or Transport.
const HandlerURL = "http://wxtest.invalid"

// maxBody bounds the request bodies the fake reads.
const maxBody = 1 << 20

// Server is a fake of the WeChat Official Account API and of WeCom's token,
// ticket and message API, on one base URL. It is an http.Handler;
// NewServer also serves it on a loopback port. All methods are safe for
// concurrent use.
type Server struct {
	cfg       config
	ts        *httptest.Server
	closeOnce sync.Once

	mu         sync.Mutex
	apps       map[string]*app
	tokens     map[string]*token
	faults     []*queuedFault
	holds      []*Hold
	counts     counters
	rejections map[int]int
	requests   []Request
	closed     bool

	corps       map[string]map[string]*wecomApp // corpid → secret → application
	wecomTokens map[string]*wecomToken

	quota quotaState

	components     map[string]*component // the Open Platform's, by component appid
	platformCounts platformCounters
}

type counters struct {
	token, stable, force, business int

	ticketAll int
	ticket    map[string]int // by the type parameter as sent

	wecomToken     int
	wecomTicketAll int
	wecomTicket    map[string]int // by kind
}

// NewServer returns a fake listening on 127.0.0.1 (an httptest.Server). Close
// it when done. It panics on invalid options, as httptest does on a failed listen.
func NewServer(opts ...Option) *Server {
	s := NewHandler(opts...)
	s.ts = httptest.NewServer(s)
	return s
}

// NewHandler returns a fake that does not listen: use it as an http.Handler,
// or through Client or Transport, which call ServeHTTP in-process. That is the
// way to use it inside a testing/synctest bubble, where real sockets do not
// work. It panics on invalid options.
func NewHandler(opts ...Option) *Server {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	if cfg.apps == nil {
		cfg.apps = map[string]string{DefaultAppID: DefaultSecret}
	}
	s := &Server{cfg: cfg}
	s.reset()
	return s
}

// URL returns the base URL to give a client in place of
// https://api.weixin.qq.com: the loopback address for NewServer, HandlerURL
// for NewHandler.
func (s *Server) URL() string {
	if s.ts == nil {
		return HandlerURL
	}
	return s.ts.URL
}

// HTTPServer returns the underlying httptest.Server, or nil for NewHandler.
func (s *Server) HTTPServer() *httptest.Server { return s.ts }

// Close releases every Hold (later ones hold nothing) and, for NewServer, shuts the listener down and
// waits for requests in flight. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.releaseAll()
		if s.ts != nil {
			s.ts.Close()
		}
	})
}

// Reset forgets every token, ticket, counter, quota count, recorded request
// and pending fault, and releases every Hold. The accounts and corps stay.
func (s *Server) Reset() {
	s.releaseAll()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset()
}

func (s *Server) reset() {
	s.apps = make(map[string]*app, len(s.cfg.apps))
	for id, secret := range s.cfg.apps {
		s.apps[id] = &app{id: id, secret: secret}
	}
	s.tokens = make(map[string]*token)
	s.faults = nil
	s.holds = nil
	s.counts = counters{}
	s.rejections = make(map[int]int)
	s.requests = nil
	s.quota = quotaState{}
	s.resetWeCom()
	s.resetPlatform()
}

// SetApp adds an account, or changes its secret as a reset in the WeChat
// console would. Tokens already issued keep working.
func (s *Server) SetApp(appID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.apps = maps.Clone(s.cfg.apps)
	s.cfg.apps[appID] = secret
	if a, ok := s.apps[appID]; ok {
		a.secret = secret
		return
	}
	s.apps[appID] = &app{id: appID, secret: secret}
}

// ServeHTTP answers r as WeChat would, after any Hold and injected Fault.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.count(r)
	if !s.waitHolds(r) {
		return
	}
	if f, ok := s.nextFault(r.URL.Path); ok && s.applyFault(w, r, f) {
		return
	}
	switch r.URL.Path {
	case PathToken:
		s.serveToken(w, r)
	case PathStableToken:
		s.serveStableToken(w, r)
	case PathCallbackIP, PathCustomSend, PathMediaGet, PathWeComSend:
		s.serveBusiness(w, r)
	case PathTicket:
		s.serveTicket(w, r)
	case PathWeComToken:
		s.serveWeComToken(w, r)
	case PathWeComJSAPITicket, PathWeComAgentTicket:
		s.serveWeComTicket(w, r)
	case PathQuotaGet, PathClearQuota, PathClearQuotaV2:
		s.serveQuota(w, r)
	default:
		if !s.servePlatform(w, r) {
			http.NotFound(w, r)
		}
	}
}

// count tallies r on arrival, so held, faulted and rejected calls count too.
func (s *Server) count(r *http.Request) {
	force := false
	if r.URL.Path == PathStableToken {
		force = peekForce(r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.URL.Path {
	case PathToken:
		s.counts.token++
	case PathStableToken:
		s.counts.stable++
		if force {
			s.counts.force++
		}
	case PathCallbackIP, PathCustomSend, PathMediaGet, PathWeComSend:
		s.counts.business++
	case PathTicket:
		s.counts.ticketAll++
		tally(&s.counts.ticket, r.URL.Query().Get("type"))
	case PathWeComToken:
		s.counts.wecomToken++
	case PathWeComJSAPITicket:
		s.counts.wecomTicketAll++
		tally(&s.counts.wecomTicket, TicketJSAPI)
	case PathWeComAgentTicket:
		s.counts.wecomTicketAll++
		tally(&s.counts.wecomTicket, r.URL.Query().Get("type"))
	case PathQuotaGet, PathClearQuota, PathClearQuotaV2:
		s.quota.calls++
	default:
		s.countPlatform(r.URL.Path)
	}
}

// tally adds one to m[key], making m on first use.
func tally(m *map[string]int, key string) {
	if *m == nil {
		*m = make(map[string]int)
	}
	(*m)[key]++
}

// peekForce reads r's body to see whether it asks for a force refresh, and
// puts the body back for the handler.
func peekForce(r *http.Request) bool {
	if r.Body == nil {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return false
	}
	var req struct {
		ForceRefresh bool `json:"force_refresh"`
	}
	return json.Unmarshal(b, &req) == nil && req.ForceRefresh
}

// reject answers an errcode with HTTP 200 and counts it.
func (s *Server) reject(w http.ResponseWriter, contentType string, code int) {
	s.rejectMsg(w, contentType, code, errmsg(code))
}

func (s *Server) rejectMsg(w http.ResponseWriter, contentType string, code int, msg string) {
	if s.cfg.rid {
		msg += " rid: " + rid()
	}
	s.mu.Lock()
	s.rejections[code]++
	s.mu.Unlock()
	writeJSON(w, contentType, errorBody{Errcode: code, Errmsg: msg})
}

// TokenCalls returns how many requests reached /cgi-bin/token, whatever the answer.
func (s *Server) TokenCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.token
}

// StableCalls returns how many requests reached /cgi-bin/stable_token,
// whatever the answer, force refreshes included.
func (s *Server) StableCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.stable
}

// ForceRefreshCalls returns how many /cgi-bin/stable_token requests asked for
// force_refresh, whatever the answer.
func (s *Server) ForceRefreshCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.force
}

// BusinessCalls returns how many requests reached the business endpoints,
// whatever the answer.
func (s *Server) BusinessCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts.business
}

// Rejections returns how many answers carried each non-zero errcode,
// injected ones included. The map is a copy.
func (s *Server) Rejections() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.rejections)
}

// CurrentToken returns the latest token /cgi-bin/token issued to appID, or ""
// if none. It may since have expired or been revoked.
func (s *Server) CurrentToken(appID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[appID]; ok && a.plain != nil {
		return a.plain.value
	}
	return ""
}

// CurrentStableToken returns the latest token /cgi-bin/stable_token issued to
// appID, or "" if none. It may since have expired or been revoked.
func (s *Server) CurrentStableToken(appID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.apps[appID]; ok && a.stable != nil {
		return a.stable.value
	}
	return ""
}

// Revoke makes every token of appID, plain and stable, answer 40001 from now
// on, as if WeChat had dropped them. The next normal-mode stable_token call
// issues a new stable token.
func (s *Server) Revoke(appID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.now()
	for _, t := range s.tokens {
		if t.appID == appID {
			t.invalidateAt(now)
		}
	}
}

// RevokeToken makes one token answer 40001 from now on. It reports whether
// the fake issued that token.
func (s *Server) RevokeToken(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	if ok {
		t.invalidateAt(s.cfg.now())
	}
	return ok
}

// ExpireToken makes one token answer 42001 from now on, as if its lifetime
// had run out. It reports whether the fake issued that token.
func (s *Server) ExpireToken(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	if ok {
		now := s.cfg.now()
		if now.Before(t.expires) {
			t.expires = now
		}
	}
	return ok
}

// CheckToken returns the errcode a business endpoint would answer for tok
// now: 0 when valid, 40001 unknown, superseded or revoked, 42001 expired,
// 41001 empty.
func (s *Server) CheckToken(tok string) int {
	if tok == "" {
		return CodeMissingToken
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	if !ok {
		return CodeInvalidCredential
	}
	return t.check(s.cfg.now())
}
