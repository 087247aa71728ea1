package wxtest

import (
	"fmt"
	"net/http"
	"time"
)

// The account the fake knows when no WithApp option is given. They have the
// shape of real credentials: "wx" and 16 hex digits, and 32 hex digits.
const (
	DefaultAppID  = "wx0123456789abcdef"
	DefaultSecret = "00112233445566778899aabbccddeeff"
)

// WeChat's numbers, the fake's defaults.
const (
	// DefaultTokenLifetime is the expires_in of a new token: 7200 s.
	DefaultTokenLifetime = 2 * time.Hour
	// Overlap is how long a superseded /cgi-bin/token token keeps working, and
	// how early a stable token is rotated by a normal-mode call.
	Overlap = 5 * time.Minute
	// DefaultDailyQuota is the number of /cgi-bin/token calls an app may make a day.
	DefaultDailyQuota = 2000
	// DefaultStableMinuteQuota and DefaultStableDailyQuota bound /cgi-bin/stable_token calls per app.
	DefaultStableMinuteQuota = 10_000
	DefaultStableDailyQuota  = 500_000
	// DefaultForceRefreshDaily is the number of force_refresh calls an app may make a day.
	DefaultForceRefreshDaily = 20
	// DefaultForceRefreshInterval is how long after a force refresh another one
	// returns the current stable token instead of a new one.
	DefaultForceRefreshInterval = 30 * time.Second
	// DefaultTicketLifetime is the expires_in of a new JS-SDK ticket: 7200 s.
	DefaultTicketLifetime = 2 * time.Hour
	// DefaultTicketDailyQuota is the number of getticket calls an app may
	// make a day for each ticket type. WeChat's real limit is small and not
	// published per account; this default only catches runaway callers.
	DefaultTicketDailyQuota = 100_000
)

// Option configures a Server.
type Option func(*config)

type config struct {
	now           func() time.Time
	apps          map[string]string
	lifetime      time.Duration
	dailyQuota    int
	stableMinute  int
	stableDaily   int
	forceDaily    int
	forceInterval time.Duration
	secretCode    int
	rid           bool
	onBusiness    func(r *http.Request, body []byte)

	ticketLifetime time.Duration
	ticketDaily    int
	ticketRotation bool
	ticketsDie     bool

	wecomConfig
	platformConfig
}

func defaultConfig() config {
	return config{
		now:           time.Now,
		lifetime:      DefaultTokenLifetime,
		dailyQuota:    DefaultDailyQuota,
		stableMinute:  DefaultStableMinuteQuota,
		stableDaily:   DefaultStableDailyQuota,
		forceDaily:    DefaultForceRefreshDaily,
		forceInterval: DefaultForceRefreshInterval,
		secretCode:    CodeInvalidCredential,
		rid:           true,

		ticketLifetime: DefaultTicketLifetime,
		ticketDaily:    DefaultTicketDailyQuota,

		wecomConfig: defaultWeCom(),
	}
}

func (c *config) validate() error {
	if c.lifetime <= Overlap {
		return fmt.Errorf("wxtest: token lifetime %v must exceed the %v overlap", c.lifetime, Overlap)
	}
	if c.ticketLifetime <= Overlap {
		return fmt.Errorf("wxtest: ticket lifetime %v must exceed the %v overlap", c.ticketLifetime, Overlap)
	}
	if c.forceInterval < 0 {
		return fmt.Errorf("wxtest: negative force refresh interval %v", c.forceInterval)
	}
	return nil
}

// WithApp adds an account the fake accepts. Given at least once, it replaces
// the default account (DefaultAppID, DefaultSecret); give it several times for
// several accounts.
func WithApp(appID, secret string) Option {
	return func(c *config) {
		if c.apps == nil {
			c.apps = make(map[string]string)
		}
		c.apps[appID] = secret
	}
}

// WithClock sets the clock every expiry, overlap and quota is measured
// against. The default is time.Now, which is what a testing/synctest bubble
// fakes; outside one, pass a Clock's Now to move time by hand.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

// WithTokenLifetime sets the lifetime of new tokens from every token
// endpoint, WeCom's gettoken included (default 7200 s). It must exceed Overlap; NewServer panics otherwise.
func WithTokenLifetime(d time.Duration) Option {
	return func(c *config) { c.lifetime = d }
}

// WithDailyQuota sets how many /cgi-bin/token calls each app may make per day
// before errcode 45009 (default 2000). n <= 0 means no limit.
func WithDailyQuota(n int) Option {
	return func(c *config) { c.dailyQuota = n }
}

// WithStableQuota sets how many /cgi-bin/stable_token calls each app may make
// per minute (errcode 45011 past it) and per day (45009). Defaults: 10,000 and
// 500,000. A limit <= 0 means no limit.
func WithStableQuota(perMinute, perDay int) Option {
	return func(c *config) { c.stableMinute, c.stableDaily = perMinute, perDay }
}

// WithForceRefreshLimit sets how many force_refresh calls each app may make
// per day (45009 past it; default 20) and how long after a force refresh a
// further one hands back the current stable token unchanged (default 30 s).
// perDay <= 0 means no daily limit; interval 0 means none.
func WithForceRefreshLimit(perDay int, interval time.Duration) Option {
	return func(c *config) { c.forceDaily, c.forceInterval = perDay, interval }
}

// WithSecretErrcode sets the errcode both token endpoints answer a wrong
// secret with. WeChat has used 40001 (the default, "invalid credential") and,
// more recently, 40125 ("invalid appsecret"); a client should handle both.
func WithSecretErrcode(code int) Option {
	return func(c *config) { c.secretCode = code }
}

// WithoutRID drops the " rid: ..." request id that WeChat, and by default the
// fake, appends to every errmsg, so tests can compare messages exactly.
func WithoutRID() Option {
	return func(c *config) { c.rid = false }
}

// WithOnBusinessCall registers fn to be called with every request to a
// business endpoint and its body, before the fake answers, whatever the
// answer. fn runs on the serving goroutine and must not keep r.
func WithOnBusinessCall(fn func(r *http.Request, body []byte)) Option {
	return func(c *config) { c.onBusiness = fn }
}

// WithTicketLifetime sets the lifetime of new JS-SDK tickets, Official
// Account and WeCom alike (default 7200 s). It must exceed Overlap; NewServer
// panics otherwise.
func WithTicketLifetime(d time.Duration) Option {
	return func(c *config) { c.ticketLifetime = d }
}

// WithTicketQuota sets how many getticket calls each app may make per day for
// each ticket type before errcode 45009 (default DefaultTicketDailyQuota).
// n <= 0 means no limit.
func WithTicketQuota(perDay int) Option {
	return func(c *config) { c.ticketDaily = perDay }
}

// WithTicketRotation makes every successful ticket call, Official Account or
// WeCom, issue a new ticket instead of handing back the current one. The
// previous ticket keeps working for Overlap, as a superseded token does; any
// older one stops at once. Use it to test a caller that must cope with a
// ticket changing under it.
func WithTicketRotation() Option {
	return func(c *config) { c.ticketRotation = true }
}

// WithTicketsDieWithToken is a fault: a ticket stops working as soon as the
// access_token that fetched it stops working (superseded past its overlap,
// revoked or expired), and the next ticket call issues a new one. WeChat does
// not document this; by default a ticket lives its own lifetime whatever
// happens to the token.
func WithTicketsDieWithToken() Option {
	return func(c *config) { c.ticketsDie = true }
}
