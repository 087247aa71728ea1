package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/redisstore"
)

// accountConfig is what every command that talks to an account is given:
// the account, where its token is kept, and how long to try.
type accountConfig struct {
	appID, secret string
	stable        bool
	baseURL       string
	storeDir      string
	storeKey      string
	redisURL      string
	redisPrefix   string
	noStore       bool
	timeout       time.Duration
	verbose       bool
	secretStdin   bool // standard input held the secret, so it cannot confirm anything
	fresh         bool // get --fresh: the saved token is tried, and replaced if rejected
}

// commandSpec says what one command takes beyond the account's flags.
type commandSpec struct {
	name  string
	flags func(fs *flag.FlagSet) // the command's own flags; nil for none
	args  bool                   // positional arguments are allowed
}

// parseAccount reads a command's flags and environment. ok is false when the
// command must stop with code: a usage error, or the help asked for.
func (c *cli) parseAccount(spec commandSpec, args []string) (cfg accountConfig, rest []string, code int, ok bool) {
	fs := flag.NewFlagSet(spec.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported below, in one line
	var secretFile string
	fs.StringVar(&cfg.appID, "appid", "", "")
	fs.StringVar(&cfg.secret, "secret", "", "")
	fs.StringVar(&secretFile, "secret-file", "", "")
	fs.BoolVar(&cfg.secretStdin, "secret-stdin", false, "")
	fs.BoolVar(&cfg.stable, "stable", false, "")
	fs.StringVar(&cfg.baseURL, "base-url", wxtoken.DefaultBaseURL, "")
	fs.StringVar(&cfg.storeDir, "store-dir", "", "")
	fs.StringVar(&cfg.storeKey, "store-key", "", "")
	fs.StringVar(&cfg.redisURL, "redis", "", "")
	fs.StringVar(&cfg.redisPrefix, "redis-prefix", redisstore.DefaultPrefix, "")
	fs.BoolVar(&cfg.noStore, "no-store", false, "")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "")
	fs.BoolVar(&cfg.verbose, "verbose", false, "")
	if spec.flags != nil {
		spec.flags(fs)
	}
	fail := func(msg string) (accountConfig, []string, int, bool) {
		return cfg, nil, c.usageError(msg), false
	}
	if msg, err := parseFlags(fs, args); errors.Is(err, flag.ErrHelp) {
		c.printUsage(c.stdout)
		return cfg, nil, exitOK, false
	} else if err != nil {
		return fail(spec.name + ": " + msg)
	}
	// Arguments are not echoed: a misplaced one may well be the secret.
	if fs.NArg() > 0 && !spec.args {
		return fail(fmt.Sprintf("%s takes no arguments, got %d; "+
			"give the account with --appid and --secret-file", spec.name, fs.NArg()))
	}
	if ways := countSet(fs, "secret", "secret-file", "secret-stdin"); ways > 1 {
		return fail(spec.name + ": give the AppSecret one way only: " +
			"--secret-file, --secret-stdin or --secret")
	}
	if countSet(fs, "store-dir", "redis", "no-store") > 1 {
		return fail(spec.name + ": give one of --store-dir, --redis and --no-store")
	}
	var err error
	switch {
	case secretFile != "":
		cfg.secret, err = readSecretFile(secretFile)
	case cfg.secretStdin:
		cfg.secret, err = readSecret(c.stdin, "standard input")
	}
	if err != nil {
		return fail(spec.name + ": " + err.Error())
	}
	if cfg.appID == "" {
		cfg.appID = strings.TrimSpace(c.getenv("WECHAT_APPID"))
	}
	if cfg.secret == "" {
		cfg.secret = strings.TrimSpace(c.getenv("WECHAT_APPSECRET"))
	}
	switch {
	case cfg.appID == "":
		return fail(spec.name + ": no appid: set WECHAT_APPID or pass --appid")
	case cfg.secret == "":
		return fail(spec.name + ": no AppSecret: pass --secret-file or --secret-stdin, " +
			"or set WECHAT_APPSECRET")
	case cfg.timeout <= 0:
		return fail(spec.name + ": --timeout must be positive")
	}
	return cfg, fs.Args(), exitOK, true
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
