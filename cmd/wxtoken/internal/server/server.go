package server

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/wxtoken/wxtoken"
)

// Server is the token server: its Handler serves the API, and Close stops
// the credentials' background work.
type Server struct {
	cfg     Config
	store   wxtoken.Store
	reg     *wxtoken.Registry
	creds   map[string]*credential
	keys    keyring
	metrics *metrics
	log     *slog.Logger // errors and warnings; never a token or secret
	access  *slog.Logger // one line per request; nil when off
	handler http.Handler
	now     func() time.Time

	httpClient *http.Client
	ownClient  bool // made by New: its idle connections are closed by Close
	closed     atomic.Bool
	ready      readiness // /readyz's cached Store check
}

// An Option changes how New builds a Server.
type Option func(*Server)

// WithLogger sets the logger of errors, warnings and the access log
// (default: nothing is logged).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithHTTPClient sets the client that calls WeChat (default: one pool of
// connections with timeouts.upstream as its timeout).
func WithHTTPClient(hc *http.Client) Option { return func(s *Server) { s.httpClient = hc } }

// New returns the Server of cfg, which must have passed Validate, with the
// secrets ResolveSecrets read and the Store tokens persist in. It does no
// I/O: credentials are fetched when first asked for.
func New(cfg Config, secrets Secrets, store wxtoken.Store, opts ...Option) (*Server, error) {
	if store == nil {
		return nil, errors.New("server: no Store")
	}
	s := &Server{cfg: cfg, store: store, creds: map[string]*credential{}, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.AccessLog == nil || *cfg.AccessLog {
		s.access = s.log
	}
	if s.httpClient == nil {
		s.httpClient, s.ownClient = upstreamHTTPClient(cfg.Timeouts.Upstream), true
	}
	s.metrics = newMetrics()
	common := []wxtoken.Option{
		wxtoken.WithStore(store), wxtoken.WithLogger(s.log), wxtoken.WithHTTPClient(s.httpClient),
		wxtoken.WithObserver(s.metrics),
		// A caller's wait for a fetch is bounded by this, not by a timer per request.
		wxtoken.WithFetchTimeout(cfg.Timeouts.Request),
	}
	regOpts := common
	if cfg.WeChatBaseURL != "" {
		regOpts = append(regOpts[:len(regOpts):len(regOpts)], wxtoken.WithBaseURL(cfg.WeChatBaseURL))
	}
	reg, err := wxtoken.NewRegistry(s.lookup(secrets), regOpts...)
	if err != nil {
		return nil, err
	}
	s.reg = reg
	if err := s.buildCredentials(secrets, common); err != nil {
		s.Close()
		return nil, err
	}
	s.metrics.nameKeys(s.creds)
	s.buildClients()
	s.handler = s.routes()
	return s, nil
}

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops every credential's timers and background work; requests
// still being served get 503. It is idempotent.
func (s *Server) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.closeCredentials()
	_ = s.reg.Close()
	if s.ownClient {
		s.httpClient.CloseIdleConnections()
	}
}

// HTTPServer returns an *http.Server for the Handler with the configured
// timeouts on every connection.
func (s *Server) HTTPServer() *http.Server {
	t := s.cfg.Timeouts
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}
