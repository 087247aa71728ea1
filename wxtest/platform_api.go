package wxtest

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"time"
)

// platformRequest is every field the Open Platform endpoints read from their
// JSON bodies.
type platformRequest struct {
	ComponentAppID         string `json:"component_appid"`
	ComponentSecret        string `json:"component_secret"`
	ComponentAppSecret     string `json:"component_appsecret"`
	ComponentVerifyTicket  string `json:"component_verify_ticket"`
	AuthorizationCode      string `json:"authorization_code"`
	AuthorizerAppID        string `json:"authorizer_appid"`
	AuthorizerRefreshToken string `json:"authorizer_refresh_token"`
	Offset                 int    `json:"offset"`
	Count                  int    `json:"count"`
}

// servePlatform answers the Open Platform's endpoints; it reports false for
// any other path.
func (s *Server) servePlatform(w http.ResponseWriter, r *http.Request) bool {
	if !isPlatformPath(r.URL.Path) {
		return false
	}
	if r.Method != http.MethodPost {
		s.reject(w, contentJSON, CodeRequirePOST)
		return true
	}
	var req platformRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	if err := dec.Decode(&req); err != nil {
		s.reject(w, contentJSON, CodeDataFormat)
		return true
	}
	switch r.URL.Path {
	case PathStartPushTicket:
		s.serveStartPush(w, req)
	case PathComponentToken:
		s.serveComponentToken(w, req)
	case PathCreatePreAuthCode:
		s.servePreAuthCode(w, r, req)
	case PathQueryAuth:
		s.serveQueryAuth(w, r, req)
	case PathAuthorizerToken:
		s.serveAuthorizerToken(w, r, req)
	case PathAuthorizerList:
		s.serveAuthorizerList(w, r, req)
	}
	return true
}

// countPlatform tallies a request to an Open Platform path. The caller holds s.mu.
func (s *Server) countPlatform(path string) {
	if isPlatformPath(path) {
		tally(&s.platformCounts.calls, path)
	}
}

// serveStartPush is api_start_push_ticket: it checks the credentials only;
// the test pushes the ticket (PushTicket) when it wants to.
func (s *Server) serveStartPush(w http.ResponseWriter, req platformRequest) {
	s.mu.Lock()
	_, code := s.authComponent(req.ComponentAppID, req.ComponentSecret)
	s.mu.Unlock()
	s.answer(w, code, struct{ errorBody }{errorBody{CodeOK, "ok"}})
}

// authComponent checks a component appid and secret. The caller holds s.mu.
func (s *Server) authComponent(appID, secret string) (*component, int) {
	c := s.componentOf(appID)
	switch {
	case appID == "":
		return nil, CodeMissingAppID
	case c == nil:
		return nil, CodeInvalidComponent
	case secret != c.cred.Secret:
		return nil, CodeInvalidCredential
	}
	return c, CodeOK
}

// serveComponentToken is api_component_token: the ticket must be the current
// one (or the previous one within a push interval of the newer push), and
// alive; every call issues a new token, the previous one working on for
// Overlap.
func (s *Server) serveComponentToken(w http.ResponseWriter, req platformRequest) {
	s.mu.Lock()
	now := s.cfg.now()
	c, code := s.authComponent(req.ComponentAppID, req.ComponentAppSecret)
	if code == CodeOK {
		code = c.checkTicket(req.ComponentVerifyTicket, now)
	}
	var body struct {
		Token     string `json:"component_access_token"`
		ExpiresIn int64  `json:"expires_in"`
	}
	if code == CodeOK {
		if c.latest != nil {
			c.latest.invalidateAt(now.Add(Overlap))
		}
		t := &token{value: randomToken(), appID: c.cred.AppID, expires: now.Add(s.cfg.lifetime)}
		c.tokens[t.value], c.latest = t, t
		body.Token, body.ExpiresIn = t.value, t.remaining(now)
	}
	s.mu.Unlock()
	s.answer(w, code, body)
}

// checkTicket returns the errcode for a verify ticket sent at now.
func (c *component) checkTicket(value string, now time.Time) int {
	for _, t := range []*verifyTicket{c.ticket, c.prevTicket} {
		if t == nil || t.value != value {
			continue
		}
		switch {
		case !now.Before(t.pushed.Add(VerifyTicketLifetime)):
			return CodeTicketExpired
		case t == c.prevTicket && !now.Before(c.ticket.pushed.Add(VerifyTicketInterval)):
			return CodeTicketInvalid
		}
		return CodeOK
	}
	return CodeTicketInvalid
}

// componentByToken checks the component_access_token of r against the body's
// component_appid. The caller holds s.mu.
func (s *Server) componentByToken(r *http.Request, appID string, now time.Time) (*component, int) {
	tok := r.URL.Query().Get("component_access_token")
	c := s.componentOf(appID)
	switch {
	case tok == "":
		return nil, CodeMissingToken
	case appID == "":
		return nil, CodeMissingAppID
	case c == nil:
		return nil, CodeInvalidComponent
	}
	t, ok := c.tokens[tok]
	if !ok {
		return nil, CodeInvalidCredential
	}
	if code := t.check(now); code != CodeOK {
		return nil, code
	}
	return c, CodeOK
}

// servePreAuthCode is api_create_preauthcode.
func (s *Server) servePreAuthCode(w http.ResponseWriter, r *http.Request, req platformRequest) {
	s.mu.Lock()
	now := s.cfg.now()
	c, code := s.componentByToken(r, req.ComponentAppID, now)
	var body struct {
		Code      string `json:"pre_auth_code"`
		ExpiresIn int64  `json:"expires_in"`
	}
	if code == CodeOK {
		body.Code, body.ExpiresIn = randomCode("preauthcode@@@"), int64(PreAuthCodeLifetime/time.Second)
		c.preAuth[body.Code] = now.Add(PreAuthCodeLifetime)
	}
	s.mu.Unlock()
	s.answer(w, code, body)
}

type funcInfo struct {
	Category struct {
		ID int `json:"id"`
	} `json:"funcscope_category"`
}

type authorizationInfo struct {
	AppID        string     `json:"authorizer_appid"`
	AccessToken  string     `json:"authorizer_access_token"`
	ExpiresIn    int64      `json:"expires_in"`
	RefreshToken string     `json:"authorizer_refresh_token"`
	FuncInfo     []funcInfo `json:"func_info"`
}

// serveQueryAuth is api_query_auth: an authorization code, while it lives,
// gives the authorizer's current refresh token and a new access token.
func (s *Server) serveQueryAuth(w http.ResponseWriter, r *http.Request, req platformRequest) {
	s.mu.Lock()
	now := s.cfg.now()
	c, code := s.componentByToken(r, req.ComponentAppID, now)
	var a *authorizer
	if code == CodeOK {
		ac, ok := c.authCodes[req.AuthorizationCode]
		switch {
		case !ok:
			code = CodeAuthCodeInvalid
		case !now.Before(ac.expires):
			code = CodeAuthCodeExpired
		default:
			if a = c.authorizers[ac.appID]; a == nil || !a.authorized {
				code = CodeNotAuthorized
			}
		}
	}
	var body struct {
		Info authorizationInfo `json:"authorization_info"`
	}
	if code == CodeOK {
		t := s.issueAuthorizerToken(a, now)
		body.Info = authorizationInfo{AppID: a.appID, AccessToken: t.value, ExpiresIn: t.remaining(now),
			RefreshToken: a.refresh}
		for _, id := range a.funcs {
			var f funcInfo
			f.Category.ID = id
			body.Info.FuncInfo = append(body.Info.FuncInfo, f)
		}
	}
	s.mu.Unlock()
	s.answer(w, code, body)
}

// issueAuthorizerToken issues an authorizer_access_token that the business
// endpoints accept, as they accept an Official Account's own token. The
// caller holds s.mu.
func (s *Server) issueAuthorizerToken(a *authorizer, now time.Time) *token {
	t := &token{value: randomToken(), appID: a.appID, expires: now.Add(s.cfg.lifetime)}
	s.tokens[t.value] = t
	return t
}

// serveAuthorizerToken is api_authorizer_token: the refresh token must be
// the authorizer's current one (61023 otherwise); under
// WithRefreshTokenRotation a new one replaces it.
func (s *Server) serveAuthorizerToken(w http.ResponseWriter, r *http.Request, req platformRequest) {
	s.mu.Lock()
	c, code := s.componentByToken(r, req.ComponentAppID, s.cfg.now())
	var a *authorizer
	if code == CodeOK {
		if a = c.authorizers[req.AuthorizerAppID]; a == nil || !a.authorized {
			code = CodeNotAuthorized
		}
	}
	if a != nil {
		if a.inflight > 0 {
			s.platformCounts.overlaps++
		}
		a.inflight++
		a.maxInflight = max(a.maxInflight, a.inflight)
	}
	s.mu.Unlock()
	if a != nil {
		defer func() {
			s.mu.Lock()
			a.inflight--
			s.mu.Unlock()
		}()
	}
	if s.cfg.latency > 0 && !sleep(r, s.cfg.latency) {
		return
	}
	s.mu.Lock()
	now := s.cfg.now()
	if code == CodeOK && (!a.authorized || req.AuthorizerRefreshToken != a.refresh) {
		code = CodeRefreshTokenInvalid
		if !a.authorized {
			code = CodeNotAuthorized
		}
	}
	var body struct {
		AccessToken  string `json:"authorizer_access_token"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"authorizer_refresh_token"`
	}
	if code == CodeOK {
		if s.cfg.rotation {
			a.newRefresh()
		}
		t := s.issueAuthorizerToken(a, now)
		body.AccessToken, body.ExpiresIn, body.RefreshToken = t.value, t.remaining(now), a.refresh
	}
	s.mu.Unlock()
	s.answer(w, code, body)
}

// newRefresh gives a a new refresh token; the previous one stops working.
func (a *authorizer) newRefresh() {
	a.refresh = randomCode("refreshtoken@@@")
	a.refreshes++
}

type listedAuthorizer struct {
	AppID        string `json:"authorizer_appid"`
	RefreshToken string `json:"refresh_token"`
	AuthTime     int64  `json:"auth_time"`
}

// serveAuthorizerList is api_get_authorizer_list: the accounts that
// authorize the component now, by appid, count (at most 500) from offset.
func (s *Server) serveAuthorizerList(w http.ResponseWriter, r *http.Request, req platformRequest) {
	s.mu.Lock()
	c, code := s.componentByToken(r, req.ComponentAppID, s.cfg.now())
	if code == CodeOK && (req.Count <= 0 || req.Count > MaxAuthorizerListCount || req.Offset < 0) {
		code = CodeInvalidArgs
	}
	var body struct {
		Total int                `json:"total_count"`
		List  []listedAuthorizer `json:"list"`
	}
	if code == CodeOK {
		var ids []string
		for id, a := range c.authorizers {
			if a.authorized {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		body.Total, body.List = len(ids), []listedAuthorizer{}
		for _, id := range ids[min(req.Offset, len(ids)):min(req.Offset+req.Count, len(ids))] {
			a := c.authorizers[id]
			body.List = append(body.List, listedAuthorizer{AppID: id, RefreshToken: a.refresh, AuthTime: a.authTime.Unix()})
		}
	}
	s.mu.Unlock()
	s.answer(w, code, body)
}

// answer writes body, or the errcode when it is not CodeOK.
func (s *Server) answer(w http.ResponseWriter, code int, body any) {
	if code != CodeOK {
		s.reject(w, contentJSON, code)
		return
	}
	writeJSON(w, contentJSON, body)
}
