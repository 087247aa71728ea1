package openplatform

import (
	"log/slog"
	"net/http"

	"github.com/wxtoken/wxtoken"
)

// An Option configures a Platform in New.
type Option func(*options)

type options struct {
	store      wxtoken.Store
	httpClient *http.Client
	baseURL    string
	logger     *slog.Logger
	clientOpts []wxtoken.Option
	redis      ConfigGetter
}

// WithStore sets the Store of the verify ticket, the component token and the
// authorizers' records (default: wxtoken's FileStore under the user cache
// folder). Replicas must share it, and it must be durable: see
// WithRedisPersistenceCheck.
func WithStore(s wxtoken.Store) Option { return func(o *options) { o.store = s } }

// WithHTTPClient sets the HTTP client every WeChat call goes through. It is
// copied, and the copy never follows a redirect.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.httpClient = hc } }

// WithBaseURL points every call at another origin than
// https://api.weixin.qq.com, such as a wxtest server's.
func WithBaseURL(u string) Option { return func(o *options) { o.baseURL = u } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClientOptions adds wxtoken options to the Platform's Clients (the
// component token, the authorizers' Registry), after the Platform's own
// Store, HTTP client, base URL and logger.
func WithClientOptions(opts ...wxtoken.Option) Option {
	return func(o *options) { o.clientOpts = append(o.clientOpts, opts...) }
}

// WithRedisPersistenceCheck makes New check that rdb, the Redis behind the
// Store, persists its data (CONFIG GET appendonly and save) and log an error
// when it does not: refresh tokens live only as long as Redis keeps them.
// See WarnIfNotPersistent.
func WithRedisPersistenceCheck(rdb ConfigGetter) Option { return func(o *options) { o.redis = rdb } }
