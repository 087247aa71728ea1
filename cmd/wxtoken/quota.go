package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wxtoken/wxtoken"
)

// quotaJSON is one line of quota --json.
type quotaJSON struct {
	CGIPath string `json:"cgi_path"`
	wxtoken.Quota
	ResetsAt time.Time `json:"resets_at"`
}

// quota prints the daily quota of the APIs named (the token endpoint by
// default), read with the account's token as get would obtain it.
func (c *cli) quota(args []string) int {
	var asJSON bool
	cfg, paths, code, ok := c.parseAccount(commandSpec{name: "quota", args: true, flags: func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "")
	}}, args)
	if !ok {
		return code
	}
	for _, p := range paths {
		// Only a path is repeated: a misplaced argument may be the secret.
		if !strings.HasPrefix(p, "/") || len(p) > 128 {
			return c.usageError("quota: an argument is not an API path such as /cgi-bin/token (not repeated here)")
		}
	}
	if len(paths) == 0 {
		paths = []string{"/cgi-bin/token"}
		if cfg.stable {
			paths[0] = "/cgi-bin/stable_token"
		}
	}
	log := newLogger(c.stderr, cfg.verbose)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	client, st, err := c.openAccount(ctx, cfg, log)
	if err != nil {
		return c.failure(err, cfg.secret)
	}
	defer st.close()
	defer client.Close()
	reset := wxtoken.DailyQuotaReset(time.Now())
	for _, p := range paths {
		q, err := client.Quota(ctx, p)
		if err != nil {
			return c.failure(fmt.Errorf("quota of %s: %w", p, err), cfg.secret)
		}
		if asJSON {
			b, _ := json.Marshal(quotaJSON{CGIPath: p, Quota: q, ResetsAt: reset.UTC()})
			fmt.Fprintln(c.stdout, string(b))
			continue
		}
		fmt.Fprintf(c.stdout, "%s: %d of %d used today, %d left; resets %s (midnight Beijing time)\n",
			p, q.Used, q.DailyLimit, q.Remain, reset.UTC().Format(time.RFC3339))
	}
	return exitOK
}

// clearQuota resets the account's daily quotas with clear_quota/v2, which
// needs the AppSecret and no token: it works after 45009. WeChat allows ten
// resets a month, so it asks first unless --yes is given.
func (c *cli) clearQuota(args []string) int {
	var yes bool
	cfg, _, code, ok := c.parseAccount(commandSpec{name: "clear-quota", flags: func(fs *flag.FlagSet) {
		fs.BoolVar(&yes, "yes", false, "")
	}}, args)
	if !ok {
		return code
	}
	if !yes {
		if cfg.secretStdin {
			return c.usageError("clear-quota: standard input holds the AppSecret, so it cannot confirm: pass --yes")
		}
		fmt.Fprintf(c.stderr, "This resets every daily API quota of %s. WeChat allows 10 resets a month "+
			"(clear_quota and clear_quota/v2 together).\nType yes to go on: ", shownAppID(cfg.appID))
		if !confirmed(c.stdin) {
			fmt.Fprintln(c.stderr, "\nwxtoken: clear-quota: not confirmed; nothing was sent")
			return exitError
		}
	}
	log := newLogger(c.stderr, cfg.verbose)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	// clear_quota/v2 needs no token: the Client keeps nothing.
	client, err := c.newClient(cfg, &openedStore{Store: wxtoken.NewMemoryStore()}, log)
	if err != nil {
		return c.failure(err, cfg.secret)
	}
	defer client.Close()
	if err := client.ClearQuotaV2(ctx); err != nil {
		var apiErr *wxtoken.APIError
		if errors.As(err, &apiErr) && apiErr.Code == wxtoken.CodeClearQuotaSpent {
			err = fmt.Errorf("clear-quota: %w (resets %s)", err,
				wxtoken.DailyQuotaReset(time.Now()).UTC().Format(time.RFC3339))
		}
		return c.failure(err, cfg.secret)
	}
	fmt.Fprintf(c.stdout, "cleared: the daily quotas of %s are reset (clear_quota/v2; 10 resets a month)\n", shownAppID(cfg.appID))
	return exitOK
}

// confirmed reads one line from r and reports whether it says yes.
func confirmed(r io.Reader) bool {
	if r == nil {
		return false
	}
	line, err := bufio.NewReader(io.LimitReader(r, 64)).ReadString('\n')
	if err != nil && err != io.EOF {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(line), "yes")
}
