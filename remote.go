package wxtoken

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RemoteRefreshBefore is the renewal margin NewRemote gives its Client, and
// a Registry a RemoteSource's key: shorter than the server's own 300 s, so
// that the local Client renews after the server has renewed (a renewal
// earlier would only be handed the same token back).
const RemoteRefreshBefore = 2 * time.Minute

// remoteKeyPrefix starts the Store key of a remote credential.
const remoteKeyPrefix = "remote."

// RemoteError is a `wxtoken serve` server's refusal or failure: its HTTP
// status, its error code ("unauthorized", "forbidden", "rate_limited",
// "rejected_too_soon", "upstream_error", ...) and its message, scrubbed of
// the client key. It unwraps to a *StatusError, so IsPermanent and
// IsRetryable classify it by status: 401, 403 and 404 are permanent (a
// wrong key or a credential the client may not read), 429 and 5xx are
// retried. It matches ErrRejectedTooSoon and ErrForceRefreshLimited when
// the server refused an invalidation for those reasons.
type RemoteError struct {
	StatusCode int
	Code       string
	Msg        string
}

// Error names the status and the server's code and message.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("wxtoken: token server answered HTTP %d %s: %s", e.StatusCode, e.Code, e.Msg)
}

// Unwrap returns the status as a *StatusError, for the classification.
func (e *RemoteError) Unwrap() error {
	return &StatusError{StatusCode: e.StatusCode, Status: fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))}
}

// Is matches the library's own refusals that the server reports by code.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case ErrRejectedTooSoon:
		return e.Code == "rejected_too_soon"
	case ErrForceRefreshLimited:
		return e.Code == "force_refresh_limited"
	}
	return false
}

// A RemoteOption changes a RemoteSource.
type RemoteOption func(*remoteSource)

// RemoteTicket says the remote credential is a JS-SDK ticket, which the
// server answers as {"ticket": ...}: a Transport refuses to send it as an
// access_token.
func RemoteTicket() RemoteOption { return func(s *remoteSource) { s.ticket = true } }

// RemoteSource returns the Source of the credential name of a `wxtoken serve`
// server at serverURL, authenticated by clientKey (the key `wxtoken keygen`
// printed). A Client on it keeps the whole engine locally (the lock-free Get,
// refresh ahead, single flight, the Store) and asks the server only when its
// token needs renewing; its Invalidate is forwarded to the server, which
// compares before it fetches: a token the server has already replaced costs
// no fetch.
//
// serverURL must be https, except on a loopback address: the key and the
// tokens would cross the network in clear. Each Fetch uses the Client's HTTP
// client, which follows no redirect, reads at most 64 KiB and bounds itself
// by ctx. Errors never hold the client key or a token: a *RemoteError for
// the server's refusals, ErrMalformedResponse for an answer that does not
// decode. Its store key is RemoteKey's; give the Client a shorter renewal
// margin than the server's (RemoteRefreshBefore, as NewRemote does).
func RemoteSource(serverURL, name, clientKey string, opts ...RemoteOption) (Source, error) {
	base, err := checkServerURL(serverURL)
	if err != nil {
		return nil, err
	}
	if err := checkRemoteName(name); err != nil {
		return nil, err
	}
	if clientKey == "" || strings.ContainsFunc(clientKey, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return nil, errors.New("wxtoken: RemoteSource: the client key is empty or holds spaces, control or non-ASCII characters")
	}
	s := &remoteSource{base: base, name: name, key: func() string { return clientKey },
		storeKey: remoteStoreKey(base, name, clientKey)}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// NewRemote returns a Client of the credential name served by the `wxtoken
// serve` server at serverURL (see RemoteSource), with RemoteRefreshBefore as
// its renewal margin unless opts say otherwise. Its Store is the default
// FileStore unless WithStore says otherwise, under RemoteKey's key.
func NewRemote(serverURL, name, clientKey string, opts ...Option) (*Client, error) {
	return newRemote(serverURL, name, clientKey, nil, opts)
}

// NewRemoteTicket is NewRemote for a JS-SDK or card ticket the server hands
// out (RemoteSource with RemoteTicket): a Transport never sends it as an
// access_token. JSSDKConfig does not sign with it, since the ticket's appid
// is the server's to know: ask the server's /v1/jssdk, or sign with
// NewJSSDKConfig(appID, ticket, pageURL).
func NewRemoteTicket(serverURL, name, clientKey string, opts ...Option) (*Client, error) {
	return newRemote(serverURL, name, clientKey, []RemoteOption{RemoteTicket()}, opts)
}

func newRemote(serverURL, name, clientKey string, ropts []RemoteOption, opts []Option) (*Client, error) {
	src, err := RemoteSource(serverURL, name, clientKey, ropts...)
	if err != nil {
		return nil, err
	}
	all := append([]Option{WithRefreshBefore(RemoteRefreshBefore)}, opts...)
	return NewClient(src.(*remoteSource).storeKey, src, all...)
}

// RemoteKey returns the store key of the credential name of the server at
// serverURL asked with clientKey: "remote.<the first 16 hex digits of the
// SHA-256 of the server's URL and the client key>.<name>". Two servers (a
// staging and a production one) or two clients of different rights never
// share a stored token, even in one Store, and the key reveals neither the
// URL nor the client key. It refuses what RemoteSource refuses.
func RemoteKey(serverURL, name, clientKey string) (string, error) {
	src, err := RemoteSource(serverURL, name, clientKey)
	if err != nil {
		return "", err
	}
	return src.(*remoteSource).storeKey, nil
}

// remoteStoreKey is RemoteKey's key for a checked origin.
func remoteStoreKey(base, name, clientKey string) string {
	h := sha256.New()
	h.Write([]byte(base))
	h.Write([]byte{0}) // neither part can hold a NUL: the pair is unambiguous
	h.Write([]byte(clientKey))
	return remoteKeyPrefix + hex.EncodeToString(h.Sum(nil)[:8]) + "." + name
}

// remoteSource fetches a credential from a `wxtoken serve` server.
type remoteSource struct {
	base     string // scheme://host[:port][/path], no trailing slash
	name     string
	key      func() string // behind a func: printers walking by reflection do not reach it
	storeKey string        // RemoteKey's
	ticket   bool
}

// StoreKey is RemoteKey's: it tells servers and clients apart.
func (s *remoteSource) StoreKey() string { return s.storeKey }

// ClientOptions gives a Registry key the remote renewal margin.
func (s *remoteSource) ClientOptions() []Option {
	return []Option{WithRefreshBefore(RemoteRefreshBefore)}
}

// Info names the credential; a ticket is not an access_token.
func (s *remoteSource) Info() SourceInfo {
	return SourceInfo{Name: "remote " + s.name, NotAccessToken: s.ticket}
}

// Redact removes the client key from text.
func (s *remoteSource) Redact(text string) string { return ScrubText(text, s.key()) }

// String names the server and the credential, never the key.
func (s *remoteSource) String() string { return "wxtoken.RemoteSource(" + s.base + ", " + s.name + ")" }

// Fetch asks the server for the credential, or, when req.Rejected is set,
// reports the rejected token and gets the one to use instead.
func (s *remoteSource) Fetch(ctx context.Context, req FetchRequest) (Token, error) {
	r := secretRedactor([]string{s.key()})
	if req.Rejected != "" {
		r = append(r, tokenRedaction(req.Rejected))
	}
	hreq, err := s.newRequest(ctx, req.Rejected)
	if err != nil {
		return Token{}, r.err(err)
	}
	hc := req.HTTPClient
	if hc == nil {
		hc = redirectSafe(nil)
	}
	started := time.Now().UTC()
	resp, err := hc.Do(hreq)
	if err != nil {
		return Token{}, r.err(err)
	}
	defer resp.Body.Close()
	body, err := readCapped(resp.Body)
	switch {
	case err != nil:
		return Token{}, r.err(err)
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Token{}, &StatusError{StatusCode: resp.StatusCode, Status: upstreamText(r, resp.Status, maxStatusLen)}
	case resp.StatusCode != http.StatusOK:
		return Token{}, remoteError(resp.StatusCode, body, r)
	}
	return s.decode(body, started, r)
}

// newRequest builds the GET of the credential, or the POST of its
// invalidation.
func (s *remoteSource) newRequest(ctx context.Context, rejected string) (*http.Request, error) {
	u := s.base + "/v1/credentials/" + s.name
	var hreq *http.Request
	var err error
	if rejected == "" {
		hreq, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	} else {
		body, merr := json.Marshal(struct {
			Rejected string `json:"rejected"`
		}{rejected})
		if merr != nil {
			return nil, fmt.Errorf("wxtoken: %s: encoding the invalidation: %w", s.name, merr)
		}
		hreq, err = http.NewRequestWithContext(ctx, http.MethodPost, u+"/invalidate", bytes.NewReader(body))
		if hreq != nil {
			hreq.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("wxtoken: %s: %w", s.name, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+s.key())
	hreq.Header.Set("Accept", "application/json")
	return hreq, nil
}

// decode reads the server's {"access_token"|"ticket":..,"expires_in":N,
// "age":A}. expires_in is what is left of the server's token, so the local
// copy expires when the server's does (a little before: the clock started
// when the request was sent).
func (s *remoteSource) decode(body []byte, started time.Time, r redactor) (Token, error) {
	field, other := "access_token", "ticket"
	if s.ticket {
		field, other = other, field
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) == nil {
		if _, ok := probe[field]; !ok {
			if _, wrong := probe[other]; wrong {
				return Token{}, fmt.Errorf("%w: the server answered a %s for %s (use RemoteTicket for a ticket, and only for one)",
					ErrMalformedResponse, other, s.name)
			}
		}
	}
	tok, err := decodeAnswer(body, started, r, field, tokenEndpointKind)
	if err != nil {
		return Token{}, err
	}
	// age, the seconds since the server obtained the token, dates the local
	// copy as the server's is dated, so that the rejection backoff judges the
	// token's real age; it is relative, so the two clocks need not agree.
	var aged struct {
		Age int64 `json:"age"`
	}
	if err := json.Unmarshal(body, &aged); err != nil || aged.Age < 0 || aged.Age > maxExpiresIn-tok.ExpiresIn {
		return Token{}, fmt.Errorf("%w: field \"age\" is not a number of seconds within the token's lifetime", ErrMalformedResponse)
	}
	tok.CreateTime = started.Add(-time.Duration(aged.Age) * time.Second)
	tok.ExpiresIn += aged.Age
	return tok, nil
}

// remoteError decodes the server's {"error":..,"code":..}; a body that is
// not one still gives the status.
func remoteError(status int, body []byte, r redactor) error {
	var resp struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	_ = json.Unmarshal(body, &resp)
	code := upstreamText(r, resp.Code, 64)
	if code == "" {
		code = "unknown"
	}
	msg := upstreamText(r, resp.Error, maxErrMsgLen)
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &RemoteError{StatusCode: status, Code: code, Msg: msg}
}

// checkServerURL returns the origin and path of a token server's URL, the
// host in lower case, refusing one that would send the key in clear across a
// network.
func checkServerURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return "", errors.New("wxtoken: RemoteSource: the server URL is not https://host[:port]")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("wxtoken: RemoteSource: the server URL must not carry credentials, a query or a fragment")
	case u.Scheme == "http" && !loopbackLiteral(u.Hostname()):
		return "", errors.New("wxtoken: RemoteSource: plain http is allowed only on loopback (localhost, 127.0.0.1, [::1]): " +
			"the client key and the tokens would cross the network in clear")
	}
	return u.Scheme + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// loopbackLiteral reports whether host is a loopback IP address or exactly
// localhost. A name such as tokens.localhost or tokens.invalid is not: Go's
// resolver asks DNS for it (/etc/hosts first), whose answer may be any host
// of the network, which plain http would hand the client key to.
func loopbackLiteral(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkRemoteName refuses a credential name the server could not have:
// 1 to 64 of A-Z a-z 0-9 - _.
func checkRemoteName(name string) error {
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return errors.New("wxtoken: RemoteSource: a credential name has 1 to 64 of A-Z a-z 0-9 - _")
	}
	return nil
}
