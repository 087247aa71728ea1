package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exampleConfig is the README's example, with the hash of a known key.
const exampleConfig = `
listen: 127.0.0.1:8443
tls:
  cert_file: /etc/wxtoken/tls.crt
  key_file: /etc/wxtoken/tls.key
store:
  redis: redis://127.0.0.1:6379/0
timeouts:
  request: 15s
credentials:
  shop:
    type: official_account
    appid: wx0123456789abcdef
    stable: true
    secret_env: SHOP_APPSECRET
  shop-jsapi:
    type: jsapi_ticket
    token: shop
  corp:
    type: wecom
    corp_id: ww0123456789abcdef
    secret_file: /etc/wxtoken/corp.secret
clients:
  billing:
    key_hash: sha256:0000000000000000000000000000000000000000000000000000000000000000
    credentials: [shop, shop-jsapi]
    rate_limit: {per_second: 20, burst: 40}
  intranet:
    key_hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
    credentials: [corp]
`

func decodeString(t *testing.T, s string) (Config, error) {
	t.Helper()
	return Decode(strings.NewReader(s))
}

func TestDecodeAndValidateTheExample(t *testing.T) {
	t.Parallel()
	cfg, err := decodeString(t, exampleConfig)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "127.0.0.1:8443", cfg.Listen)
	assert.True(t, cfg.Credentials["shop"].Stable)
	assert.Equal(t, 15*time.Second, cfg.Timeouts.Request)
	assert.Equal(t, DefaultTimeouts.ReadHeader, cfg.Timeouts.ReadHeader, "defaults filled in")
	assert.Equal(t, RateLimitConfig{PerSecond: 20, Burst: 40}, cfg.Clients["billing"].RateLimit)
	assert.Equal(t, DefaultRateLimit, cfg.Clients["intranet"].RateLimit)
}

func TestDecodeIsStrict(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown field":      {"listen: 127.0.0.1:1\nlisten_addr: x\n", "field listen_addr not found"},
		"misspelt nested":    {"store:\n  folder: /x\n", "field folder not found"},
		"wrong type":         {"timeouts:\n  read: soon\n", "cannot unmarshal"},
		"two documents":      {"listen: a\n---\nlisten: b\n", "more than one YAML document"},
		"empty":              {"", "empty"},
		"duplicate key":      {"credentials:\n  a: {type: wecom}\n  a: {type: wecom}\n", "already defined"},
		"not a mapping":      {"- a\n- b\n", "cannot unmarshal"},
		"too large":          {"listen: " + strings.Repeat("a", maxConfigBytes) + "\n", "larger than"},
		"a list for a value": {"listen: [a, b]\n", "cannot unmarshal"},
	} {
		_, err := decodeString(t, tc.yaml)
		require.Error(t, err, name)
		assert.ErrorIs(t, err, ErrConfig, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
}

func TestDecodeErrorsDoNotRepeatValues(t *testing.T) {
	t.Parallel()
	_, err := decodeString(t, "credentials:\n  shop: {type: official_account, stable: s3cr3t-misplaced}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2: cannot unmarshal !!str a value (not repeated) into bool")
	assert.NotContains(t, err.Error(), "s3cr3t-misplaced")
}

func TestValidateNamesEveryField(t *testing.T) {
	t.Parallel()
	hash := HashKey("wxt_a")
	cases := map[string]struct {
		yaml string
		want []string
	}{
		"nothing": {"log_format: xml\n", []string{"listen: missing", "store: give dir", "log_format: must be",
			"credentials: none", "clients: none"}},
		"plain http off loopback": {"listen: 0.0.0.0:80\n", []string{"listen: plain HTTP on a non-loopback address"}},
		"half tls":                {"listen: 0.0.0.0:443\ntls: {cert_file: a}\n", []string{"tls: give both"}},
		"both stores":             {"store: {dir: /a, redis: redis://b}\n", []string{"store: give dir or redis, not both"}},
		"cleartext upstream":      {"wechat_base_url: http://api.example.com\n", []string{"wechat_base_url: plain http is allowed only for a loopback"}},
		"upstream path":           {"wecom_base_url: https://a.example/x\n", []string{"wecom_base_url: only scheme://host"}},
		"negative timeout":        {"timeouts: {idle: -1s}\n", []string{"timeouts.idle: negative"}},
		"write under request":     {"timeouts: {write: 5s, request: 10s}\n", []string{"timeouts.write: must exceed"}},
		"credential problems": {`credentials:
  a: {type: official_account, secret_env: X}
  b: {type: official_account, appid: wx1}
  c: {type: official_account, appid: wx1, secret_env: X, secret_file: /y}
  d: {type: official_account, appid: wx2, secret: s3cr3t-in-the-file}
  e: {type: jsapi_ticket}
  f: {type: jsapi_ticket, token: g}
  g: {type: wecom, corp_id: ww1, secret_env: Y, stable: true}
  h: {type: tokens}
  i: {appid: wx3}
  "bad name!": {type: wecom}
  j: {type: official_account, appid: wx1, secret_env: Z}
`, []string{
			"credentials.a.appid: missing", "credentials.b: no secret", "credentials.c: give the secret one way only",
			"credentials.d.secret: a secret in the config file is refused unless allow_inline_secrets",
			"credentials.e.token: missing", "credentials.f.token: must name a official_account credential",
			"credentials.g.stable: not used by type wecom", "credentials.h.type: unknown", "credentials.i.type: missing",
			"credentials.(an invalid name): a name may hold only", "credentials.j: the same credential as credentials.b",
		}},
		"client problems": {`credentials:
  a: {type: official_account, appid: wx1, secret_env: X}
clients:
  nohash: {credentials: [a]}
  key: {key_hash: wxt_pasted-the-key-itself, credentials: [a]}
  short: {key_hash: "sha256:abcd", credentials: [a]}
  one: {key_hash: "` + hash + `", credentials: [a]}
  two: {key_hash: "` + hash + `", credentials: [a]}
  none: {key_hash: "` + HashKey("wxt_b") + `"}
  unknown: {key_hash: "` + HashKey("wxt_c") + `", credentials: [a, zz]}
  negative: {key_hash: "` + HashKey("wxt_d") + `", credentials: [a], rate_limit: {burst: -1}}
`, []string{
			"clients.nohash.key_hash: missing", "clients.key.key_hash: this is a client key, not its hash",
			"clients.short.key_hash: not sha256:", "clients.two.key_hash: the same as clients.one's",
			"clients.none.credentials: empty", "clients.unknown.credentials[1]: names no credential",
			"clients.negative.rate_limit: negative",
		}},
	}
	for name, tc := range cases {
		cfg, err := decodeString(t, tc.yaml)
		require.NoError(t, err, name)
		err = cfg.Validate()
		require.Error(t, err, name)
		assert.ErrorIs(t, err, ErrConfig, name)
		for _, want := range tc.want {
			assert.Contains(t, err.Error(), want, name)
		}
		assert.NotContains(t, err.Error(), "wxt_pasted-the-key-itself", name)
		assert.NotContains(t, err.Error(), "s3cr3t-in-the-file", name+": an inline secret is not repeated")
	}
}

func TestLoopbackListenNeedsNoTLS(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:8080", "[::1]:8080", "localhost:8080"} {
		cfg, err := decodeString(t, strings.Replace(exampleConfig, "listen: 127.0.0.1:8443\ntls:\n  cert_file: /etc/wxtoken/tls.crt\n  key_file: /etc/wxtoken/tls.key\n",
			"listen: \""+addr+"\"\n", 1))
		require.NoError(t, err)
		require.NoError(t, cfg.Validate(), addr)
	}
	cfg, err := decodeString(t, strings.Replace(exampleConfig, "listen: 127.0.0.1:8443\ntls:\n  cert_file: /etc/wxtoken/tls.crt\n  key_file: /etc/wxtoken/tls.key\n",
		"listen: \":8080\"\nallow_plain_http: true\n", 1))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(), "forced plain HTTP behind a TLS proxy")
}

func TestResolveSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	private := filepath.Join(dir, "private")
	require.NoError(t, os.WriteFile(private, []byte("file-secret-0123\n"), 0o600))
	shared := filepath.Join(dir, "shared")
	require.NoError(t, os.WriteFile(shared, []byte("shared-secret-0123\n"), 0o644))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))

	cfg := Config{AllowInlineSecrets: true, Credentials: map[string]CredentialConfig{
		"env":    {Type: TypeOfficialAccount, SecretEnv: "SECRET_A"},
		"file":   {Type: TypeOfficialAccount, SecretFile: private},
		"inline": {Type: TypeOfficialAccount, Secret: "inline-secret-0123"},
		"ticket": {Type: TypeJSAPITicket, Token: "env"},
	}}
	env := map[string]string{"SECRET_A": " env-secret-0123 \n"}
	secrets, err := cfg.ResolveSecrets(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, Secrets{"env": "env-secret-0123", "file": "file-secret-0123", "inline": "inline-secret-0123"}, secrets)

	bad := Config{Credentials: map[string]CredentialConfig{
		"unset":   {Type: TypeOfficialAccount, SecretEnv: "UNSET"},
		"shared":  {Type: TypeOfficialAccount, SecretFile: shared},
		"missing": {Type: TypeOfficialAccount, SecretFile: filepath.Join(dir, "nope")},
		"empty":   {Type: TypeOfficialAccount, SecretFile: empty},
		"dir":     {Type: TypeOfficialAccount, SecretFile: dir},
		"control": {Type: TypeOfficialAccount, SecretEnv: "CONTROL"},
	}}
	env = map[string]string{"CONTROL": "a\x01b"}
	_, err = bad.ResolveSecrets(func(k string) string { return env[k] })
	require.Error(t, err)
	for _, want := range []string{
		"credentials.unset.secret_env: the environment variable UNSET is empty or unset",
		"credentials.shared.secret_file: its mode 0644 lets its group or others read it: chmod 600 it",
		"credentials.missing.secret_file: cannot open it: no such file or directory",
		"credentials.empty.secret_file: empty",
		"credentials.dir.secret_file: not a regular file",
		"credentials.control: the secret holds control characters",
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "shared-secret-0123")
	assert.NotContains(t, err.Error(), dir, "the path is named by the field")
	assert.True(t, errors.Is(err, ErrConfig))
}

// FuzzDecodeConfig feeds the decoder and the validator arbitrary files: an
// error or a configuration, never a panic, and a valid one stays valid.
func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(exampleConfig))
	f.Add([]byte("listen: 127.0.0.1:1\nstore: {dir: /x}\n"))
	f.Add([]byte("credentials:\n  a: {type: jsapi_ticket, token: a}\n"))
	f.Add([]byte("clients: {a: {key_hash: 'sha256:zz', credentials: [b, c]}}"))
	f.Add([]byte("timeouts: {read: 1h, write: -5s}\n"))
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Decode(strings.NewReader(string(data)))
		if err != nil {
			require.ErrorIs(t, err, ErrConfig)
			return
		}
		if cfg.Validate() != nil {
			return
		}
		require.NoError(t, cfg.Validate(), "Validate is idempotent")
	})
}

// TestTheREADMEConfigurationIsValid decodes and validates the example of
// the README's server section, so that the documentation cannot drift.
func TestTheREADMEConfigurationIsValid(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "## A central token server")
	require.True(t, ok)
	_, block, ok := strings.Cut(section, "```yaml\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	cfg, err := decodeString(t, block)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	assert.Len(t, cfg.Credentials, 4)
	assert.Len(t, cfg.Clients, 2)
}

// minimalConfig is a valid configuration to which a test appends or
// changes one part.
const minimalConfig = `
listen: 127.0.0.1:8080
store: {dir: /var/lib/wxtoken}
credentials:
  a: {type: official_account, appid: wx1, secret_env: X}
clients:
  one: {key_hash: "%s", credentials: [a]}
`

func validateYAML(t *testing.T, yaml string) error {
	t.Helper()
	cfg, err := decodeString(t, yaml)
	require.NoError(t, err)
	return cfg.Validate()
}

func TestValidateRefusesRateLimitsThatLockAClientOut(t *testing.T) {
	t.Parallel()
	for _, rate := range []string{".nan", ".inf", "-.inf", "1e-12", "1e-7", "1e300"} {
		yaml := fmt.Sprintf(minimalConfig, HashKey("wxt_a"))
		yaml = strings.Replace(yaml, "credentials: [a]}", "credentials: [a], rate_limit: {per_second: "+rate+"}}", 1)
		err := validateYAML(t, yaml)
		require.Error(t, err, rate)
		assert.Contains(t, err.Error(), "clients.one.rate_limit", rate)
	}
	yaml := strings.Replace(fmt.Sprintf(minimalConfig, HashKey("wxt_a")), "credentials: [a]}",
		"credentials: [a], rate_limit: {per_second: 1e-6}}", 1)
	require.NoError(t, validateYAML(t, yaml), "the floor itself is allowed")
}

func TestValidateComparesKeyHashesDecoded(t *testing.T) {
	t.Parallel()
	hash := HashKey("wxt_a")
	upper := "sha256:" + strings.ToUpper(strings.TrimPrefix(hash, "sha256:"))
	yaml := fmt.Sprintf(minimalConfig, hash) + `  two: {key_hash: "` + upper + `", credentials: [a]}` + "\n"
	err := validateYAML(t, yaml)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "clients.two.key_hash: the same as clients.one's")
}

func TestValidateParsesTheRedisURL(t *testing.T) {
	t.Parallel()
	base := fmt.Sprintf(minimalConfig, HashKey("wxt_a"))
	withStore := func(store string, extra ...string) string {
		return strings.Replace(base, "store: {dir: /var/lib/wxtoken}", "store: "+store, 1) + strings.Join(extra, "")
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"not a URL":          {withStore(`{redis: "127.0.0.1:6379"}`), "store.redis: not a Redis URL"},
		"another scheme":     {withStore(`{redis: "http://127.0.0.1:6379"}`), "store.redis: not a Redis URL"},
		"no host":            {withStore(`{redis: "redis:///0"}`), "store.redis: names no host"},
		"sentinel no master": {withStore(`{redis: "redis+sentinel://127.0.0.1:26379"}`), "needs ?master=NAME"},
		"inline password": {withStore(`{redis: "redis://:hunter2-in-the-file@127.0.0.1:6379/0"}`),
			"store.redis: holds a password, a secret in the config file, refused unless allow_inline_secrets"},
		"two passwords": {withStore(`{redis: "redis://:hunter2-in-the-file@127.0.0.1:6379/0", password_env: P}`, "allow_inline_secrets: true\n"),
			"password_env or password_file gives another"},
		"env and file":      {withStore(`{redis: "redis://127.0.0.1:6379/0", password_env: P, password_file: /p}`), "one way only"},
		"password no redis": {withStore(`{dir: /x, password_env: P}`), "need store.redis"},
	} {
		err := validateYAML(t, tc.yaml)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
		assert.NotContains(t, err.Error(), "hunter2", name)
	}
	for _, ok := range []string{
		withStore(`{redis: "redis://127.0.0.1:6379/0", password_env: REDIS_PASSWORD}`),
		withStore(`{redis: "rediss://user@redis.internal:6380/1"}`),
		withStore(`{redis: "unix:///run/redis.sock"}`),
		withStore(`{redis: "redis+sentinel://10.0.0.1:26379/0?master=main&addr=10.0.0.2:26379"}`),
		withStore(`{redis: "redis://:inline@127.0.0.1:6379/0"}`, "allow_inline_secrets: true\n"),
	} {
		require.NoError(t, validateYAML(t, ok), ok)
	}
}

func TestValidateWantsShutdownAboveRequest(t *testing.T) {
	t.Parallel()
	err := validateYAML(t, fmt.Sprintf(minimalConfig, HashKey("wxt_a"))+"timeouts: {request: 20s, write: 30s, shutdown: 10s}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "timeouts.shutdown: must exceed timeouts.request")
}

func TestResolveSecretsRefusesOneWeComSecretTwice(t *testing.T) {
	t.Parallel()
	cfg := Config{Credentials: map[string]CredentialConfig{
		"app-a": {Type: TypeWeCom, CorpID: "ww1", SecretEnv: "A"},
		"app-b": {Type: TypeWeCom, CorpID: "ww1", SecretEnv: "B"},
		"other": {Type: TypeWeCom, CorpID: "ww2", SecretEnv: "B"}, // another corp: another token
	}}
	env := map[string]string{"A": "one-corp-secret-0123", "B": "one-corp-secret-0123"}
	_, err := cfg.ResolveSecrets(func(k string) string { return env[k] })
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), "credentials.app-b: the same corp and secret as credentials.app-a")
	assert.NotContains(t, err.Error(), "other")
	assert.NotContains(t, err.Error(), "one-corp-secret-0123")
}

func TestResolveSecretsReadsTheRedisPassword(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "redis.password")
	require.NoError(t, os.WriteFile(file, []byte("redis-password-0123\n"), 0o600))
	cfg := Config{Store: StoreConfig{Redis: "redis://127.0.0.1:6379", PasswordFile: file}}
	secrets, err := cfg.ResolveSecrets(func(string) string { return "" })
	require.NoError(t, err)
	assert.Equal(t, Secrets{StorePassword: "redis-password-0123"}, secrets)

	cfg.Store = StoreConfig{Redis: "redis://127.0.0.1:6379", PasswordEnv: "REDIS_PASSWORD"}
	_, err = cfg.ResolveSecrets(func(string) string { return "" })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "store.password_env: the environment variable REDIS_PASSWORD is empty or unset")
}
