package wxtoken

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxResponseBytes caps how much of a token response is read: a real one is about
// 200 bytes, so anything near this is not a token and must not exhaust memory.
const maxResponseBytes = 64 << 10

// maxErrMsgLen bounds the errmsg kept in an APIError.
const maxErrMsgLen = 256

// maxStatusLen bounds the HTTP status line kept in a StatusError.
const maxStatusLen = 128

// officialSource is the Source of an Official Account's (or Mini Program's)
// access_token: GET /cgi-bin/token, or POST /cgi-bin/stable_token in stable
// mode, whose force_refresh it can use within WeChat's limits.
type officialSource struct {
	appID string
	// secret is behind a function so that printers walking the Client by
	// reflection (fmt's %#v, spew, go-cmp) meet a func value, not the text.
	secret func() string
	stable bool
}

func newOfficialSource(appID, secret string, stable bool) *officialSource {
	return &officialSource{appID: appID, secret: func() string { return secret }, stable: stable}
}

// OfficialAccount returns the Source of the access_token of the Official
// Account (or Mini Program) appID, for a Registry's lookup or NewClient;
// stable selects POST /cgi-bin/stable_token. Its store key is appID, or
// appID + ".stable", as New's. The same checks as New's apply to its arguments.
func OfficialAccount(appID, appSecret string, stable bool) (Source, error) {
	if err := checkCredentials(appID, appSecret); err != nil {
		return nil, err
	}
	return newOfficialSource(appID, appSecret, stable), nil
}

// StoreKey is the key New would use: appID, or appID + ".stable".
func (s *officialSource) StoreKey() string { return defaultKey(s.appID, s.stable) }

// Fetch asks the token endpoint for a token.
func (s *officialSource) Fetch(ctx context.Context, req FetchRequest) (Token, error) {
	f := s.fetcher(req.HTTPClient, req.BaseURL)
	return f.fetch(ctx, req.Force)
}

// Info names the account; in stable mode the Source can force, 20 times a day
// and 30 s apart (WeChat's limits for force_refresh).
func (s *officialSource) Info() SourceInfo {
	info := SourceInfo{Name: s.appID + " access_token", AppID: s.appID}
	if s.stable {
		info.Name = s.appID + " stable access_token"
		info.ForcePerDay, info.ForceInterval = forcePerDay, forceInterval
	}
	return info
}

// Redact removes the app secret, in every form, from text.
func (s *officialSource) Redact(text string) string {
	return s.fetcher(nil, "").redact(text)
}

// fetcher returns the fetcher that calls WeChat through hc at baseURL
// (DefaultBaseURL when empty).
func (s *officialSource) fetcher(hc *http.Client, baseURL string) *fetcher {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	return &fetcher{hc: hc, baseURL: baseURL, appID: s.appID, secret: s.secret, stable: s.stable}
}

// fetcher calls one of WeChat's two token endpoints.
type fetcher struct {
	hc      *http.Client // never follows a redirect
	baseURL string
	appID   string
	secret  func() string
	stable  bool
}

// redirectSafe returns the HTTP client a Client built with cfg calls WeChat
// through. It copies the configured *http.Client rather than changing the
// caller's, and makes the copy stop at any redirect: following one would hand
// the secret (in the query or the stable_token body, and in the Referer) to
// whatever host the redirect names.
func redirectSafe(configured *http.Client) *http.Client {
	hc := &http.Client{Timeout: DefaultHTTPTimeout}
	if configured != nil {
		copied := *configured
		hc = &copied
	}
	hc.CheckRedirect = stopAtRedirect
	return hc
}

// stopAtRedirect makes http.Client hand back a redirect as it is; fetch turns
// it into a *StatusError.
func stopAtRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// warnCleartext logs, once per Client, a base URL that sends the secret over
// the network unencrypted. Loopback addresses (a local fake, a sidecar proxy)
// are not a network and pass in silence, and so do names under .invalid, which
// no resolver answers: only an in-process transport reaches them.
func warnCleartext(baseURL string, log *slog.Logger) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "http" || offNetwork(u.Hostname()) {
		return
	}
	log.Warn("wxtoken: the base URL is plain http: the app secret and the tokens cross the network unencrypted",
		"host", u.Host)
}

// offNetwork reports whether host names this machine or nothing at all.
func offNetwork(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".invalid") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fetch obtains a new token. force asks stable_token for force_refresh and is
// ignored by the plain endpoint. No level of an error's chain holds the secret,
// nor the token an answer carried.
func (f *fetcher) fetch(ctx context.Context, force bool) (Token, error) {
	req, err := f.newRequest(ctx, force)
	if err != nil {
		return Token{}, err
	}
	return fetchToken(f.hc, req, "access_token", tokenEndpointKind, f.redactor())
}

// FetchToken is a building block for Sources whose endpoint answers the way
// WeChat's token endpoints do: it sends req through hc (a FetchRequest's
// HTTPClient) and decodes {"<field>":"...","expires_in":N} into a Token
// obtained when req was sent, or {"errcode":N,"errmsg":"..."} into an
// *APIError whose Kind is classify(N) and whose Endpoint is req's path. At
// most 64 KiB of the answer is read; a redirect, any non-2xx status, a body
// that is not one UTF-8 JSON object with unique keys, or a token Validate
// refuses is an error too. No level of any error it returns quotes one of
// secrets (in any form: plain, URL- or JSON-escaped) or the token the answer
// carried.
func FetchToken(hc *http.Client, req *http.Request, field string, classify func(code int) ErrorKind, secrets ...string) (Token, error) {
	return fetchToken(redirectSafe(hc), req, field, classify, secretRedactor(secrets))
}

func fetchToken(hc *http.Client, req *http.Request, field string, classify func(int) ErrorKind, r redactor) (Token, error) {
	started := time.Now().UTC()
	resp, err := hc.Do(req)
	if err != nil {
		return Token{}, r.err(err)
	}
	defer resp.Body.Close()
	body, err := readCapped(resp.Body)
	if err != nil {
		return Token{}, r.err(err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Token{}, &StatusError{StatusCode: resp.StatusCode,
			Status: upstreamText(r, resp.Status, maxStatusLen)}
	}
	tok, err := decodeAnswer(body, started, r, field, classify)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		apiErr.Endpoint = req.URL.Path
	}
	return tok, err
}

func (f *fetcher) newRequest(ctx context.Context, force bool) (*http.Request, error) {
	if f.stable {
		body, err := json.Marshal(stableRequest{
			GrantType: "client_credential", AppID: f.appID, Secret: f.secret(), ForceRefresh: force,
		})
		if err != nil {
			return nil, fmt.Errorf("wxtoken: encode stable_token request: %w", f.redactErr(err))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			f.baseURL+"/cgi-bin/stable_token", bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("wxtoken: build stable_token request: %w", f.redactErr(err))
		}
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	}
	q := url.Values{"grant_type": {"client_credential"}, "appid": {f.appID}, "secret": {f.secret()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		f.baseURL+"/cgi-bin/token?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("wxtoken: build token request: %w", f.redactErr(err))
	}
	return req, nil
}

type stableRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

func readCapped(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxResponseBytes+1))
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: body truncated after %d bytes: %w", ErrMalformedResponse, len(body), err)
	case err != nil:
		// A timeout or a reset: the network's fault, reported as such.
		return nil, fmt.Errorf("wxtoken: reading the token response: %w", err)
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("%w: body larger than %d bytes", ErrMalformedResponse, maxResponseBytes)
	}
	return body, nil
}

// decodeTokenResponse turns an access_token endpoint's body into a Token
// obtained at created, or an error: *APIError for a WeChat error,
// ErrMalformedResponse for anything else. The body is never quoted in the
// error, since it may hold a token.
func decodeTokenResponse(body []byte, created time.Time) (Token, error) {
	return decodeAnswer(body, created, nil, "access_token", tokenEndpointKind)
}

// decodeAnswer decodes an answer whose credential is under field, with the
// errmsg scrubbed by r and of the credential the answer itself carries:
// gateways that quote the request put the secret there, and an answer that is
// both a token and an error is not trusted. classify gives errcodes their Kind.
//
// A body that is not UTF-8, or whose objects repeat a key, is malformed rather
// than read one way: decoders disagree on which of two errcode keys counts, and
// encoding/json would silently replace the bytes of a token that is not UTF-8.
func decodeAnswer(body []byte, created time.Time, r redactor, field string, classify func(int) ErrorKind) (Token, error) {
	if !utf8.Valid(body) {
		return Token{}, fmt.Errorf("%w: %d bytes that are not UTF-8", ErrMalformedResponse, len(body))
	}
	if err := checkUniqueKeys(body); err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrMalformedResponse, err)
	}
	var resp struct {
		ExpiresIn int64  `json:"expires_in"`
		ErrCode   int    `json:"errcode"`
		ErrMsg    string `json:"errmsg"`
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &resp); err != nil {
		return Token{}, fmt.Errorf("%w: %d bytes that are not a JSON object (%s)",
			ErrMalformedResponse, len(body), jsonProblem(err))
	}
	_ = json.Unmarshal(body, &fields) // an object: the line above would have failed
	var credential string
	if raw, ok := fields[field]; ok && json.Unmarshal(raw, &credential) != nil {
		return Token{}, fmt.Errorf("%w: field %q has the wrong type", ErrMalformedResponse, field)
	}
	if resp.ErrCode != 0 {
		if credential != "" {
			r = append(r, tokenRedaction(credential))
		}
		return Token{}, &APIError{Code: resp.ErrCode, Msg: upstreamText(r, resp.ErrMsg, maxErrMsgLen),
			Kind: classify(resp.ErrCode)}
	}
	tok := Token{AccessToken: credential, ExpiresIn: resp.ExpiresIn, CreateTime: created}
	if err := tok.Validate(); err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrMalformedResponse, err)
	}
	return tok, nil
}

// jsonProblem describes a decoding error without quoting the input.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ) && knownField(typ.Field):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case errors.As(err, &typ):
		return "a field has the wrong type"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	}
	return "undecodable"
}

// knownField reports whether name is one of the fields of a token answer,
// which an error may name: any other name came from upstream and is not quoted.
func knownField(name string) bool {
	switch foldKey(name) {
	case foldKey("access_token"), foldKey("expires_in"), foldKey("errcode"), foldKey("errmsg"):
		return true
	}
	return false
}

// checkUniqueKeys reports an error when an object anywhere in the JSON text
// data has two keys that encoding/json would match to the same struct field:
// equal after unescaping, or equal but for case. Such a text means different
// things to different readers ({"errcode":40001,"errcode":0} is an error to
// one and a token to another), so it is refused rather than read one way.
// Syntax errors are left to the decoder that follows; checkUniqueKeys reports
// only duplicates, and names a key only when it is a token answer's field.
func checkUniqueKeys(data []byte) error {
	type frame struct {
		keys    map[string]struct{} // nil for an array
		wantKey bool                // an object whose next token is a key
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var stack []frame
	for {
		t, err := dec.Token()
		if err != nil {
			return nil // the end, or a syntax error the decoder will report
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if top != nil && top.keys != nil {
			if top.wantKey {
				if key, ok := t.(string); ok {
					if err := addKey(top.keys, key); err != nil {
						return err
					}
					top.wantKey = false
					continue
				}
			} else {
				top.wantKey = true // t starts the value of the last key
			}
		}
		switch t {
		case json.Delim('{'):
			stack = append(stack, frame{keys: map[string]struct{}{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

func addKey(keys map[string]struct{}, key string) error {
	folded := foldKey(key)
	if _, dup := keys[folded]; dup {
		if knownField(key) {
			return fmt.Errorf("duplicate key %q", key)
		}
		return errors.New("duplicate key")
	}
	keys[folded] = struct{}{}
	return nil
}

// foldKey maps s to one representative of the strings equal to it under
// Unicode simple case folding, which is how encoding/json matches a key to a
// field name (so that "ErrCode" and "errcode" fold alike).
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// upstreamText makes text that upstream sent back (an errmsg, a status line)
// fit to keep in an error: scrubbed by r, every character that is not
// printable replaced (a hostile upstream cannot write to a terminal or split a
// log line), and cut to at most n bytes on a character boundary. It is
// scrubbed before it is cut, so that no part of a secret survives the cut.
func upstreamText(r redactor, s string, n int) string {
	s = r.text(s)
	s = strings.Map(func(c rune) rune {
		if c == utf8.RuneError || (!unicode.IsPrint(c) && c != ' ') {
			return '?'
		}
		return c
	}, s)
	return truncate(s, n)
}

// truncate cuts s to at most n bytes, on a character boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// redactor returns the redactor of f's secret and of tokens.
func (f *fetcher) redactor(tokens ...string) redactor {
	r := redactor{{value: f.secret(), name: "REDACTED"}}
	for _, tok := range tokens {
		r = append(r, tokenRedaction(tok))
	}
	return r
}

// redact returns s without the app secret, in any of the forms in which a
// request carries it or an upstream may quote it (plain, query- or
// path-escaped, JSON-escaped), and without tokens, which are replaced by their
// fingerprints. It is the one scrubber for text the Client did not write
// itself, such as a recovered panic's value.
func (f *fetcher) redact(s string, tokens ...string) string {
	return f.redactor(tokens...).text(s)
}

// redactErr returns err with no level of its chain holding the secret. The
// plain endpoint carries the secret in its URL, and *url.Error prints the
// whole URL.
func (f *fetcher) redactErr(err error) error {
	return f.redactor().err(err)
}

// tokenRedaction names tok by its fingerprint.
func tokenRedaction(tok string) redaction {
	return redaction{value: tok, name: "token:" + fingerprint(tok)}
}

// A redaction is one value to keep out of text, and what to write instead.
type redaction struct{ value, name string }

// A redactor scrubs values from text and errors. It is built when needed from
// the values themselves, never kept: the forms it derives would otherwise be
// one more copy of the secret in memory.
type redactor []redaction

// text returns s with every form of every value replaced by its name.
func (r redactor) text(s string) string {
	for _, red := range r {
		for _, form := range forms(red.value) {
			s = strings.ReplaceAll(s, form, red.name)
		}
	}
	return s
}

// quoted reports whether s holds any form of any value.
func (r redactor) quoted(s string) bool {
	for _, red := range r {
		for _, form := range forms(red.value) {
			if strings.Contains(s, form) {
				return true
			}
		}
	}
	return false
}

// forms returns the spellings in which value may appear in text, longest
// first so that replacing one does not leave part of another: as it is;
// query- and path-escaped (with upper- or lower-case hex); JSON-escaped as Go
// writes it, without HTML escapes, with "\/", or in ASCII only.
func forms(value string) []string {
	if value == "" {
		return nil
	}
	q, p := url.QueryEscape(value), url.PathEscape(value)
	j := jsonEscape(value, true)
	raw := jsonEscape(value, false)
	all := []string{value, q, p, lowerHex(q), lowerHex(p), j, raw,
		strings.ReplaceAll(raw, "/", `\/`), asciiJSON(raw)}
	var out []string
	for _, f := range all {
		if f != "" && !contains(out, f) {
			out = append(out, f)
		}
	}
	// Longest first; the list is a handful of items.
	for i := 1; i < len(out); i++ {
		for k := i; k > 0 && len(out[k]) > len(out[k-1]); k-- {
			out[k], out[k-1] = out[k-1], out[k]
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// jsonEscape returns value as it appears between the quotes of a JSON string.
func jsonEscape(value string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	if enc.Encode(value) != nil {
		return ""
	}
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// asciiJSON rewrites the non-ASCII characters of a JSON string's contents as
// \uXXXX escapes, as ASCII-only encoders write them.
func asciiJSON(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// lowerHex rewrites the percent escapes of s in lower-case hex.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = lower(b[i+1]), lower(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
