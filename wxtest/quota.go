package wxtest

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// The quota endpoints: reading an API's daily quota, and resetting an
// account's quotas with a token (clear_quota) or with the secret (clear_quota/v2,
// the way out once 45009 has left the account without a token).
const (
	PathQuotaGet     = "/cgi-bin/openapi/quota/get"
	PathClearQuota   = "/cgi-bin/clear_quota"
	PathClearQuotaV2 = "/cgi-bin/clear_quota/v2"
)

// Errcodes of the quota endpoints.
const (
	CodeClearQuotaSpent = 48006 // the month's clear_quota calls are spent
	CodeCGIPathNotFound = 76021 // openapi/quota/get: a cgi_path the fake keeps no quota for
)

// DefaultClearQuotaMonthly is how many times a month WeChat lets an account
// reset its quotas: clear_quota and clear_quota/v2 share the count.
const DefaultClearQuotaMonthly = 10

// quotaState is what the quota endpoints keep per account; apps and its
// entries are reset with the Server.
type quotaState struct {
	clears map[string]*window // appid → clear_quota calls this Beijing month
	calls  int                // requests to the three quota endpoints
}

// beijingMonth numbers the calendar month of t in Beijing time, where the
// monthly count of clear_quota resets.
func beijingMonth(t time.Time) int64 {
	b := t.In(time.FixedZone("CST", 8*60*60))
	return int64(b.Year())*12 + int64(b.Month()) - 1
}

// QuotaCalls returns how many requests reached the quota endpoints
// (openapi/quota/get, clear_quota, clear_quota/v2), whatever the answer.
func (s *Server) QuotaCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quota.calls
}

// ClearQuotaLeft returns how many quota resets appID has left this month
// (of DefaultClearQuotaMonthly, shared by clear_quota and clear_quota/v2).
func (s *Server) ClearQuotaLeft(appID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.quota.clears[appID]
	if w == nil || w.period != beijingMonth(s.cfg.now()) {
		return DefaultClearQuotaMonthly
	}
	return DefaultClearQuotaMonthly - w.n
}

// serveQuota answers the three quota endpoints. All want POST (43002).
func (s *Server) serveQuota(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.reject(w, contentJSON, CodeRequirePOST)
		return
	}
	switch r.URL.Path {
	case PathQuotaGet:
		s.serveQuotaGet(w, r)
	case PathClearQuota:
		s.serveClearQuota(w, r)
	case PathClearQuotaV2:
		s.serveClearQuotaV2(w, r)
	}
}

// quotaBody is openapi/quota/get's answer.
type quotaBody struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
	Quota   struct {
		DailyLimit int `json:"daily_limit"`
		Used       int `json:"used"`
		Remain     int `json:"remain"`
	} `json:"quota"`
}

// serveQuotaGet is POST /cgi-bin/openapi/quota/get?access_token=...
// {"cgi_path":"/cgi-bin/token"}: the token is checked as business endpoints
// check it, then the body (47001); the fake keeps the quotas of the two token
// endpoints and the ticket endpoint, and answers 76021 for any other path.
func (s *Server) serveQuotaGet(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("access_token")
	if code := s.CheckToken(tok); code != CodeOK {
		s.reject(w, contentJSON, code)
		return
	}
	var req struct {
		CGIPath string `json:"cgi_path"`
	}
	if !decodeObject(r.Body, &req) || req.CGIPath == "" {
		s.reject(w, contentJSON, CodeDataFormat)
		return
	}
	s.mu.Lock()
	a := s.apps[s.tokens[tok].appID]
	limit, used, ok := s.quotaOf(a, req.CGIPath)
	s.mu.Unlock()
	if !ok || a == nil {
		s.reject(w, contentJSON, CodeCGIPathNotFound)
		return
	}
	body := quotaBody{Errmsg: "ok"}
	body.Quota.DailyLimit, body.Quota.Used, body.Quota.Remain = limit, used, max(limit-used, 0)
	writeJSON(w, contentJSON, body)
}

// quotaOf returns the daily limit and today's use of path for a. The caller
// holds s.mu.
func (s *Server) quotaOf(a *app, path string) (limit, used int, ok bool) {
	if a == nil {
		return 0, 0, false
	}
	day := beijingDay(s.cfg.now())
	count := func(w window) int {
		if w.period != day {
			return 0
		}
		return w.n
	}
	switch path {
	case PathToken:
		return s.cfg.dailyQuota, count(a.tokenDay), true
	case PathStableToken:
		return s.cfg.stableDaily, count(a.stableDay), true
	case PathTicket:
		n := 0
		for _, sl := range a.tickets {
			n += count(sl.quota)
		}
		return s.cfg.ticketDaily, n, true
	}
	return 0, 0, false
}

// serveClearQuota is POST /cgi-bin/clear_quota?access_token=... {"appid":...}:
// the token is checked, then the appid (41002 missing, 40013 not the token's).
func (s *Server) serveClearQuota(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("access_token")
	if code := s.CheckToken(tok); code != CodeOK {
		s.reject(w, contentJSON, code)
		return
	}
	var req struct {
		AppID string `json:"appid"`
	}
	if !decodeObject(r.Body, &req) {
		s.reject(w, contentJSON, CodeDataFormat)
		return
	}
	s.mu.Lock()
	code := CodeOK
	switch {
	case req.AppID == "":
		code = CodeMissingAppID
	case s.tokens[tok].appID != req.AppID:
		code = CodeInvalidAppID
	default:
		code = s.clearQuota(s.apps[req.AppID])
	}
	s.mu.Unlock()
	s.answerClear(w, code)
}

// serveClearQuotaV2 is POST /cgi-bin/clear_quota/v2?appid=...&appsecret=...:
// no token, the credentials checked as the token endpoint checks them.
func (s *Server) serveClearQuotaV2(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	a, code := s.authenticate(credentials{GrantType: "client_credential",
		AppID: q.Get("appid"), Secret: q.Get("appsecret")})
	if code == CodeOK {
		code = s.clearQuota(a)
	}
	s.mu.Unlock()
	s.answerClear(w, code)
}

func (s *Server) answerClear(w http.ResponseWriter, code int) {
	if code != CodeOK {
		s.rejectMsg(w, contentJSON, code, clearErrmsg(code))
		return
	}
	writeJSON(w, contentJSON, errorBody{Errcode: CodeOK, Errmsg: "ok"})
}

func clearErrmsg(code int) string {
	if code == CodeClearQuotaSpent {
		return "forbid to clear quota because of reaching the limit"
	}
	return errmsg(code)
}

// clearQuota resets a's daily quotas, if a has a reset left this month. The
// caller holds s.mu.
func (s *Server) clearQuota(a *app) int {
	if s.quota.clears == nil {
		s.quota.clears = make(map[string]*window)
	}
	w := s.quota.clears[a.id]
	if w == nil {
		w = &window{}
		s.quota.clears[a.id] = w
	}
	if !w.take(beijingMonth(s.cfg.now()), DefaultClearQuotaMonthly) {
		return CodeClearQuotaSpent
	}
	a.tokenDay, a.stableDay, a.forceDay = window{}, window{}, window{}
	for _, sl := range a.tickets {
		sl.quota = window{}
	}
	return CodeOK
}

// decodeObject decodes one JSON object from body into v, and nothing after it.
func decodeObject(body io.Reader, v any) bool {
	if body == nil {
		return false
	}
	dec := json.NewDecoder(io.LimitReader(body, maxBody))
	if err := dec.Decode(v); err != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}
