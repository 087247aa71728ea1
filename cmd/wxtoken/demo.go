package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// defaultDemoHits is how many cached Gets the demo times: enough for a steady
// figure, few enough to take a fraction of a second.
const defaultDemoHits = 10_000_000

// herdSize is the number of concurrent cold callers of the last step.
const herdSize = 1000

// demoTimeout bounds each step, so that a broken build fails instead of hanging.
const demoTimeout = 10 * time.Second

// demo runs the library against wxtest in this process and prints one line per
// behaviour, each with a figure measured now. It exits 1 when a figure is not
// the expected one, so it doubles as a smoke test.
func (c *cli) demo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	verbose := fs.Bool("verbose", false, "")
	if msg, err := parseFlags(fs, args); errors.Is(err, flag.ErrHelp) {
		c.printUsage(c.stdout)
		return exitOK
	} else if err != nil {
		return c.usageError("demo: " + msg)
	}
	if fs.NArg() > 0 {
		return c.usageError("demo takes no arguments")
	}

	started := time.Now()
	dir, err := os.MkdirTemp("", "wxtoken-demo-")
	if err != nil {
		return c.failure(fmt.Errorf("demo: temporary folder: %w", err), "")
	}
	srv := wxtest.NewServer()
	d := &demoRun{
		out:  c.stdout,
		srv:  srv,
		dir:  dir,
		log:  newLogger(c.stderr, *verbose),
		hits: c.demoHits,
	}
	if d.hits <= 0 {
		d.hits = defaultDemoHits
	}
	fmt.Fprintf(c.stdout, "wxtoken demo: the library against a fake WeChat (wxtest) running in this process at %s.\n", srv.URL())
	fmt.Fprintf(c.stdout, "Nothing leaves this machine; token files go to a temporary folder.\n\n")
	err = d.steps()

	srv.Close()
	rmErr := os.RemoveAll(dir)
	if err == nil {
		err = rmErr
	}
	if err != nil {
		return c.failure(fmt.Errorf("demo: %w", err), "")
	}
	fmt.Fprintf(c.stdout, "\n%d token fetches in all, %s. Fake server closed, temporary folder removed.\n",
		srv.TokenCalls(), fmtDuration(time.Since(started)))
	if d.failed > 0 {
		fmt.Fprintf(c.stderr, "wxtoken: demo: %d of the lines above (✗) did not show what they should\n", d.failed)
		return exitError
	}
	return exitOK
}

type demoRun struct {
	out    io.Writer
	srv    *wxtest.Server
	dir    string
	log    *slog.Logger
	hits   int
	failed int
}

// steps runs the five steps in order; each leaves the state the next builds on.
func (d *demoRun) steps() error {
	first, err := d.newClient(d.dir)
	if err != nil {
		return err
	}
	tok, err := d.coldStart(first)
	if err == nil {
		err = d.cachedHit(first, tok)
	}
	first.Close()
	if err != nil {
		return err
	}

	second, err := d.newClient(d.dir)
	if err != nil {
		return err
	}
	defer second.Close()
	if err := d.restart(second, tok); err != nil {
		return err
	}
	if err := d.heal(second, tok); err != nil {
		return err
	}
	return d.coldHerd()
}

// newClient returns a Client keeping its token file in dir, as a service
// would have one, talking to the fake.
func (d *demoRun) newClient(dir string) (*wxtoken.Client, error) {
	store, err := wxtoken.NewFileStore(dir)
	if err != nil {
		return nil, err
	}
	return wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithBaseURL(d.srv.URL()),
		wxtoken.WithStore(store),
		wxtoken.WithLogger(d.log),
		// Every token in the demo is milliseconds old when WeChat rejects it. By
		// default the Client refuses to refetch a token younger than 10 s, so
		// that an API rejecting every token cannot drive a fetch loop; the demo
		// has no such API, and no time to wait.
		wxtoken.WithRejectGuard(0),
	)
}

func (d *demoRun) coldStart(client *wxtoken.Client) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	before := d.srv.TokenCalls()
	start := time.Now()
	tok, err := client.Get(ctx)
	elapsed := time.Since(start)
	if err != nil {
		return "", err
	}
	fetches := d.srv.TokenCalls() - before
	d.line(fetches == 1, "first fetch", count(fetches, "fetch", "fetches"), fmtDuration(elapsed),
		"a cold Get asks WeChat once and saves the token to a file")
	return tok, nil
}

func (d *demoRun) cachedHit(client *wxtoken.Client, want string) error {
	ctx := context.Background()
	before := d.srv.TokenCalls()
	same := true
	start := time.Now()
	for range d.hits {
		tok, err := client.Get(ctx)
		if err != nil {
			return err
		}
		same = same && tok == want
	}
	elapsed := time.Since(start)
	fetches := d.srv.TokenCalls() - before
	perGet := fmt.Sprintf("%.1fns", float64(elapsed.Nanoseconds())/float64(d.hits))
	d.line(fetches == 0 && same, "cached hit", count(fetches, "fetch", "fetches"), perGet,
		fmt.Sprintf("per Get, over %s Gets: one atomic load, no lock, no I/O", thousands(d.hits)))
	return nil
}

func (d *demoRun) restart(client *wxtoken.Client, want string) error {
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	before := d.srv.TokenCalls()
	start := time.Now()
	tok, err := client.Get(ctx)
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	fetches := d.srv.TokenCalls() - before
	d.line(fetches == 0 && tok == want, "restart", count(fetches, "fetch", "fetches"), fmtDuration(elapsed),
		"a new Client on the same folder reuses the saved token")
	return nil
}

// heal has WeChat revoke the token, then sends a customer-service message
// through wxtoken.Transport, which sees errcode 40001, fetches a new token and
// sends the message again.
func (d *demoRun) heal(client *wxtoken.Client, revoked string) error {
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	d.srv.RevokeToken(revoked)
	hc := &http.Client{Transport: &wxtoken.Transport{Client: client}}
	body := `{"touser":"oDemoUserOpenID","msgtype":"text","text":{"content":"hello from the wxtoken demo"}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		d.srv.URL()+wxtest.PathCustomSend, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")

	fetchesBefore, sendsBefore := d.srv.TokenCalls(), d.srv.BusinessCalls()
	start := time.Now()
	code, err := send(hc, req)
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	fetches := d.srv.TokenCalls() - fetchesBefore
	sends := d.srv.BusinessCalls() - sendsBefore
	d.line(fetches == 1 && sends == 2 && code == 0, "40001 healed", count(fetches, "refetch", "refetches"),
		fmtDuration(elapsed), fmt.Sprintf("a message sent with a revoked token got 40001; Transport refetched, resent (%d sends): errcode %d", sends, code))
	return nil
}

// send does req and returns the errcode WeChat answered.
func send(hc *http.Client, req *http.Request) (int, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var answer struct {
		Errcode int `json:"errcode"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return 0, fmt.Errorf("decoding the answer of %s: %w", wxtest.PathCustomSend, err)
	}
	return answer.Errcode, nil
}

// coldHerd starts herdSize Gets at once on a fresh Client with an empty store.
func (d *demoRun) coldHerd() error {
	client, err := d.newClient(filepath.Join(d.dir, "herd"))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()

	tokens := make([]string, herdSize)
	errs := make([]error, herdSize)
	ready, gate := sync.WaitGroup{}, make(chan struct{})
	var done sync.WaitGroup
	for i := range herdSize {
		ready.Add(1)
		done.Go(func() {
			ready.Done()
			<-gate
			tokens[i], errs[i] = client.Get(ctx)
		})
	}
	ready.Wait() // every caller is running, so they all start together
	before := d.srv.TokenCalls()
	start := time.Now()
	close(gate)
	done.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fetches := d.srv.TokenCalls() - before
	same := true
	for _, tok := range tokens {
		same = same && tok == tokens[0]
	}
	d.line(fetches == 1 && same, thousands(herdSize)+" cold callers", count(fetches, "fetch", "fetches"),
		fmtDuration(elapsed), fmt.Sprintf("a fresh Client, empty store: %s concurrent Gets share one fetch", thousands(herdSize)))
	return nil
}

// line prints one result, marked ✓ when ok holds and ✗ (counted) otherwise.
func (d *demoRun) line(ok bool, name, what, figure, note string) {
	mark := "✓"
	if !ok {
		mark = "✗"
		d.failed++
	}
	fmt.Fprintf(d.out, "  %s %-18s  %-9s  %8s   %s\n", mark, name, what, figure, note)
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// thousands formats n with commas, as 10,000,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// fmtDuration prints d with three significant digits or so: 1.52ms, 95.3µs.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
