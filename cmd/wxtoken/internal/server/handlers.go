package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wxtoken/wxtoken"
)

// maxRequestBody caps a request body: an invalidation carries one token,
// at most 2 KiB.
const maxRequestBody = 4 << 10

// readyProbeKey is the Store key /readyz reads: a key nothing writes, so
// that a miss proves the Store answers.
const readyProbeKey = "wxtoken-serve-readyz"

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/credentials/{name}", s.instrument(routeCredential, s.serveCredential))
	mux.Handle("POST /v1/credentials/{name}/invalidate", s.instrument(routeInvalidate, s.serveInvalidate))
	mux.Handle("GET /v1/jssdk/{name}", s.instrument(routeJSSDK, s.serveJSSDK))
	mux.Handle("GET /healthz", s.instrument(routeHealthz, s.serveHealthz))
	mux.Handle("GET /readyz", s.instrument(routeReadyz, s.serveReadyz))
	mux.Handle("GET /metrics", s.instrument(routeMetrics, s.serveMetrics))
	mux.Handle("/", s.instrument(routeOther, func(w *recorder, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	}))
	return mux
}

// tokenResponse is a credential as the API answers it: access_token for
// tokens, ticket for tickets (so that nobody sends a ticket as a token).
type tokenResponse struct {
	AccessToken string `json:"access_token,omitempty"`
	Ticket      string `json:"ticket,omitempty"`
	ExpiresIn   int64  `json:"expires_in"` // seconds left
	ExpiresAt   string `json:"expires_at"` // RFC 3339, UTC
	Age         int64  `json:"age"`        // seconds since it was obtained from WeChat
}

// errorResponse is every error's body: never a token, a key or a secret.
type errorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func (s *Server) serveCredential(w *recorder, r *http.Request) {
	cred, ok := s.authorize(w, r)
	if !ok {
		return
	}
	// No timer of its own: a cached token is answered at once, and a wait
	// for a fetch is bounded by the fetch timeout, which New sets to the
	// request timeout; a client that goes away ends r's context.
	tok, err := cred.client.Token(r.Context())
	if err != nil {
		s.writeFetchError(w, r, cred, err)
		return
	}
	s.writeToken(w, cred, tok)
}

func (s *Server) serveInvalidate(w *recorder, r *http.Request) {
	cred, ok := s.authorize(w, r)
	if !ok {
		return
	}
	var body struct {
		Rejected string `json:"rejected"`
	}
	if msg := decodeBody(w, r, &body); msg != "" {
		writeError(w, http.StatusBadRequest, "bad_request", msg)
		return
	}
	if body.Rejected == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `"rejected" is missing: the token an API rejected`)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeouts.Request)
	defer cancel()
	if _, err := cred.client.Invalidate(ctx, body.Rejected); err != nil {
		s.writeFetchError(w, r, cred, err)
		return
	}
	tok, err := cred.client.Token(ctx)
	switch {
	case err != nil:
		s.writeFetchError(w, r, cred, err)
	case tok.AccessToken == body.Rejected: // never handed back as the cure
		writeError(w, http.StatusServiceUnavailable, "no_new_token", "no token other than the rejected one yet")
	default:
		s.writeToken(w, cred, tok)
	}
}

// decodeBody reads a small JSON object strictly into v, returning what is
// wrong with it (never quoting it) or "".
func decodeBody(w http.ResponseWriter, r *http.Request, v any) string {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return "the body is larger than " + strconv.Itoa(maxRequestBody) + " bytes"
	case err != nil:
		return "the body could not be read"
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return `the body is not {"rejected":"<token>"}`
	}
	if dec.More() {
		return "the body holds more than one JSON value"
	}
	return ""
}

func (s *Server) serveJSSDK(w *recorder, r *http.Request) {
	cred, ok := s.authorize(w, r)
	if !ok {
		return
	}
	if !cred.jsapi {
		writeError(w, http.StatusNotFound, "not_a_jsapi_ticket", "this credential does not sign wx.config")
		return
	}
	page := r.URL.Query().Get("url")
	if page == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "?url= is missing: the page's location.href")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeouts.Request)
	defer cancel()
	cfg, err := cred.client.JSSDKConfig(ctx, page)
	switch {
	case errors.Is(err, wxtoken.ErrInvalidPageURL):
		writeError(w, http.StatusBadRequest, "invalid_url", "url is not an absolute, percent-encoded http(s) URL")
	case err != nil:
		s.writeFetchError(w, r, cred, err)
	case cred.agentID != "":
		writeJSON(w, http.StatusOK, agentConfig{JSSDKConfig: cfg, CorpID: cfg.AppID, AgentID: cred.agentID})
	default:
		writeJSON(w, http.StatusOK, cfg)
	}
}

// agentConfig is wx.agentConfig's signed fields: wx.config's, the corpid
// as appId (and corpid, the name agentConfig takes), and the agentid.
type agentConfig struct {
	wxtoken.JSSDKConfig
	CorpID  string `json:"corpid"`
	AgentID string `json:"agentid"`
}

func (s *Server) serveHealthz(w *recorder, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// serveReadyz answers 200 while the Store answers (see storeReady).
func (s *Server) serveReadyz(w *recorder, _ *http.Request) {
	if !s.ready.check(s.now(), s.probeStore, s.log) {
		writeError(w, http.StatusServiceUnavailable, "store_unreachable", "the store does not answer")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// probeStore reads a key nothing writes: a miss within a second proves the
// Store answers. It is not bound to a probe's request, since its result is
// every probe's for a second.
func (s *Server) probeStore() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := s.store.Load(ctx, readyProbeKey)
	if errors.Is(err, wxtoken.ErrNotFound) || errors.Is(err, wxtoken.ErrCorrupt) {
		return nil
	}
	return err
}

func (s *Server) serveMetrics(w *recorder, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.writeTo(w)
}

// authorize authenticates the bearer key, checks the client may read the
// credential the path names and spends one token of its bucket. It has
// answered the request when ok is false.
func (s *Server) authorize(w *recorder, r *http.Request) (*credential, bool) {
	key, ok := bearerKey(r.Header.Get("Authorization"))
	var c *client
	if ok {
		c = s.keys.lookup(key)
	}
	if c == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wxtoken"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "a valid client key is needed: Authorization: Bearer <key>")
		return nil, false
	}
	w.client = c.name
	if ok, wait := c.limiter.take(s.now()); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		writeError(w, http.StatusTooManyRequests, "rate_limited", "too many requests from this client")
		return nil, false
	}
	name := r.PathValue("name")
	cred, exists := s.creds[name]
	if !exists || !c.allowed[name] {
		writeError(w, http.StatusForbidden, "forbidden", "this client may not read this credential")
		return nil, false
	}
	return cred, true
}

// bearerKey returns the key of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 7235 section 2.1).
func bearerKey(header string) (string, bool) {
	const scheme = "Bearer "
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	key := strings.TrimLeft(header[len(scheme):], " ")
	return key, key != ""
}

// writeToken answers tok as a tokenResponse. It is the hot path, so the
// JSON is appended by hand: a token that passed Token.Validate is printable
// ASCII, which strconv.Quote escapes exactly as JSON does (\" and \\ only).
func (s *Server) writeToken(w http.ResponseWriter, cred *credential, tok wxtoken.Token) {
	now := s.now()
	at := tok.ExpiresAt()
	rest := at.Sub(now)
	if rest <= 0 { // the Client hands out none, but a clock may step
		writeError(w, http.StatusServiceUnavailable, "no_usable_token", "the token expired; a new one is being fetched")
		return
	}
	// Rounded up: a token with half a second left is not answered as 0
	// seconds, which a client would rightly refuse as expired.
	left := int64((rest + time.Second - 1) / time.Second)
	age := min(max(int64(now.Sub(tok.CreateTime)/time.Second), 0), tok.ExpiresIn)
	field := `{"access_token":`
	if cred.ticket {
		field = `{"ticket":`
	}
	b := make([]byte, 0, 96+len(tok.AccessToken))
	b = append(b, field...)
	if strings.ContainsAny(tok.AccessToken, `"\`) {
		b = strconv.AppendQuote(b, tok.AccessToken)
	} else {
		b = append(append(append(b, '"'), tok.AccessToken...), '"')
	}
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, left, 10)
	b = append(b, `,"expires_at":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","age":`...)
	b = strconv.AppendInt(b, age, 10)
	b = append(b, "}\n"...)
	writeBody(w, http.StatusOK, b)
}

// statusClientClosed is the status of a request whose client went away
// before its answer (nginx's 499): counted and logged apart from failures.
const statusClientClosed = 499

// writeFetchError answers a failure to obtain a credential. The body names
// the class of failure and at most WeChat's errcode; the error itself, which
// the library has scrubbed of secrets and tokens, goes to the log, at most
// once per warnEvery per credential: one outage answered to a thousand
// callers is one problem. A caller that went away is no failure.
func (s *Server) writeFetchError(w http.ResponseWriter, r *http.Request, cred *credential, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		writeError(w, statusClientClosed, "client_closed_request", "the client went away before the answer")
		return
	}
	if ok, held := cred.warnings.allow(s.now()); ok {
		s.log.Warn("wxtoken serve: no credential to hand out", "credential", cred.name, "err", err,
			"warnings_held_back", held)
	}
	var apiErr *wxtoken.APIError
	var tooSoon *wxtoken.RejectedTooSoonError
	switch {
	case errors.Is(err, wxtoken.ErrRejectedTooSoon):
		reopens := s.now().Add(wxtoken.DefaultRejectGuard) // the issuer handed the rejected token back
		if errors.As(err, &tooSoon) {
			reopens = tooSoon.ReopensAt
		}
		w.Header().Set("Retry-After", retryAfter(reopens.Sub(s.now())))
		writeError(w, http.StatusTooManyRequests, "rejected_too_soon",
			"the rejected token was obtained moments ago; not fetching another yet")
	case errors.Is(err, wxtoken.ErrForceRefreshLimited):
		w.Header().Set("Retry-After", "30")
		writeError(w, http.StatusTooManyRequests, "force_refresh_limited", "WeChat's force-refresh limit is reached")
	case errors.Is(err, wxtoken.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		writeError(w, http.StatusGatewayTimeout, "upstream_timeout", "WeChat did not answer in time")
	case errors.As(err, &apiErr):
		writeError(w, http.StatusBadGateway, "upstream_error", "WeChat answered errcode "+strconv.Itoa(apiErr.Code))
	default:
		writeError(w, http.StatusBadGateway, "upstream_unavailable", "WeChat could not be reached")
	}
}

// retryAfter is a Retry-After header's whole seconds for a wait of d,
// rounded up, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Second-1)/time.Second), 1), 10)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorResponse{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed","code":"internal"}`)
	}
	writeBody(w, status, append(body, '\n'))
}

// The headers of every JSON answer, shared: net/http only reads them.
var (
	headerJSON    = []string{"application/json"}
	headerNoStore = []string{"no-store"}
	headerNoSniff = []string{"nosniff"}
)

// writeBody writes a JSON body that no cache may keep.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["Cache-Control"] = headerNoStore
	h["X-Content-Type-Options"] = headerNoSniff
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
