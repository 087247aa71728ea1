package wxtoken

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Limits on what a Transport holds in memory for one request.
const (
	// maxReplayBody caps the request body buffered so that it can be sent a
	// second time; a larger body without GetBody is sent once, streaming.
	maxReplayBody = 1 << 20
	// maxInspectBody caps the response read to look for a token rejection.
	// WeChat's error answers are well under 200 bytes.
	maxInspectBody = 64 << 10
)

// Transport is an http.RoundTripper that adds the access_token query parameter
// to every request for WeChat's API and recovers, once, from WeChat rejecting that token.
//
// Each request is cloned and its access_token parameter set (replacing one the
// caller put there; other parameters are left exactly as written). When the
// answer is WeChat's JSON error 40001, 40014 or 42001 (looked for only in small
// responses labelled application/json, text/json, text/plain or not labelled at
// all, since WeChat labels JSON as text/plain), the Transport reports the token
// to Client.Invalidate and sends the request again, once, with the token
// Invalidate returns; whatever that second attempt brings is handed back. Many
// requests rejected with the same token cause one token fetch between them.
//
// The request body is replayed byte for byte: through GetBody when the request
// has one, otherwise from a copy made before the first send of a body up to
// 1 MiB. A larger body without GetBody is streamed once; if it is rejected, the
// rejection is handed back rather than sending the body again empty. When
// Invalidate fails (for instance with ErrRejectedTooSoon, because the token was
// obtained moments ago), the rejection is handed back too, so that the caller
// sees WeChat's errcode. Either way a response the Transport inspected is handed
// back readable from its first byte. Binary and large responses (media
// downloads) are passed through without being read.
//
// The token goes only to the Client's API origin: the scheme and host of its
// base URL (WithBaseURL), and the origins named with WithAPIOrigins. A request
// for any other origin is refused, unsent, with an error matching
// ErrForeignOrigin, rather than sent without a token; since http.Client sends
// every redirect hop through RoundTrip, a redirect to another origin is refused
// the same way.
//
// The caller's request is never modified, and the returned Response's Request
// is the caller's, so that a logged resp.Request.URL does not show the token.
// A Transport is safe for concurrent use.
type Transport struct {
	Client *Client           // supplies and invalidates tokens; required
	Base   http.RoundTripper // sends the requests; nil means http.DefaultTransport
}

// NewHTTPClient returns an *http.Client whose requests go through a Transport
// with Client c and Base base (nil: http.DefaultTransport). Its Timeout is
// zero: set one, or give each request a context with a deadline.
func NewHTTPClient(c *Client, base http.RoundTripper) *http.Client {
	return &http.Client{Transport: &Transport{Client: c, Base: base}}
}

// RoundTrip sends req with the access_token added, retrying once with a new
// token if WeChat rejects the first one. It returns an error only when req is
// not for the API origin (ErrForeignOrigin), when no token can be had or when
// Base fails; WeChat's own errors come back as responses. No level of an
// error's chain holds a full token.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Client == nil {
		closeRequestBody(req)
		return nil, errors.New("wxtoken: Transport has no Client")
	}
	if t.Client.info.NotAccessToken {
		closeRequestBody(req)
		return nil, fmt.Errorf("%w (%s)", ErrNotAccessToken, t.Client.info.Name)
	}
	// Checked on every call, so on every redirect hop too: http.Client sends
	// each hop through RoundTrip.
	if origin := originOf(req.URL); !contains(t.Client.cfg.origins, origin) {
		closeRequestBody(req)
		return nil, fmt.Errorf("%w: %s", ErrForeignOrigin, origin)
	}
	tok, err := t.Client.Get(req.Context())
	if err != nil {
		closeRequestBody(req)
		return nil, fmt.Errorf("wxtoken: transport: no access_token for the request: %w", err)
	}
	p, err := newPayload(req)
	if err != nil {
		return nil, err
	}
	resp, err := t.send(req, tok, p.body, p)
	if err != nil {
		return nil, err
	}
	code, rejected := inspect(resp)
	if !rejected {
		return resp, nil
	}
	return t.retry(req, tok, code, resp, p)
}

// retry handles a response in which WeChat rejected tok: it gets the token to
// use instead and sends req again, or hands rejected back when it cannot.
func (t *Transport) retry(req *http.Request, tok string, code int, rejected *http.Response, p payload) (*http.Response, error) {
	log := t.Client.log
	// Invalidate even when the body cannot be replayed, so that the caller's
	// own retry finds a good token.
	// Invalidate never returns tok itself without an error.
	next, err := t.Client.Invalidate(req.Context(), tok)
	if err != nil {
		log.Warn("wxtoken: WeChat rejected the token and no other is available; returning its answer",
			"errcode", code, "token", fingerprint(tok), "err", err)
		return rejected, nil
	}
	body, ok := p.again()
	if !ok {
		log.Debug("wxtoken: WeChat rejected the token; the request body cannot be sent again",
			"errcode", code, "token", fingerprint(tok))
		return rejected, nil
	}
	log.Debug("wxtoken: WeChat rejected the token; retrying once with another",
		"errcode", code, "token", fingerprint(tok), "next", fingerprint(next))
	rejected.Body.Close()
	return t.send(req, next, body, p)
}

// send sends a clone of req carrying tok and body.
func (t *Transport) send(req *http.Request, tok string, body io.ReadCloser, p payload) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.RawQuery = setAccessToken(req.URL.RawQuery, tok)
	out.Body = body
	if p.copied {
		out.GetBody, out.ContentLength = p.getBody, p.length
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(out)
	if err != nil {
		return nil, redactToken(err, tok)
	}
	resp.Request = req
	return resp, nil
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// payload is a request body together with the means, if any, to send it again.
type payload struct {
	body    io.ReadCloser                 // for the first send
	getBody func() (io.ReadCloser, error) // nil: cannot be sent again
	copied  bool                          // the Transport buffered the body itself
	length  int64                         // the Content-Length when copied
}

// noBody replays a request that has no body.
func noBody() (io.ReadCloser, error) { return http.NoBody, nil }

// newPayload prepares req's body for up to two sends. A body without GetBody is
// read up to maxReplayBody and closed; a larger one is left streaming.
func newPayload(req *http.Request) (payload, error) {
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		return payload{body: req.Body, getBody: noBody}, nil
	case req.GetBody != nil:
		return payload{body: req.Body, getBody: req.GetBody}, nil
	}
	buf, err := readAtMost(req.Body, maxReplayBody, req.ContentLength)
	if err != nil {
		req.Body.Close()
		return payload{}, fmt.Errorf("wxtoken: transport: reading the request body: %w", err)
	}
	if len(buf) > maxReplayBody {
		return payload{body: &joinedBody{
			Reader: io.MultiReader(bytes.NewReader(buf), req.Body), Closer: req.Body,
		}}, nil
	}
	req.Body.Close()
	length := req.ContentLength
	if length <= 0 {
		length = int64(len(buf))
	}
	getBody := func() (io.ReadCloser, error) {
		if len(buf) == 0 {
			return http.NoBody, nil
		}
		return io.NopCloser(bytes.NewReader(buf)), nil
	}
	first, _ := getBody()
	return payload{body: first, getBody: getBody, copied: true, length: length}, nil
}

// again returns the body for the second send, or false if there is none.
func (p payload) again() (io.ReadCloser, bool) {
	if p.getBody == nil {
		return nil, false
	}
	body, err := p.getBody()
	return body, err == nil
}

// joinedBody reads what was already taken from a body followed by the rest of
// it, and closes the original.
type joinedBody struct {
	io.Reader
	io.Closer
}

// readAtMost reads r to its end or until it has more than limit bytes, which
// it then returns (limit+1 of them). sizeHint, when known, sizes the buffer.
func readAtMost(r io.Reader, limit, sizeHint int64) ([]byte, error) {
	size := int64(512)
	if sizeHint >= 0 && sizeHint <= limit {
		size = sizeHint + 1 // room to see EOF without growing
	}
	buf := make([]byte, 0, size)
	for int64(len(buf)) <= limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		end := min(int64(cap(buf)), limit+1)
		n, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// inspect reports whether resp is WeChat rejecting the token, and with which
// errcode. If it reads the body, it puts back one that starts at the first byte.
func inspect(resp *http.Response) (int, bool) {
	if !mayBeRejection(resp) {
		return 0, false
	}
	orig := resp.Body
	buf, err := readAtMost(orig, maxInspectBody, resp.ContentLength)
	switch {
	case err != nil:
		// Hand the caller the same failure at the same point of the body.
		resp.Body = &joinedBody{Reader: io.MultiReader(bytes.NewReader(buf), errReader{err}), Closer: orig}
		return 0, false
	case len(buf) > maxInspectBody:
		resp.Body = &joinedBody{Reader: io.MultiReader(bytes.NewReader(buf), orig), Closer: orig}
		return 0, false
	}
	resp.Body = newReadBody(buf, orig)
	return rejectionCode(buf)
}

// readBody hands back a body that was read to its end: the bytes read, and
// Close closing the original.
type readBody struct {
	bytes.Reader
	orig io.Closer
}

func newReadBody(buf []byte, orig io.Closer) *readBody {
	b := &readBody{orig: orig}
	b.Reset(buf)
	return b
}

func (b *readBody) Close() error { return b.orig.Close() }

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// mayBeRejection reports whether resp could be WeChat's JSON error answer:
// small, not compressed, and labelled as JSON, plain text or nothing.
func mayBeRejection(resp *http.Response) bool {
	if resp.Body == nil || resp.Body == http.NoBody || resp.ContentLength == 0 ||
		resp.ContentLength > maxInspectBody || resp.StatusCode == http.StatusSwitchingProtocols {
		return false
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return false
	}
	mediaType, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	switch strings.ToLower(strings.TrimSpace(mediaType)) {
	case "", "application/json", "text/json", "text/plain":
		return true
	}
	return false
}

// rejectionCode reports whether body is one JSON object whose top-level
// "errcode" (matched exactly, as WeChat writes it) is an integer with which
// business APIs reject a token: 40001, 40014 or 42001.
func rejectionCode(body []byte) (int, bool) {
	// A JSON number cannot be escaped, so a body without these digits needs no
	// decoding; most successful answers are skipped here.
	if !bytes.Contains(body, []byte("40001")) && !bytes.Contains(body, []byte("40014")) &&
		!bytes.Contains(body, []byte("42001")) {
		return 0, false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return 0, false
	}
	raw, ok := fields["errcode"]
	if !ok {
		return 0, false
	}
	var code int
	if json.Unmarshal(raw, &code) != nil || !isRejectionCode(code) {
		return 0, false
	}
	return code, true
}

// setAccessToken returns rawQuery with its access_token parameter set to tok:
// the first one replaced in place, any others dropped, appended if absent.
// Every other parameter is kept exactly as written, in order.
func setAccessToken(rawQuery, tok string) string {
	param := "access_token=" + url.QueryEscape(tok)
	if rawQuery == "" {
		return param
	}
	var b strings.Builder
	b.Grow(len(rawQuery) + len(param) + 1)
	placed := false
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		if isAccessToken(part) {
			if placed {
				continue
			}
			part, placed = param, true
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	if !placed {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(param)
	}
	return b.String()
}

// isAccessToken reports whether the query pair part names access_token.
func isAccessToken(part string) bool {
	key, _, _ := strings.Cut(part, "=")
	if strings.ContainsAny(key, "%+") {
		unescaped, err := url.QueryUnescape(key)
		if err != nil {
			return false
		}
		key = unescaped
	}
	return key == "access_token"
}

// redactToken returns err with no level of its chain holding tok, which
// errors that print the request URL quote; the text names the token by
// fingerprint only.
func redactToken(err error, tok string) error {
	return redactor{tokenRedaction(tok)}.err(err)
}

// originOf returns the origin of u as the Transport compares them:
// scheme://host[:port] in lower case, without the scheme's default port.
func originOf(u *url.URL) string {
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}

// apiOrigins returns the origins a Transport may send the access_token to: the
// base URL's, then each of extra, which must be scheme://host[:port] and
// nothing more.
func apiOrigins(baseURL string, extra []string) ([]string, error) {
	base, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("wxtoken: base URL %q is not an http(s) URL", baseURL)
	}
	origins := []string{originOf(base)}
	for _, o := range extra {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("wxtoken: API origin %q is not scheme://host[:port]", o)
		}
		if o := originOf(u); !contains(origins, o) {
			origins = append(origins, o)
		}
	}
	return origins, nil
}
