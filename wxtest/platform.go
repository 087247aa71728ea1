package wxtest

import (
	"crypto/rand"
	"encoding/base64"
	"maps"
	"time"

	"github.com/wxtoken/wxtoken/msgcrypt"
)

// The third-party platform (开放平台 component) the fake knows when no
// WithComponent option is given. They have the shape of real ones: an appid,
// a 32-hex-digit secret, a message token and a 43-character EncodingAESKey.
const (
	DefaultComponentAppID  = "wxfedcba9876543210"
	DefaultComponentSecret = "ffeeddccbbaa99887766554433221100"
	DefaultComponentToken  = "wxtestComponentToken"
	DefaultComponentAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// The Open Platform's paths, on the fake's one base URL.
const (
	PathStartPushTicket   = "/cgi-bin/component/api_start_push_ticket"
	PathComponentToken    = "/cgi-bin/component/api_component_token"
	PathCreatePreAuthCode = "/cgi-bin/component/api_create_preauthcode"
	PathQueryAuth         = "/cgi-bin/component/api_query_auth"
	PathAuthorizerToken   = "/cgi-bin/component/api_authorizer_token"
	PathAuthorizerList    = "/cgi-bin/component/api_get_authorizer_list"
)

// The Open Platform's numbers, the fake's defaults.
const (
	// VerifyTicketLifetime is how long a component_verify_ticket works
	// after its push: 12 h.
	VerifyTicketLifetime = 12 * time.Hour
	// VerifyTicketInterval is how often WeChat pushes a ticket: 10 min. The
	// ticket pushed before the current one is accepted for that long after
	// the newer push, for a push still in flight.
	VerifyTicketInterval = 10 * time.Minute
	// PreAuthCodeLifetime is the expires_in of a pre_auth_code: 1800 s.
	PreAuthCodeLifetime = 30 * time.Minute
	// AuthCodeLifetime is how long an authorization code can be exchanged.
	AuthCodeLifetime = 10 * time.Minute
	// MaxAuthorizerListCount is the largest page api_get_authorizer_list serves.
	MaxAuthorizerListCount = 500
)

// Open Platform errcodes the fake answers with.
const (
	CodeNotAuthorized         = 61003 // the account has not authorized (or has cancelled) the component
	CodeClientIPNotRegistered = 61004 // never answered by itself: inject it as a fault
	CodeTicketExpired         = 61005
	CodeTicketInvalid         = 61006
	CodeAuthCodeInvalid       = 61009
	CodeAuthCodeExpired       = 61010
	CodeInvalidComponent      = 61011
	CodeRefreshTokenInvalid   = 61023
)

type platformConfig struct {
	components map[string]ComponentCredentials // nil: the default component
	rotation   bool
	latency    time.Duration
}

// ComponentCredentials are a third-party platform's: what its console shows.
type ComponentCredentials struct {
	AppID, Secret, Token, EncodingAESKey string
}

// WithComponent adds a third-party platform the fake accepts. Given at least
// once, it replaces the default (DefaultComponentAppID and the others). The
// key must be 43 characters of base64, as WeChat's; NewServer panics otherwise.
func WithComponent(appID, secret, token, encodingAESKey string) Option {
	return func(c *config) {
		if c.components == nil {
			c.components = make(map[string]ComponentCredentials)
		}
		c.components[appID] = ComponentCredentials{appID, secret, token, encodingAESKey}
	}
}

// WithRefreshTokenRotation makes every successful api_authorizer_token call
// hand out a new authorizer_refresh_token; the one sent stops working at once
// (61023). WeChat's documentation does not say whether it rotates; a platform
// that saves whatever comes back works either way, and one that does not
// loses its authorizers under this option.
func WithRefreshTokenRotation() Option {
	return func(c *config) { c.rotation = true }
}

// WithExchangeLatency makes each api_authorizer_token call take d (a real
// timer; inside testing/synctest it costs no real time), so that two
// exchanges of one authorizer's refresh token that overlap are seen as such
// (OverlappingExchanges).
func WithExchangeLatency(d time.Duration) Option {
	return func(c *config) { c.latency = d }
}

// component is one third-party platform's state at the fake.
type component struct {
	cred    ComponentCredentials
	crypter *msgcrypt.Crypter

	ticket, prevTicket *verifyTicket
	tokens             map[string]*token // component_access_tokens
	latest             *token
	preAuth            map[string]time.Time // pre_auth_code → expiry
	authCodes          map[string]authCode
	authorizers        map[string]*authorizer
}

type verifyTicket struct {
	value  string
	pushed time.Time
}

type authCode struct {
	appID   string
	expires time.Time
}

// authorizer is one account that authorized a component.
type authorizer struct {
	appID      string
	refresh    string
	funcs      []int
	authTime   time.Time
	authorized bool
	refreshes  int // refresh tokens issued

	inflight, maxInflight int
}

// platformCounters count the Open Platform's calls by path, and overlaps.
type platformCounters struct {
	calls    map[string]int
	overlaps int
}

func (s *Server) resetPlatform() {
	creds := s.cfg.components
	if creds == nil {
		creds = map[string]ComponentCredentials{DefaultComponentAppID: {
			DefaultComponentAppID, DefaultComponentSecret, DefaultComponentToken, DefaultComponentAESKey}}
	}
	s.components = make(map[string]*component, len(creds))
	for id, cred := range creds {
		cr, err := msgcrypt.New(cred.Token, cred.EncodingAESKey, id)
		if err != nil {
			panic("wxtest: WithComponent " + id + ": " + err.Error())
		}
		s.components[id] = &component{cred: cred, crypter: cr, tokens: map[string]*token{},
			preAuth: map[string]time.Time{}, authCodes: map[string]authCode{}, authorizers: map[string]*authorizer{}}
	}
	s.platformCounts = platformCounters{}
}

// isPlatformPath reports whether path is one of the Open Platform's.
func isPlatformPath(path string) bool {
	switch path {
	case PathStartPushTicket, PathComponentToken, PathCreatePreAuthCode, PathQueryAuth,
		PathAuthorizerToken, PathAuthorizerList:
		return true
	}
	return false
}

// randomCode returns a credential of the given prefix and 32 random characters.
func randomCode(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// componentOf returns the component appID, or nil. The caller holds s.mu.
func (s *Server) componentOf(appID string) *component { return s.components[appID] }

// PlatformCalls returns how many requests reached the Open Platform endpoint
// path (PathComponentToken, ...), whatever the answer.
func (s *Server) PlatformCalls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.platformCounts.calls[path]
}

// OverlappingExchanges returns how many api_authorizer_token calls arrived
// while another for the same authorizer was still being served: each is an
// exchange of a refresh token that a platform made twice at once.
func (s *Server) OverlappingExchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.platformCounts.overlaps
}

// CurrentRefreshToken returns the authorizer_refresh_token of appID at the
// component componentAppID as WeChat holds it now, or "" when appID has not
// authorized it.
func (s *Server) CurrentRefreshToken(componentAppID, appID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.componentOf(componentAppID); c != nil {
		if a := c.authorizers[appID]; a != nil && a.authorized {
			return a.refresh
		}
	}
	return ""
}

// RefreshTokensIssued returns how many refresh tokens appID has been given
// at componentAppID: one at authorization, one per rotation.
func (s *Server) RefreshTokensIssued(componentAppID, appID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.componentOf(componentAppID); c != nil {
		if a := c.authorizers[appID]; a != nil {
			return a.refreshes
		}
	}
	return 0
}

// CurrentVerifyTicket returns the latest component_verify_ticket issued to
// componentAppID, or "".
func (s *Server) CurrentVerifyTicket(componentAppID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.componentOf(componentAppID); c != nil && c.ticket != nil {
		return c.ticket.value
	}
	return ""
}

// CurrentComponentToken returns the latest component_access_token issued to
// componentAppID, or "".
func (s *Server) CurrentComponentToken(componentAppID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.componentOf(componentAppID); c != nil && c.latest != nil {
		return c.latest.value
	}
	return ""
}

// Components returns the credentials of the components the fake knows.
func (s *Server) Components() map[string]ComponentCredentials {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]ComponentCredentials, len(s.components))
	for id, c := range s.components {
		out[id] = c.cred
	}
	return maps.Clone(out)
}
