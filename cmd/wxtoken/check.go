package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/wxtoken/wxtoken"
)

// A token saved by an earlier run hides what changed since: a wrong
// --base-url, a secret reset in the console, a token another process
// superseded. get then exits 0 with a token nothing accepts. check asks
// WeChat about the credentials themselves, and get --fresh about the saved
// token, both without replacing a token other processes use.

// pathCallbackIP is the cheapest call that proves a token works: it reads
// nothing of the account and has a large quota.
const pathCallbackIP = "/cgi-bin/getcallbackip"

// check verifies the appid and AppSecret with stable_token in normal mode,
// which hands back the account's current stable token (or its successor in
// its last 5 minutes) and so replaces no token: not the plain tokens, which
// WeChat keeps apart, nor the stable one. getcallbackip with the saved token
// would prove the token, not the secret. Then it checks the saved token, if
// there is one, with getcallbackip.
func (c *cli) check(args []string) int {
	cfg, _, code, ok := c.parseAccount(commandSpec{name: "check"}, args)
	if !ok {
		return code
	}
	log := newLogger(c.stderr, cfg.verbose)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()

	probeCfg := cfg
	probeCfg.stable, probeCfg.storeKey = true, ""
	probe, err := c.newClient(probeCfg, &openedStore{Store: wxtoken.NewMemoryStore()}, log)
	if err != nil {
		return c.failure(err, cfg.secret)
	}
	defer probe.Close()
	if _, err := obtain(ctx, probe, cfg.timeout); err != nil {
		return c.failure(fmt.Errorf("check: WeChat refused the credentials of %s at %s: %w", shownAppID(cfg.appID), cfg.baseURL, err), cfg.secret)
	}
	fmt.Fprintf(c.stdout, "credentials: ok: %s at %s accepted the appid and AppSecret "+
		"(stable_token in normal mode, which replaces no token)\n", cfg.appID, cfg.baseURL)
	return c.checkSaved(ctx, cfg)
}

// checkSaved reports on the token saved for cfg's account, if any.
func (c *cli) checkSaved(ctx context.Context, cfg accountConfig) int {
	st, err := c.openStore(ctx, cfg)
	if errors.Is(err, errNoPersistence) {
		fmt.Fprintln(c.stdout, "saved token: no store to look in (no cache folder; see --store-dir, --redis)")
		return exitOK
	} else if err != nil {
		return c.failure(err, cfg.secret)
	}
	defer st.close()
	key := cfg.storeKey
	if key == "" {
		key = cfg.appID
		if cfg.stable {
			key += ".stable"
		}
	}
	tok, err := st.Load(ctx, key)
	switch {
	case errors.Is(err, wxtoken.ErrNotFound), st.kind == storeNone:
		fmt.Fprintf(c.stdout, "saved token: none under %s in %s %s\n", key, st.kind, st.where)
		return exitOK
	case err != nil:
		return c.failure(fmt.Errorf("check: reading the saved token: %w", err), cfg.secret)
	case !time.Now().Before(tok.ExpiresAt()):
		fmt.Fprintf(c.stdout, "saved token: expired at %s; the next get fetches a new one\n",
			tok.ExpiresAt().UTC().Format(time.RFC3339))
		return exitOK
	}
	code, err := c.callbackIP(ctx, cfg.baseURL, tok.AccessToken)
	if err != nil {
		return c.failure(fmt.Errorf("check: trying the saved token: %w", err), cfg.secret)
	}
	switch {
	case rejectedToken(code):
		fmt.Fprintf(c.stdout, "saved token: rejected by WeChat (errcode %d); 'wxtoken get --fresh' replaces it\n", code)
		return exitError
	case code != 0:
		fmt.Fprintf(c.stdout, "saved token: could not be tried (getcallbackip answered errcode %d)\n", code)
		return exitError
	}
	fmt.Fprintf(c.stdout, "saved token: works (getcallbackip), %s left, in %s %s\n",
		time.Until(tok.ExpiresAt()).Round(time.Second), st.kind, st.where)
	return exitOK
}

// freshen makes sure access, just read from the Store, works: a token
// fetched in this run is known good; one from the Store is tried with
// getcallbackip and, if WeChat rejects it, replaced through Invalidate (which
// takes a newer token from the Store before fetching one). What it did is
// said on stderr.
func (c *cli) freshen(ctx context.Context, cfg accountConfig, client *wxtoken.Client, access string) (string, error) {
	if s := client.Stats(); s.Fetches > s.FetchFailures {
		fmt.Fprintln(c.stderr, "wxtoken: --fresh: fetched from WeChat in this run")
		return access, nil
	}
	code, err := c.callbackIP(ctx, cfg.baseURL, access)
	if err != nil {
		return "", fmt.Errorf("--fresh: trying the saved token: %w", err)
	}
	switch {
	case code == 0:
		fmt.Fprintln(c.stderr, "wxtoken: --fresh: the saved token works (checked with getcallbackip)")
		return access, nil
	case !rejectedToken(code):
		// Busy, a quota, an IP list: nothing says the token is bad, and
		// replacing it would supersede the token every other process uses.
		return "", fmt.Errorf("--fresh: could not try the saved token: getcallbackip answered errcode %d", code)
	}
	fmt.Fprintf(c.stderr, "wxtoken: --fresh: WeChat rejected the saved token (errcode %d); replacing it\n", code)
	return client.Invalidate(ctx, access)
}

// rejectedToken reports whether a business API's errcode says the token
// itself is bad (40001, 40014, 42001).
func rejectedToken(code int) bool {
	return wxtoken.IsTokenRejected(wxtoken.CheckBody([]byte(fmt.Sprintf(`{"errcode":%d}`, code))))
}

// callbackIP calls getcallbackip with access and returns WeChat's errcode:
// 0 when the token works. Errors never hold the token.
func (c *cli) callbackIP(ctx context.Context, baseURL, access string) (int, error) {
	u := baseURL + pathCallbackIP + "?" + url.Values{"access_token": {access}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, wxtoken.ScrubError(err, access)
	}
	resp, err := c.apiClient().Do(req)
	if err != nil {
		return 0, wxtoken.ScrubError(err, access)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s answered HTTP %d", pathCallbackIP, resp.StatusCode)
	}
	var apiErr *wxtoken.APIError
	if err := wxtoken.CheckResponse(resp); errors.As(err, &apiErr) {
		return apiErr.Code, nil
	}
	return 0, nil
}

// apiClient is the HTTP client for calls with a token: the test's, or one
// with a timeout; neither follows a redirect, which would carry the token
// in the URL to another host.
func (c *cli) apiClient() *http.Client {
	hc := &http.Client{Timeout: 10 * time.Second}
	if c.httpClient != nil {
		copied := *c.httpClient
		hc = &copied
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}
