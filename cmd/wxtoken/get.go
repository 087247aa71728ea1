package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
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

type getConfig struct {
	appID, secret string
	stable        bool
	baseURL       string
	storeDir      string
	timeout       time.Duration
	verbose       bool
}

// get prints a valid access_token on stdout. Everything else, logs included,
// goes to stderr, so that $(wxtoken get) is the token.
func (c *cli) get(args []string) int {
	cfg, code, ok := c.parseGet(args)
	if !ok {
		return code
	}
	log := newLogger(c.stderr, cfg.verbose)
	client, err := c.newClient(cfg, log)
	if err != nil {
		return c.failure(err, cfg.secret)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	tok, err := obtain(ctx, client, cfg.timeout)
	if err != nil {
		return c.failure(err, cfg.secret)
	}
	fmt.Fprintln(c.stdout, renewIfShort(ctx, client, tok, log))
	return exitOK
}

// parseGet reads get's flags and environment. ok is false when get must stop
// with code: a usage error, or the help asked for.
func (c *cli) parseGet(args []string) (cfg getConfig, code int, ok bool) {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported below, in one line
	var secretFile string
	var secretStdin bool
	fs.StringVar(&cfg.appID, "appid", "", "")
	fs.StringVar(&cfg.secret, "secret", "", "")
	fs.StringVar(&secretFile, "secret-file", "", "")
	fs.BoolVar(&secretStdin, "secret-stdin", false, "")
	fs.BoolVar(&cfg.stable, "stable", false, "")
	fs.StringVar(&cfg.baseURL, "base-url", wxtoken.DefaultBaseURL, "")
	fs.StringVar(&cfg.storeDir, "store-dir", "", "")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "")
	fs.BoolVar(&cfg.verbose, "verbose", false, "")
	if msg, err := parseFlags(fs, args); errors.Is(err, flag.ErrHelp) {
		c.printUsage(c.stdout)
		return cfg, exitOK, false
	} else if err != nil {
		return cfg, c.usageError("get: " + msg), false
	}
	// Arguments are not echoed: a misplaced one may well be the secret.
	if fs.NArg() > 0 {
		return cfg, c.usageError(fmt.Sprintf("get takes no arguments, got %d; "+
			"give the account with --appid and --secret-file", fs.NArg())), false
	}
	if ways := countSet(fs, "secret", "secret-file", "secret-stdin"); ways > 1 {
		return cfg, c.usageError("get: give the AppSecret one way only: " +
			"--secret-file, --secret-stdin or --secret"), false
	}
	var err error
	switch {
	case secretFile != "":
		cfg.secret, err = readSecretFile(secretFile)
	case secretStdin:
		cfg.secret, err = readSecret(c.stdin, "standard input")
	}
	if err != nil {
		return cfg, c.usageError("get: " + err.Error()), false
	}
	if cfg.appID == "" {
		cfg.appID = strings.TrimSpace(c.getenv("WECHAT_APPID"))
	}
	if cfg.secret == "" {
		cfg.secret = strings.TrimSpace(c.getenv("WECHAT_APPSECRET"))
	}
	switch {
	case cfg.appID == "":
		return cfg, c.usageError("get: no appid: set WECHAT_APPID or pass --appid"), false
	case cfg.secret == "":
		return cfg, c.usageError("get: no AppSecret: pass --secret-file or --secret-stdin, " +
			"or set WECHAT_APPSECRET"), false
	case cfg.timeout <= 0:
		return cfg, c.usageError("get: --timeout must be positive"), false
	}
	return cfg, exitOK, true
}

// countSet counts how many of the flags named were given on the command line.
func countSet(fs *flag.FlagSet, names ...string) int {
	n := 0
	fs.Visit(func(f *flag.Flag) {
		for _, name := range names {
			if f.Name == name {
				n++
			}
		}
	})
	return n
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

func (c *cli) newClient(cfg getConfig, log *slog.Logger) (*wxtoken.Client, error) {
	opts := []wxtoken.Option{
		wxtoken.WithBaseURL(cfg.baseURL),
		wxtoken.WithLogger(log),
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
	if cfg.storeDir != "" {
		store, err := wxtoken.NewFileStore(cfg.storeDir)
		if err != nil {
			return nil, err
		}
		opts = append(opts, wxtoken.WithStore(store))
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
			return "the account's daily quota of token requests is spent; let all runs share one --store-dir so they reuse the saved token"
		}
		return ""
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
