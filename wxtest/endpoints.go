package wxtest

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// credentials are what both token endpoints receive.
type credentials struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// serveToken is GET /cgi-bin/token: a new token on every call.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.reject(w, contentJSON, CodeRequireGET)
		return
	}
	q := r.URL.Query()
	cred := credentials{GrantType: q.Get("grant_type"), AppID: q.Get("appid"), Secret: q.Get("secret")}
	s.mu.Lock()
	a, code := s.authenticate(cred)
	var tok *token
	if code == CodeOK {
		now := s.cfg.now()
		if a.tokenDay.take(beijingDay(now), s.cfg.dailyQuota) {
			tok = s.issuePlain(a, now)
		} else {
			code = CodeDailyQuota
		}
	}
	var body tokenBody
	if tok != nil {
		body = tokenBody{AccessToken: tok.value, ExpiresIn: int64(s.cfg.lifetime.Seconds())}
	}
	s.mu.Unlock()
	if code != CodeOK {
		s.reject(w, contentJSON, code)
		return
	}
	writeJSON(w, contentJSON, body)
}

// serveStableToken is POST /cgi-bin/stable_token with a JSON body.
func (s *Server) serveStableToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.reject(w, contentJSON, CodeRequirePOST)
		return
	}
	cred, ok := decodeStableBody(r.Body)
	if !ok {
		s.reject(w, contentJSON, CodeDataFormat)
		return
	}
	s.mu.Lock()
	a, code := s.authenticate(cred)
	var body tokenBody
	if code == CodeOK {
		now := s.cfg.now()
		code = s.takeStableQuota(a, now, cred.ForceRefresh)
		if code == CodeOK {
			tok := s.stableToken(a, now, cred.ForceRefresh)
			body = tokenBody{AccessToken: tok.value, ExpiresIn: tok.remaining(now)}
		}
	}
	s.mu.Unlock()
	if code != CodeOK {
		s.reject(w, contentJSON, code)
		return
	}
	writeJSON(w, contentJSON, body)
}

// decodeStableBody parses a stable_token body. Anything but one JSON object
// with fields of the right types is a data format error, as at WeChat.
func decodeStableBody(body io.Reader) (credentials, bool) {
	var cred credentials
	if body == nil {
		return cred, false
	}
	dec := json.NewDecoder(io.LimitReader(body, maxBody))
	if err := dec.Decode(&cred); err != nil {
		return cred, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return cred, false // trailing data after the object
	}
	return cred, true
}

// authenticate checks grant_type, appid and secret in WeChat's order. The
// caller holds s.mu.
func (s *Server) authenticate(c credentials) (*app, int) {
	switch {
	case c.GrantType != "client_credential":
		return nil, CodeInvalidGrantType
	case c.AppID == "":
		return nil, CodeMissingAppID
	case c.Secret == "":
		return nil, CodeMissingSecret
	}
	a, ok := s.apps[c.AppID]
	switch {
	case !ok:
		return nil, CodeInvalidAppID
	case a.secret != c.Secret:
		return nil, s.cfg.secretCode
	}
	return a, CodeOK
}

// takeStableQuota counts a stable_token call against the app's minute and day
// quotas, and a force refresh against its own daily limit. The caller holds s.mu.
func (s *Server) takeStableQuota(a *app, now time.Time, force bool) int {
	if !a.stableMinute.take(minuteOf(now), s.cfg.stableMinute) {
		return CodeMinuteQuota
	}
	day := beijingDay(now)
	if !a.stableDay.take(day, s.cfg.stableDaily) {
		return CodeDailyQuota
	}
	if force && !a.forceDay.take(day, s.cfg.forceDaily) {
		return CodeDailyQuota
	}
	return CodeOK
}
