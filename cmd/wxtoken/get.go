package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/wxtoken/wxtoken"
)

// minRemaining is the least lifetime a printed token should have left: enough
// for the commands the caller runs with it. It stays below the 5 minutes in
// which stable_token starts handing out a new token, so that replacing a stable
// token this close to expiry does get a new one.
const minRemaining = 4 * time.Minute

// Retries of failures WeChat may get over (busy, quota per minute, network):
// the library leaves them to callers that have no token at all, like get.
const (
	firstRetryDelay = time.Second
	maxRetryDelay   = 8 * time.Second
)

// get prints a valid access_token on stdout (or, with --json, the token with
// its expiry and where it came from). Everything else, logs included, goes to
// stderr, so that $(wxtoken get) is the token.
func (c *cli) get(args []string) int {
	var fresh, asJSON bool
	cfg, _, code, ok := c.parseAccount(commandSpec{name: "get", flags: func(fs *flag.FlagSet) {
		fs.BoolVar(&fresh, "fresh", false, "")
		fs.BoolVar(&asJSON, "json", false, "")
	}}, args)
	if !ok {
		return code
	}
	cfg.fresh = fresh
	log := newLogger(c.stderr, cfg.verbose)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	client, st, err := c.openAccount(ctx, cfg, log)
	if err != nil {
		return c.failure(err, cfg.secret)
	}
	defer st.close()
	defer client.Close()

	tok, err := obtain(ctx, client, cfg.timeout)
	if err != nil {
		return c.failure(err, cfg.secret)
	}
	access := renewIfShort(ctx, client, tok, log)
	if fresh {
		if access, err = c.freshen(ctx, cfg, client, access); err != nil {
			return c.failure(err, cfg.secret)
		}
	}
	if !asJSON {
		fmt.Fprintln(c.stdout, access)
		return exitOK
	}
	return c.printJSON(ctx, client, st, access)
}

// openAccount opens the Store cfg names and a Client on it, and makes sure
// the Store can be read before anything may fetch.
func (c *cli) openAccount(ctx context.Context, cfg accountConfig, log *slog.Logger) (*wxtoken.Client, *openedStore, error) {
	st, err := c.openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	client, err := c.newClient(cfg, st, log)
	if err == nil {
		if err = checkReadable(ctx, st, client.Key()); err != nil {
			client.Close()
		}
	}
	if err != nil {
		st.close()
		return nil, nil, err
	}
	return client, st, nil
}

// tokenJSON is what get --json prints.
type tokenJSON struct {
	AccessToken string    `json:"access_token"`
	ExpiresAt   time.Time `json:"expires_at"`
	ExpiresIn   int64     `json:"expires_in"` // seconds left now
	Source      string    `json:"source"`     // cache (a file), store (Redis) or wechat (fetched now)
}

// printJSON prints access with its expiry and where it came from.
func (c *cli) printJSON(ctx context.Context, client *wxtoken.Client, st *openedStore, access string) int {
	tok, err := client.Token(ctx) // the cached token: no I/O
	if err != nil {
		return c.failure(err, "")
	}
	if tok.AccessToken != access {
		return c.failure(errors.New("get: the token changed while printing it; run again"), "")
	}
	out := tokenJSON{AccessToken: tok.AccessToken, ExpiresAt: tok.ExpiresAt().UTC().Truncate(time.Second),
		ExpiresIn: int64(time.Until(tok.ExpiresAt()) / time.Second), Source: sourceOf(client, st)}
	b, err := json.Marshal(out)
	if err != nil {
		return c.failure(err, "")
	}
	fmt.Fprintln(c.stdout, string(b))
	return exitOK
}

// sourceOf says where the token client holds came from in this run.
func sourceOf(client *wxtoken.Client, st *openedStore) string {
	s := client.Stats()
	switch {
	case s.Fetches > s.FetchFailures:
		return "wechat"
	case st.kind == storeRedis:
		return "store"
	}
	return "cache"
}

// maxSecretLen bounds what is read as a secret: an AppSecret has 32
// characters, so a large input is the wrong file, not a secret.
const maxSecretLen = 1024

// readSecretFile reads the AppSecret from the file at path. Errors name
// neither the path nor the content: a misplaced secret could be either.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return "", fmt.Errorf("--secret-file: cannot open the file: %w", err)
	}
	defer f.Close()
	return readSecret(f, "the --secret-file file")
}

// readSecret reads an AppSecret from r, named from in errors: the whole of
// it, without surrounding white space (such as the final newline).
func readSecret(r io.Reader, from string) (string, error) {
	if r == nil {
		return "", fmt.Errorf("no %s to read the AppSecret from", from)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSecretLen+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("reading the AppSecret from %s: %w", from, err)
	case len(b) > maxSecretLen:
		return "", fmt.Errorf("%s holds more than %d bytes: not an AppSecret", from, maxSecretLen)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("%s is empty", from)
	}
	return secret, nil
}

func (c *cli) newClient(cfg accountConfig, st *openedStore, log *slog.Logger) (*wxtoken.Client, error) {
	opts := []wxtoken.Option{
		wxtoken.WithBaseURL(cfg.baseURL),
		wxtoken.WithLogger(log),
		wxtoken.WithStore(st.Store),
		// Nothing runs between two invocations, so there is nothing to schedule.
		wxtoken.WithBackgroundRefresh(false),
		// A renewal started in the background by Get would be cancelled by Close
		// as soon as the token is printed, and could leave a token issued by
		// WeChat but never saved. renewIfShort renews in the foreground instead.
		wxtoken.WithRefreshBefore(0),
	}
	if cfg.stable {
		opts = append(opts, wxtoken.WithStableToken())
	}
	if cfg.storeKey != "" {
		opts = append(opts, wxtoken.WithStoreKey(cfg.storeKey))
	}
	if cfg.fresh {
		// The reject guard stops an API that rejects every token from driving
		// a fetch loop. --fresh is one rejection, by getcallbackip, which
		// rejects only a dead token: the saved token is replaced however young.
		opts = append(opts, wxtoken.WithRejectGuard(0))
	}
	if c.httpClient != nil {
		opts = append(opts, wxtoken.WithHTTPClient(c.httpClient))
	}
	client, err := wxtoken.New(cfg.appID, cfg.secret, opts...)
	if err != nil {
		return nil, usageErr{err}
	}
	return client, nil
}

// obtain gets a token, trying again while the failure is one WeChat may get
// over, until ctx ends. Then the last failure is reported, which says more
// than the deadline does.
func obtain(ctx context.Context, client *wxtoken.Client, timeout time.Duration) (wxtoken.Token, error) {
	var last error
	for delay := firstRetryDelay; ; delay = min(2*delay, maxRetryDelay) {
		tok, err := client.Token(ctx)
		switch {
		case err == nil:
			return tok, nil
		case ctx.Err() != nil && last != nil:
			return tok, fmt.Errorf("wxtoken: no token within %s (--timeout); last failure: %w", timeout, last)
		case ctx.Err() != nil:
			return tok, fmt.Errorf("wxtoken: no token within %s (--timeout): %w", timeout, err)
		case !wxtoken.IsRetryable(err):
			return tok, err
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}

// renewIfShort returns tok's access_token, or a new one when tok has less than
// minRemaining left (or less than half its lifetime, for short-lived tokens).
// If renewing fails, tok is still valid and printed all the same.
func renewIfShort(ctx context.Context, client *wxtoken.Client, tok wxtoken.Token, log *slog.Logger) string {
	left := time.Until(tok.ExpiresAt())
	if left >= min(minRemaining, time.Duration(tok.ExpiresIn)*time.Second/2) {
		return tok.AccessToken
	}
	// Invalidate asks for a token other than tok: the store's, if another run
	// saved a newer one, or else one fetch.
	fresh, err := client.Invalidate(ctx, tok.AccessToken)
	if err != nil {
		log.Warn("wxtoken: renewing a token close to expiry failed; printing it anyway",
			"left", left.Round(time.Second), "err", err)
		return tok.AccessToken
	}
	return fresh
}

// usageErr marks an error in what the user gave (an appid of the wrong shape,
// a base URL that is not one): the exit status is then exitUsage.
type usageErr struct{ err error }

func (e usageErr) Error() string { return e.err.Error() }
func (e usageErr) Unwrap() error { return e.err }

// failure reports err on stderr in one line, with a hint when one helps, and
// returns the exit status. The secret is masked in case anything quoted it.
// appIDShape is what an Official Account's or Mini Program's appid looks like.
var appIDShape = regexp.MustCompile(`^wx[0-9a-f]{16}$`)

// shownAppID returns appID for printing when it has an appid's shape, and a
// stand-in otherwise: a secret typed after --appid must not be echoed.
func shownAppID(appID string) string {
	if appIDShape.MatchString(appID) {
		return appID
	}
	return "the given appid"
}

func (c *cli) failure(err error, secret string) int {
	msg := err.Error()
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "[secret]")
		msg = strings.ReplaceAll(msg, url.QueryEscape(secret), "[secret]")
	}
	if !strings.HasPrefix(msg, "wxtoken: ") {
		msg = "wxtoken: " + msg
	}
	fmt.Fprintln(c.stderr, msg)
	if h := hint(err); h != "" {
		fmt.Fprintln(c.stderr, "hint: "+h)
	}
	if errors.As(err, new(usageErr)) {
		return exitUsage
	}
	return exitError
}

// hint says what to do about the failures people commonly meet.
func hint(err error) string {
	var apiErr *wxtoken.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.Code {
		case wxtoken.CodeInvalidCredential, wxtoken.CodeInvalidSecret:
			return "check the AppSecret (--secret-file, WECHAT_APPSECRET); resetting it in the WeChat console replaces the old one"
		case wxtoken.CodeInvalidAppID:
			return `check the appid (WECHAT_APPID): it starts with "wx" and belongs to an Official Account`
		case wxtoken.CodeIPNotWhitelisted:
			return "add this machine's IP address (the one in the message) to the account's IP whitelist " +
				"in the WeChat console, under Settings and Development > Basic Configuration"
		case wxtoken.CodeSecretFrozen:
			return "the AppSecret is frozen: unfreeze or reset it in the WeChat console"
		case wxtoken.CodeDailyQuota:
			return "the account's daily quota is spent until midnight Beijing time; 'wxtoken clear-quota' resets it now " +
				"(10 a month); let all runs share one --store-dir or --redis so they reuse the saved token"
		case wxtoken.CodeClearQuotaSpent:
			return "this month's 10 quota resets are spent; the daily quotas reset at midnight Beijing time"
		}
		return ""
	}
	if errors.Is(err, errNoPersistence) {
		return "give --store-dir DIR (the folder the account's services use), --redis URL (the fleet's Redis), " +
			"or --no-store to fetch anyway: a token fetched and not kept supersedes the one other processes use"
	}
	var statusErr *wxtoken.StatusError
	var netErr net.Error
	switch {
	case errors.As(err, &statusErr):
		return "WeChat answers its own errors with HTTP 200: check --base-url and any proxy in between"
	case errors.As(err, &netErr):
		return "check the network, and --base-url"
	}
	return ""
}

// newLogger returns the library's logger: warnings only, unless verbose.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	if verbose {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		// A one-shot command's lines need no timestamp.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(quietHandler{h})
}

// quietHandler drops the library's warnings about permanent failures (a wrong
// secret, an IP not whitelisted): get reports those itself, as its last line,
// and saying it twice would bury the hint. Warnings about retryable failures
// stay: they show what a slow run is waiting for.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	permanent := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && wxtoken.IsPermanent(err) {
			permanent = true
			return false
		}
		return true
	})
	if permanent {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(attrs)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
