package openplatform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/msgcrypt"
)

// Config is what the platform's console (开放平台 → 第三方平台 → 开发配置) shows.
type Config struct {
	AppID          string // the component appid
	Secret         string // the component appsecret
	Token          string // the message verification token of the event URL
	EncodingAESKey string // the 43-character message encryption key
	// OnEvent, when set, is handed every authorization event once what it
	// changed is saved (unknown InfoTypes included), before WeChat gets its
	// "success". It runs on the handler's goroutine: keep it short. A panic
	// in it is logged and the event still answered.
	OnEvent func(ctx context.Context, ev Event)
}

// Platform is a third-party platform: its event handler, its
// component_access_token, its authorization link and a Client per
// authorizer, all kept in one Store and shared by every replica using it.
// It is safe for concurrent use; create one per process and Close it.
type Platform struct {
	appID   string
	secret  func() string // behind a func: printers walking by reflection do not reach it
	crypter *msgcrypt.Crypter
	onEvent func(context.Context, Event)

	store   wxtoken.Store
	locker  wxtoken.Locker // nil when the Store cannot lock
	hc      *http.Client   // redirect-safe
	baseURL string
	log     *slog.Logger

	component *wxtoken.Client
	preAuth   *wxtoken.Client
	registry  *wxtoken.Registry

	ticketMu      sync.Mutex
	lastPushAsk   time.Time   // when api_start_push_ticket was last called
	refusedTicket string      // the last ticket WeChat refused (61005, 61006)
	ticketArrived atomic.Bool // a ticket was saved here since the component Source last read one

	recovery recovery

	ctx    context.Context // cancelled by Close: ends the walks of the authorizer list
	cancel context.CancelFunc
	wg     sync.WaitGroup // the walks under way
}

// Store keys, under the component appid c: "c.component.ticket",
// "c.component.token", "c.component.preauthcode", "c.authorizer.<appid>",
// "c.authorized.<appid>".
// None holds a secret.
const (
	ticketSuffix     = ".component.ticket"
	tokenSuffix      = ".component.token"
	preAuthSuffix    = ".component.preauthcode"
	authorizerInfix  = ".authorizer."
	defaultBaseURL   = wxtoken.DefaultBaseURL
	pushAskInterval  = 10 * time.Minute // WeChat pushes every 10 min: asking more often gains nothing
	persistenceCheck = 3 * time.Second
)

// New returns the Platform of cfg. It does no I/O, except the Redis
// persistence check that WithRedisPersistenceCheck asks for.
func New(cfg Config, opts ...Option) (*Platform, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	o := options{baseURL: defaultBaseURL}
	for _, opt := range opts {
		opt(&o)
	}
	crypter, err := msgcrypt.New(cfg.Token, cfg.EncodingAESKey, cfg.AppID)
	if err != nil {
		return nil, fmt.Errorf("openplatform: %w", err)
	}
	secret := cfg.Secret
	p := &Platform{appID: cfg.AppID, secret: func() string { return secret }, crypter: crypter,
		onEvent: cfg.OnEvent, store: o.store, hc: redirectSafe(o.httpClient),
		baseURL: strings.TrimRight(o.baseURL, "/"), log: o.logger}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.store == nil {
		p.store = defaultStore(p.log)
	}
	p.locker, _ = p.store.(wxtoken.Locker)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if o.redis != nil {
		ctx, cancel := context.WithTimeout(context.Background(), persistenceCheck)
		WarnIfNotPersistent(ctx, o.redis, p.log)
		cancel()
	}
	if err := p.newClients(o); err != nil {
		p.cancel()
		return nil, err
	}
	return p, nil
}

// newClients builds the component token's and pre-auth code's Clients and
// the authorizers' Registry on the Platform's Store, HTTP client and logger.
func (p *Platform) newClients(o options) error {
	common := []wxtoken.Option{wxtoken.WithStore(p.store), wxtoken.WithHTTPClient(o.httpClient),
		wxtoken.WithLogger(p.log)}
	if o.baseURL != defaultBaseURL {
		common = append(common, wxtoken.WithBaseURL(o.baseURL))
	}
	common = append(common, o.clientOpts...)
	var err error
	if p.component, err = wxtoken.NewClient(p.appID+tokenSuffix, &componentSource{p}, common...); err != nil {
		return fmt.Errorf("openplatform: %w", err)
	}
	// Fetched when a link is asked for, not renewed for nobody.
	preAuthOpts := append(append([]wxtoken.Option(nil), common...), wxtoken.WithBackgroundRefresh(false))
	if p.preAuth, err = wxtoken.NewClient(p.appID+preAuthSuffix, &preAuthSource{p}, preAuthOpts...); err != nil {
		p.component.Close()
		return fmt.Errorf("openplatform: %w", err)
	}
	p.registry, err = wxtoken.NewRegistry(p.lookup, common...)
	if err != nil {
		p.component.Close()
		p.preAuth.Close()
		return fmt.Errorf("openplatform: %w", err)
	}
	return nil
}

func checkConfig(cfg Config) error {
	switch {
	case cfg.AppID == "":
		return errors.New("openplatform: empty component appid")
	case !validAppID(cfg.AppID):
		return fmt.Errorf("openplatform: component appid %q has characters outside [A-Za-z0-9_-]", cfg.AppID)
	case cfg.Secret == "":
		return errors.New("openplatform: empty component secret")
	case strings.ContainsAny(cfg.Secret, " \t\r\n"):
		return errors.New("openplatform: component secret contains spaces or control characters")
	}
	return nil
}

// validAppID reports whether id can be an appid and part of a store key.
func validAppID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func defaultStore(log *slog.Logger) wxtoken.Store {
	dir, err := os.UserCacheDir()
	if err == nil {
		var fs *wxtoken.FileStore
		if fs, err = wxtoken.NewFileStore(filepath.Join(dir, "wxtoken")); err == nil {
			return fs
		}
	}
	log.Error("openplatform: no cache folder; verify tickets and refresh tokens are kept in memory only and LOST at exit",
		"err", err)
	return wxtoken.NewMemoryStore()
}

// AppID returns the component appid.
func (p *Platform) AppID() string { return p.appID }

// Component returns the Client of the component_access_token. Its Source
// reads the latest verify ticket from the Store; without one it asks WeChat
// for a push once per push interval and fails with ErrNoVerifyTicket.
func (p *Platform) Component() *wxtoken.Client { return p.component }

// Authorizer returns the Client of the authorizer_access_token of appID,
// held in the Platform's Registry: one per appid, created on first use.
// The Client stays valid until the account's authorization changes (an
// authorized or unauthorized event for it): call Authorizer for each use,
// which costs a map read, rather than keeping the Client.
func (p *Platform) Authorizer(ctx context.Context, appID string) (*wxtoken.Client, error) {
	if !validAppID(appID) {
		return nil, fmt.Errorf("openplatform: authorizer appid %q has characters outside [A-Za-z0-9_-]", appID)
	}
	return p.registry.Client(ctx, appID)
}

// Token returns a valid authorizer_access_token of appID: Authorizer(appID).Get.
func (p *Platform) Token(ctx context.Context, appID string) (string, error) {
	if !validAppID(appID) {
		return "", fmt.Errorf("openplatform: authorizer appid %q has characters outside [A-Za-z0-9_-]", appID)
	}
	return p.registry.Get(ctx, appID)
}

// Close stops every Client of the Platform and waits for their work,
// including the last try of a refresh-token record whose save is being
// retried. It is idempotent.
func (p *Platform) Close() error {
	p.cancel()
	p.wg.Wait()
	p.registry.Close()
	p.preAuth.Close()
	p.component.Close()
	return nil
}

// String shows the component appid only.
func (p *Platform) String() string { return "openplatform.Platform{" + p.appID + "}" }

// authorizerKey is the store key of appID's record.
func (p *Platform) authorizerKey(appID string) string { return p.appID + authorizerInfix + appID }

// authorizedKey is the store key of the time appID last authorized the platform.
func (p *Platform) authorizedKey(appID string) string { return p.appID + authorizedInfix + appID }
