package wxtoken_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// quotaClient returns a Client on srv with a memory store, closed when t ends.
func quotaClient(t *testing.T, srv *wxtest.Server, opts ...wxtoken.Option) *wxtoken.Client {
	t.Helper()
	c, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret, append([]wxtoken.Option{
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(wxtoken.NewMemoryStore()),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)),
	}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func quotaServer(t *testing.T, opts ...wxtest.Option) *wxtest.Server {
	t.Helper()
	srv := wxtest.NewServer(append([]wxtest.Option{wxtest.WithoutRID()}, opts...)...)
	t.Cleanup(srv.Close)
	return srv
}

func TestQuotaReportsTheTokenEndpointsUse(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	c := quotaClient(t, srv)
	q, err := c.Quota(context.Background(), wxtest.PathToken)
	require.NoError(t, err)
	assert.Equal(t, wxtoken.Quota{DailyLimit: wxtest.DefaultDailyQuota, Used: 1, Remain: wxtest.DefaultDailyQuota - 1}, q)
	assert.Equal(t, 1, srv.TokenCalls())
	assert.Equal(t, 1, srv.QuotaCalls())
}

func TestQuotaHealsARejectedTokenOnce(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	c := quotaClient(t, srv, wxtoken.WithRejectGuard(0))
	first, err := c.Get(context.Background())
	require.NoError(t, err)
	srv.RevokeToken(first)
	q, err := c.Quota(context.Background(), wxtest.PathToken)
	require.NoError(t, err)
	assert.Equal(t, 2, q.Used, "the revoked token was replaced, and the quota read with the new one")
	assert.Equal(t, 2, srv.QuotaCalls())
	assert.Equal(t, 2, srv.TokenCalls())
}

func TestQuotaUnknownPathIsABusinessError(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	c := quotaClient(t, srv)
	_, err := c.Quota(context.Background(), "/cgi-bin/nothing")
	var apiErr *wxtoken.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, wxtest.CodeCGIPathNotFound, apiErr.Code)
	assert.Equal(t, wxtoken.KindBusiness, apiErr.Kind)
	assert.Equal(t, wxtoken.PathQuotaGet, apiErr.Endpoint)
	assertNoSecretInChain(t, err, srv.CurrentToken(wxtest.DefaultAppID))
}

func TestClearQuotaV2AfterTheDailyQuota(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t, wxtest.WithDailyQuota(1))
	srv.Inject(wxtest.FaultErrcode(wxtoken.CodeDailyQuota, "").On(wxtest.PathToken))
	c := quotaClient(t, srv)
	_, err := c.Get(context.Background())
	require.True(t, wxtoken.IsQuota(err), "%v", err)

	require.NoError(t, c.ClearQuotaV2(context.Background()))
	assert.Equal(t, wxtest.DefaultClearQuotaMonthly-1, srv.ClearQuotaLeft(wxtest.DefaultAppID))
	assert.Equal(t, 1, srv.TokenCalls(), "clear_quota/v2 needs no token")
}

func TestClearQuotaUsesTheToken(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	c := quotaClient(t, srv)
	require.NoError(t, c.ClearQuota(context.Background()))
	assert.Equal(t, wxtest.DefaultClearQuotaMonthly-1, srv.ClearQuotaLeft(wxtest.DefaultAppID))
	assert.Equal(t, 1, srv.TokenCalls())
}

func TestClearQuotaSpentIs48006(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	c := quotaClient(t, srv)
	for range wxtest.DefaultClearQuotaMonthly {
		require.NoError(t, c.ClearQuotaV2(context.Background()))
	}
	err := c.ClearQuotaV2(context.Background())
	var apiErr *wxtoken.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, wxtoken.CodeClearQuotaSpent, apiErr.Code)
	assert.True(t, wxtoken.IsPermanent(err))
	assert.Equal(t, "wxtoken: errcode 48006: forbid to clear quota because of reaching the limit", err.Error())
}

func TestClearQuotaV2WrongSecretHoldsNoSecret(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	wrong := "0123456789abcdef0123456789abcdef"
	c, err := wxtoken.New(wxtest.DefaultAppID, wrong, wxtoken.WithBaseURL(srv.URL()),
		wxtoken.WithStore(wxtoken.NewMemoryStore()))
	require.NoError(t, err)
	defer c.Close()
	err = c.ClearQuotaV2(context.Background())
	var apiErr *wxtoken.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, wxtest.CodeInvalidCredential, apiErr.Code)
	assertNoSecretInChain(t, err, wrong)

	// A network failure quotes the URL, secret included, unless scrubbed.
	srv.Close()
	err = c.ClearQuotaV2(context.Background())
	require.Error(t, err)
	assertNoSecretInChain(t, err, wrong)
}

func TestClearQuotaV2RefusesOtherSources(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	c := quotaClient(t, srv)
	ticket, err := wxtoken.NewTicket(c, wxtoken.TicketJSAPI)
	require.NoError(t, err)
	defer ticket.Close()
	assert.ErrorIs(t, ticket.ClearQuotaV2(context.Background()), wxtoken.ErrNoSecret)
	_, err = ticket.Quota(context.Background(), wxtest.PathToken)
	assert.ErrorIs(t, err, wxtoken.ErrNotAccessToken)
	assert.Zero(t, srv.QuotaCalls())
}

func TestDailyQuotaResetIsBeijingMidnight(t *testing.T) {
	t.Parallel()
	cst := time.FixedZone("CST", 8*3600)
	for in, want := range map[time.Time]time.Time{
		time.Date(2026, 3, 1, 15, 59, 59, 0, time.UTC): time.Date(2026, 3, 2, 0, 0, 0, 0, cst),
		time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC):   time.Date(2026, 3, 3, 0, 0, 0, 0, cst),
		time.Date(2026, 12, 31, 20, 0, 0, 0, time.UTC): time.Date(2027, 1, 2, 0, 0, 0, 0, cst),
	} {
		got := wxtoken.DailyQuotaReset(in)
		assert.True(t, want.Equal(got), "%v: got %v, want %v", in, got, want)
	}
}

// A fetch answered 45009 logs a warning naming the reset, and tells the
// Observer with an EventQuotaSpent whose Until is that reset.
func TestDailyQuotaSpentIsLoggedAndObserved(t *testing.T) {
	t.Parallel()
	srv := quotaServer(t)
	srv.Inject(wxtest.FaultErrcode(wxtoken.CodeDailyQuota, "").On(wxtest.PathToken))
	var logs bytes.Buffer
	var mu sync.Mutex // events come from the caller's and the fetch's goroutines
	var spent []wxtoken.Event
	obs := wxtoken.ObserverFunc(func(e wxtoken.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == wxtoken.EventQuotaSpent {
			spent = append(spent, e)
		}
	})
	c := quotaClient(t, srv, wxtoken.WithObserver(obs), wxtoken.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	_, err := c.Get(context.Background())
	require.Error(t, err)
	require.NoError(t, c.Close()) // waits for the fetch's goroutine, which logged
	reset := wxtoken.DailyQuotaReset(time.Now())
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "daily quota of the token endpoint is spent")
	assert.Contains(t, logs.String(), "resets_at="+reset.Format(time.RFC3339))
	assert.NotContains(t, logs.String(), wxtest.DefaultSecret)
	require.Len(t, spent, 1)
	assert.True(t, reset.Equal(spent[0].Until))
	assert.Equal(t, "quota_spent", spent[0].Kind.String())
}

// assertNoSecretInChain fails if any level of err's chain quotes secret.
func assertNoSecretInChain(t *testing.T, err error, secret string) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		assert.NotContains(t, e.Error(), secret)
		assert.NotContains(t, fmt.Sprintf("%#v", e), secret)
	}
}
