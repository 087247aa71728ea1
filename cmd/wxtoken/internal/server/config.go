// Package server is the central token server of `wxtoken serve`: an HTTP API
// on a wxtoken Registry that hands WeChat credentials to services in any
// language, each client authenticated by a bearer key and allowed only the
// credentials its configuration names.
package server

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the server's configuration, as the YAML file spells it.
type Config struct {
	// Listen is the address to listen on, such as "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// TLS names the certificate and key; without them the server speaks
	// plain HTTP, which Validate allows only on a loopback address unless
	// AllowPlainHTTP is set.
	TLS            TLSConfig `yaml:"tls"`
	AllowPlainHTTP bool      `yaml:"allow_plain_http"`
	// Store is where tokens persist and are shared between serve instances.
	Store StoreConfig `yaml:"store"`
	// WeChatBaseURL and WeComBaseURL replace WeChat's API origins: for tests
	// against a fake (wxtest) only.
	WeChatBaseURL string `yaml:"wechat_base_url"`
	WeComBaseURL  string `yaml:"wecom_base_url"`
	// AllowInlineSecrets permits `secret:` in the file itself.
	AllowInlineSecrets bool           `yaml:"allow_inline_secrets"`
	Timeouts           TimeoutsConfig `yaml:"timeouts"`
	// AccessLog turns the access log off with false; it is on by default.
	AccessLog *bool `yaml:"access_log"`
	// LogFormat is "text" (the default) or "json".
	LogFormat   string                      `yaml:"log_format"`
	Credentials map[string]CredentialConfig `yaml:"credentials"`
	Clients     map[string]ClientConfig     `yaml:"clients"`
}

// TLSConfig names the server's certificate chain and private key (PEM).
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// StoreConfig is a FileStore folder or a Redis URL, exactly one. The Redis
// password is given by PasswordEnv or PasswordFile, as a credential's
// secret is; one inline in the URL is refused unless allow_inline_secrets.
type StoreConfig struct {
	Dir          string `yaml:"dir"`
	Redis        string `yaml:"redis"`
	RedisPrefix  string `yaml:"redis_prefix"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
}

// StorePassword is the Secrets entry of the Redis password (store.
// password_env or password_file): no credential can have this name.
const StorePassword = "store.password"

// TimeoutsConfig bounds every connection and request; zero fields take the
// defaults of DefaultTimeouts.
type TimeoutsConfig struct {
	ReadHeader time.Duration `yaml:"read_header"`
	Read       time.Duration `yaml:"read"`
	Write      time.Duration `yaml:"write"`
	Idle       time.Duration `yaml:"idle"`
	Request    time.Duration `yaml:"request"`
	Shutdown   time.Duration `yaml:"shutdown"`
	// Upstream bounds one HTTP round trip to WeChat (a fetch, lock and
	// store included, is bounded by Request).
	Upstream time.Duration `yaml:"upstream"`
}

// DefaultTimeouts are the timeouts a configuration leaves unset. A request
// may wait for one WeChat fetch (the library bounds it at 30 s, but WeChat
// answers in well under a second), so Request is 20 s and Write above it.
var DefaultTimeouts = TimeoutsConfig{
	ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 30 * time.Second,
	Idle: 2 * time.Minute, Request: 20 * time.Second, Shutdown: 30 * time.Second,
	Upstream: 10 * time.Second,
}

// The credential types a configuration may name.
const (
	TypeOfficialAccount  = "official_account"   // an Official Account's or Mini Program's access_token
	TypeJSAPITicket      = "jsapi_ticket"       // its JS-SDK ticket (token: the official_account)
	TypeWxCardTicket     = "wx_card_ticket"     // its card api_ticket (token: the official_account)
	TypeWeCom            = "wecom"              // a WeCom application's access_token
	TypeWeComJSAPITicket = "wecom_jsapi_ticket" // the corp's jsapi ticket (token: the wecom credential)
	TypeWeComAgentTicket = "wecom_agent_ticket" // the application's agent_config ticket
)

// CredentialConfig is one credential the server manages.
type CredentialConfig struct {
	Type string `yaml:"type"`
	// AppID and Stable are an official_account's; CorpID a wecom one's.
	AppID  string `yaml:"appid"`
	Stable bool   `yaml:"stable"`
	CorpID string `yaml:"corp_id"`
	// The secret, one way: the name of an environment variable, a file
	// readable by the server's user only, or (with allow_inline_secrets) the
	// secret itself.
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
	Secret     string `yaml:"secret"`
	// Token names the credential whose access_token a ticket is fetched with.
	Token string `yaml:"token"`
	// AgentID is a wecom_agent_ticket's application id, which /v1/jssdk
	// answers beside the signature, as wx.agentConfig needs it.
	AgentID string `yaml:"agent_id"`
}

// ClientConfig is one client allowed to ask: the hash of its bearer key
// (never the key: `wxtoken keygen` prints both) and what it may read.
type ClientConfig struct {
	KeyHash     string          `yaml:"key_hash"`
	Credentials []string        `yaml:"credentials"`
	RateLimit   RateLimitConfig `yaml:"rate_limit"`
}

// RateLimitConfig is a client's token bucket: PerSecond requests a second
// on average, Burst at once. Zero fields take DefaultRateLimit's.
type RateLimitConfig struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// DefaultRateLimit is a client's bucket when its configuration sets none:
// far above what a service needs once it caches (a Go client through
// RemoteSource asks once per token lifetime), low enough to stop a loop.
var DefaultRateLimit = RateLimitConfig{PerSecond: 100, Burst: 200}

// The bounds of a rate limit: below minRate a client would be locked out
// for good (and its wait overflow), above maxRate it is no limit at all.
const (
	minRate  = 1e-6
	maxRate  = 1e6
	maxBurst = 1_000_000
)

// maxConfigBytes bounds the configuration file.
const maxConfigBytes = 1 << 20

// ErrConfig is matched by every error Decode and Validate return.
var ErrConfig = errors.New("config")

// Decode parses a YAML configuration strictly: an unknown field, a second
// document or a value of the wrong type is an error naming the line. It
// does not validate; Validate does.
func Decode(r io.Reader) (Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("%w: reading: %w", ErrConfig, err)
	}
	if len(data) > maxConfigBytes {
		return Config{}, fmt.Errorf("%w: larger than %d bytes", ErrConfig, maxConfigBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("%w: the file is empty", ErrConfig)
		}
		return Config{}, fmt.Errorf("%w: %s", ErrConfig, yamlProblem(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: more than one YAML document", ErrConfig)
	}
	return cfg, nil
}

// yamlProblem is the decoder's message without its package prefix and
// without the excerpts of values it quotes between backquotes ("cannot
// unmarshal !!str `...` into bool"): a value in the wrong place may be a
// secret. Field names and line numbers stay.
func yamlProblem(err error) string {
	return quotedValue.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "a value (not repeated)")
}

var quotedValue = regexp.MustCompile("`[^`]*`")

// Validate checks everything that can be checked without I/O and fills in
// the defaults. The error lists every problem, each naming its field.
func (cfg *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...)))
	}
	cfg.validateListen(bad)
	cfg.validateStore(bad)
	for _, f := range []struct{ name, value string }{
		{"wechat_base_url", cfg.WeChatBaseURL}, {"wecom_base_url", cfg.WeComBaseURL},
	} {
		if f.value != "" {
			if msg := checkBaseURL(f.value); msg != "" {
				bad(f.name, "%s", msg)
			}
		}
	}
	cfg.Timeouts.fill(bad)
	switch cfg.LogFormat {
	case "", "text", "json":
	default:
		bad("log_format", "must be text or json")
	}
	cfg.validateCredentials(bad)
	cfg.validateClients(bad)
	return errors.Join(errs...)
}

type reporter func(field, format string, args ...any)

func (cfg *Config) validateListen(bad reporter) {
	if cfg.Listen == "" {
		bad("listen", "missing (such as 127.0.0.1:8080)")
		return
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		bad("listen", "not host:port")
		return
	}
	tlsSet := cfg.TLS.CertFile != "" || cfg.TLS.KeyFile != ""
	if tlsSet && (cfg.TLS.CertFile == "" || cfg.TLS.KeyFile == "") {
		bad("tls", "give both cert_file and key_file")
	}
	if !tlsSet && !loopbackHost(host) && !cfg.AllowPlainHTTP {
		bad("listen", "plain HTTP on a non-loopback address would send tokens and keys in clear: "+
			"configure tls, or set allow_plain_http: true behind a TLS-terminating proxy")
	}
}

// loopbackHost reports whether a listen host is this machine only.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (cfg *Config) validateStore(bad reporter) {
	s := cfg.Store
	switch {
	case s.Dir == "" && s.Redis == "":
		bad("store", "give dir (a folder) or redis (a URL): tokens must persist, and be shared by every serve instance")
	case s.Dir != "" && s.Redis != "":
		bad("store", "give dir or redis, not both")
	case s.Redis == "" && (s.RedisPrefix != "" || s.PasswordEnv != "" || s.PasswordFile != ""):
		bad("store", "redis_prefix, password_env and password_file need store.redis")
	case s.Redis != "":
		cfg.validateRedis(bad)
	}
}

// redisSchemes are the schemes of the Redis URLs `wxtoken serve` opens.
var redisSchemes = []string{"redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel"}

// validateRedis checks the shape of store.redis, never quoting it (it may
// hold a password), and treats a password in it as an inline secret.
func (cfg *Config) validateRedis(bad reporter) {
	s := cfg.Store
	u, err := url.Parse(s.Redis)
	switch {
	case err != nil || !slices.Contains(redisSchemes, u.Scheme):
		bad("store.redis", "not a Redis URL: redis://host:6379/0, rediss://, unix://, redis+cluster:// or redis+sentinel:// "+
			"(the value is not repeated: it may hold a password)")
		return
	case u.Scheme != "unix" && u.Host == "", u.Scheme == "unix" && u.Path == "":
		bad("store.redis", "names no host (or, for unix://, no socket path)")
	case strings.HasSuffix(u.Scheme, "+sentinel") && u.Query().Get("master") == "":
		bad("store.redis", "a redis+sentinel URL needs ?master=NAME")
	}
	_, inline := u.User.Password()
	switch {
	case s.PasswordEnv != "" && s.PasswordFile != "":
		bad("store", "give the Redis password one way only: password_env or password_file")
	case inline && (s.PasswordEnv != "" || s.PasswordFile != ""):
		bad("store.redis", "holds a password and password_env or password_file gives another")
	case inline && !cfg.AllowInlineSecrets:
		bad("store.redis", "holds a password, a secret in the config file, refused unless allow_inline_secrets: true; "+
			"prefer store.password_env or store.password_file")
	}
}

// checkBaseURL returns what is wrong with an upstream base URL, or "".
func checkBaseURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return "not an http(s)://host[:port] URL"
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil:
		return "only scheme://host[:port]: no path, query or user"
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		return "plain http is allowed only for a loopback test server: the secrets would cross the network in clear"
	}
	return ""
}

func (t *TimeoutsConfig) fill(bad reporter) {
	fields := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"read_header", &t.ReadHeader, DefaultTimeouts.ReadHeader},
		{"read", &t.Read, DefaultTimeouts.Read},
		{"write", &t.Write, DefaultTimeouts.Write},
		{"idle", &t.Idle, DefaultTimeouts.Idle},
		{"request", &t.Request, DefaultTimeouts.Request},
		{"shutdown", &t.Shutdown, DefaultTimeouts.Shutdown},
		{"upstream", &t.Upstream, DefaultTimeouts.Upstream},
	}
	if t.Shutdown == 0 && t.Request >= DefaultTimeouts.Shutdown {
		t.Shutdown = t.Request + 10*time.Second // unset: above the request timeout, whatever it is
	}
	for _, f := range fields {
		switch {
		case *f.v < 0:
			bad("timeouts."+f.name, "negative")
		case *f.v == 0:
			*f.v = f.def
		}
	}
	if t.Write <= t.Request {
		bad("timeouts.write", "must exceed timeouts.request, or answers would be cut off")
	}
	if t.Shutdown <= t.Request {
		bad("timeouts.shutdown", "must exceed timeouts.request, or requests in flight at SIGTERM would be cut off")
	}
}

// maxNameLen bounds credential and client names.
const maxNameLen = 64

// checkName returns what is wrong with a credential or client name, or "".
// Names appear in URLs, store keys of remote clients, logs and metric
// labels, so they are kept to a safe alphabet.
func checkName(name string) string {
	if name == "" || len(name) > maxNameLen {
		return fmt.Sprintf("a name must have 1 to %d characters", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "a name may hold only A-Z a-z 0-9 - _"
		}
	}
	return ""
}

func (cfg *Config) validateCredentials(bad reporter) {
	if len(cfg.Credentials) == 0 {
		bad("credentials", "none configured")
	}
	for _, name := range sortedKeys(cfg.Credentials) {
		field := "credentials." + safeName(name)
		if msg := checkName(name); msg != "" {
			bad(field, "%s", msg)
			continue
		}
		c := cfg.Credentials[name]
		switch c.Type {
		case TypeOfficialAccount:
			if c.AppID == "" || checkName(c.AppID) != "" {
				bad(field+".appid", "missing or not an appid (A-Z a-z 0-9 - _)")
			}
			cfg.validateSecret(field, c, bad)
			cfg.validateUnused(field, c, bad, "corp_id", "token", "agent_id")
		case TypeWeCom:
			if c.CorpID == "" || checkName(c.CorpID) != "" {
				bad(field+".corp_id", "missing or not a corpid (A-Z a-z 0-9 - _)")
			}
			cfg.validateSecret(field, c, bad)
			cfg.validateUnused(field, c, bad, "appid", "token", "stable", "agent_id")
		case TypeJSAPITicket, TypeWxCardTicket, TypeWeComJSAPITicket, TypeWeComAgentTicket:
			cfg.validateTicket(field, c, bad)
			if c.Type == TypeWeComAgentTicket && c.AgentID != "" && checkName(c.AgentID) != "" {
				bad(field+".agent_id", "not an agentid (A-Z a-z 0-9 - _)")
			}
		case "":
			bad(field+".type", "missing: one of %s", strings.Join(credentialTypes, ", "))
		default:
			bad(field+".type", "unknown: one of %s", strings.Join(credentialTypes, ", "))
		}
	}
	cfg.validateDistinct(bad)
}

// validateDistinct refuses two credentials that would be one in the Store
// (the same appid and mode, the same ticket of one account): two Clients on
// one key would each renew it.
func (cfg *Config) validateDistinct(bad reporter) {
	seen := map[string]string{}
	for _, name := range sortedKeys(cfg.Credentials) {
		c := cfg.Credentials[name]
		var id string
		switch c.Type {
		case TypeOfficialAccount:
			id = fmt.Sprintf("oa %s %t", c.AppID, c.Stable)
		case TypeWeCom:
			id = "wecom " + c.CorpID + " " + c.SecretEnv + c.SecretFile + c.Secret // ResolveSecrets compares the secrets
		case TypeJSAPITicket, TypeWxCardTicket:
			id = c.Type + " " + cfg.Credentials[c.Token].AppID // one ticket per account, whatever the token mode
		case TypeWeComJSAPITicket:
			id = c.Type + " " + cfg.Credentials[c.Token].CorpID // one per corp
		default:
			id = c.Type + " " + c.Token
		}
		if other, dup := seen[id]; dup {
			bad("credentials."+safeName(name), "the same credential as credentials.%s", safeName(other))
			continue
		}
		seen[id] = name
	}
}

var credentialTypes = []string{TypeOfficialAccount, TypeJSAPITicket, TypeWxCardTicket, TypeWeCom,
	TypeWeComJSAPITicket, TypeWeComAgentTicket}

// safeName is a name fit to quote in an error: a config key that is not a
// valid name is not repeated, since it could be a misplaced secret.
func safeName(name string) string {
	if checkName(name) != "" {
		return "(an invalid name)"
	}
	return name
}

func (cfg *Config) validateSecret(field string, c CredentialConfig, bad reporter) {
	n := 0
	for _, s := range []string{c.SecretEnv, c.SecretFile, c.Secret} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		bad(field, "no secret: give secret_env (an environment variable) or secret_file")
	case n > 1:
		bad(field, "give the secret one way only: secret_env, secret_file or secret")
	case c.Secret != "" && !cfg.AllowInlineSecrets:
		bad(field+".secret", "a secret in the config file is refused unless allow_inline_secrets: true; "+
			"prefer secret_env or secret_file")
	}
}

func (cfg *Config) validateTicket(field string, c CredentialConfig, bad reporter) {
	want := TypeOfficialAccount
	if c.Type == TypeWeComJSAPITicket || c.Type == TypeWeComAgentTicket {
		want = TypeWeCom
	}
	if c.Token == "" {
		bad(field+".token", "missing: the name of the %s credential the ticket is fetched with", want)
	} else if t, ok := cfg.Credentials[c.Token]; !ok || t.Type != want {
		bad(field+".token", "must name a %s credential of this file", want)
	}
	cfg.validateUnused(field, c, bad, "appid", "corp_id", "secret_env", "secret_file", "secret", "stable")
	if c.Type != TypeWeComAgentTicket {
		cfg.validateUnused(field, c, bad, "agent_id")
	}
}

// validateUnused reports fields set that the credential's type ignores: a
// field set in vain is a misunderstanding worth stopping for.
func (cfg *Config) validateUnused(field string, c CredentialConfig, bad reporter, names ...string) {
	set := map[string]bool{
		"appid": c.AppID != "", "corp_id": c.CorpID != "", "token": c.Token != "", "stable": c.Stable,
		"secret_env": c.SecretEnv != "", "secret_file": c.SecretFile != "", "secret": c.Secret != "",
		"agent_id": c.AgentID != "",
	}
	for _, n := range names {
		if set[n] {
			bad(field+"."+n, "not used by type %s", c.Type)
		}
	}
}

func (cfg *Config) validateClients(bad reporter) {
	if len(cfg.Clients) == 0 {
		bad("clients", "none configured: nobody could ask for a credential")
	}
	seen := map[[sha256.Size]byte]string{}
	for _, name := range sortedKeys(cfg.Clients) {
		field := "clients." + safeName(name)
		if msg := checkName(name); msg != "" {
			bad(field, "%s", msg)
			continue
		}
		c := cfg.Clients[name]
		// Compared decoded: hex spells one hash in upper or lower case.
		if sum, err := ParseKeyHash(c.KeyHash); err != nil {
			bad(field+".key_hash", "%v", err)
		} else if other, dup := seen[sum]; dup {
			bad(field+".key_hash", "the same as clients.%s's: give each client a key of its own", other)
		} else {
			seen[sum] = name
		}
		if len(c.Credentials) == 0 {
			bad(field+".credentials", "empty: the client could read nothing")
		}
		for i, cred := range c.Credentials {
			if _, ok := cfg.Credentials[cred]; !ok {
				bad(fmt.Sprintf("%s.credentials[%d]", field, i), "names no credential of this file")
			}
		}
		r := &c.RateLimit
		switch {
		case r.PerSecond < 0 || r.Burst < 0:
			bad(field+".rate_limit", "negative")
		case math.IsNaN(r.PerSecond) || r.PerSecond != 0 && (r.PerSecond < minRate || r.PerSecond > maxRate):
			bad(field+".rate_limit.per_second", "must be a number from %g to %g (0: the default)", minRate, maxRate)
		case r.Burst > maxBurst:
			bad(field+".rate_limit.burst", "at most %d", maxBurst)
		default:
			if r.PerSecond == 0 {
				r.PerSecond = DefaultRateLimit.PerSecond
			}
			if r.Burst == 0 {
				r.Burst = max(DefaultRateLimit.Burst, int(r.PerSecond))
			}
		}
		cfg.Clients[name] = c
	}
}
