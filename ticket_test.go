package wxtoken_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
	"github.com/wxtoken/wxtoken/wxtest"
)

// newTicket returns a jsapi ticket Client on tokens, closed when t ends.
func newTicket(t testing.TB, tokens *wxtoken.Client, opts ...wxtoken.Option) *wxtoken.Client {
	t.Helper()
	tc, err := wxtoken.NewTicket(tokens, wxtoken.TicketJSAPI, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tc.Close() })
	return tc
}

// Four replicas on one Redis, each an Official Account Client and its jsapi
// ticket Client, 100 goroutines each asking for the ticket, cold: one token
// fetch, one getticket, one ticket for all.
func TestRedisReplicasShareOneTicket(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	srv := wxtest.NewHandler()
	var tickets []*wxtoken.Client
	for range replicas {
		st := redisstore.New(rs.NewClient(t), redisstore.WithPrefix("tickets:"))
		tickets = append(tickets, newTicket(t, newReplica(t, srv, st)))
	}
	got := getAll(t, tickets, callersPerPeer)
	assert.Equal(t, 1, srv.TokenCalls(), "token fetches")
	assert.Equal(t, 1, srv.TicketCalls("jsapi"), "getticket calls")
	requireAll(t, srv.CurrentTicket(appID, "jsapi"), got)
	assert.True(t, srv.TicketValid(appID, "jsapi", got[0]))
}

// A ticket fetched with a token WeChat has superseded: getticket answers
// 40001, the ticket Client invalidates the token (one refetch) and asks once
// more; 1,000 concurrent ticket callers in that state cause one token fetch.
func TestTicketHealsASupersededToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler()
		store := wxtoken.NewMemoryStore()
		tokens := newReplica(t, srv, store)
		old, err := tokens.Get(context.Background())
		require.NoError(t, err)
		// Another program fetched a token: ours dies after the overlap.
		other := newReplica(t, srv, wxtoken.NewMemoryStore())
		_, err = other.Get(context.Background())
		require.NoError(t, err)
		time.Sleep(wxtest.Overlap + time.Second)

		tc := newTicket(t, tokens)
		var wg sync.WaitGroup
		got := make([]string, 1000)
		for i := range got {
			wg.Go(func() {
				tk, err := tc.Get(context.Background())
				assert.NoError(t, err)
				got[i] = tk
			})
		}
		wg.Wait()
		requireAll(t, srv.CurrentTicket(appID, "jsapi"), got)
		assert.Equal(t, 3, srv.TokenCalls(), "ours, the other program's, and one refetch")
		assert.Equal(t, 2, srv.TicketCalls("jsapi"), "the rejected getticket and its one retry")
		now, err := tokens.Get(context.Background())
		require.NoError(t, err)
		assert.NotEqual(t, old, now, "the token was replaced")
	})
}

// A restarted process on the same FileStore folder gets its token and its
// ticket without calling WeChat.
func TestRestartedProcessReusesTheStoredTicket(t *testing.T) {
	dir := t.TempDir()
	srv := wxtest.NewHandler()
	fs, err := wxtoken.NewFileStore(dir)
	require.NoError(t, err)
	first := newTicket(t, newReplica(t, srv, fs))
	tk, err := first.Get(t.Context())
	require.NoError(t, err)
	wxtoken.WaitIdle(first)
	require.NoError(t, first.Close())
	calls := srv.TokenCalls() + srv.TicketCalls("")

	fs2, err := wxtoken.NewFileStore(dir)
	require.NoError(t, err)
	again := newTicket(t, newReplica(t, srv, fs2))
	got, err := again.Get(t.Context())
	require.NoError(t, err)
	assert.Equal(t, tk, got)
	assert.Equal(t, calls, srv.TokenCalls()+srv.TicketCalls(""), "no upstream call after the restart")
	assert.FileExists(t, dir+"/"+appID+".ticket.jsapi.json")
	names, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, n := range names {
		assert.NotContains(t, n.Name(), secret)
	}
}

// A plain and a stable token Client of one account share the ticket: its key
// is the account's, not the token mode's.
func TestPlainAndStableShareTheTicketKey(t *testing.T) {
	srv := wxtest.NewHandler()
	store := wxtoken.NewMemoryStore()
	plain := newTicket(t, newReplica(t, srv, store))
	stable := newTicket(t, newReplica(t, srv, store, wxtoken.WithStableToken()))
	assert.Equal(t, appID+".ticket.jsapi", plain.Key())
	assert.Equal(t, plain.Key(), stable.Key())
	card, err := wxtoken.NewTicket(newReplica(t, srv, store), wxtoken.TicketWxCard)
	require.NoError(t, err)
	defer card.Close()
	assert.Equal(t, appID+".ticket.wx_card", card.Key())
	_, err = wxtoken.NewTicket(newReplica(t, srv, store), "bogus")
	require.Error(t, err)
}

// A Transport refuses a ticket Client: a ticket sent as access_token would be
// rejected, and the rejection would burn the getticket quota.
func TestTransportRefusesATicketClient(t *testing.T) {
	srv := wxtest.NewHandler()
	tc := newTicket(t, newReplica(t, srv, wxtoken.NewMemoryStore()))
	hc := wxtoken.NewHTTPClient(tc, srv.Transport())
	_, err := hc.Get(tc.BaseURL() + wxtest.PathCallbackIP)
	require.ErrorIs(t, err, wxtoken.ErrNotAccessToken)
	assert.Zero(t, srv.TicketCalls(""), "nothing fetched")
}

// JSSDKConfig signs wx.config for a page with the ticket, ignoring the
// fragment, as SignJSSDK does.
func TestJSSDKConfigSignsWithTheTicket(t *testing.T) {
	srv := wxtest.NewHandler()
	tc := newTicket(t, newReplica(t, srv, wxtoken.NewMemoryStore()))
	cfg, err := tc.JSSDKConfig(t.Context(), "https://shop.example/page?id=1#top")
	require.NoError(t, err)
	ticket := srv.CurrentTicket(appID, "jsapi")
	assert.Equal(t, appID, cfg.AppID)
	assert.Equal(t, wxtoken.SignJSSDK(ticket, cfg.NonceStr, cfg.Timestamp, "https://shop.example/page?id=1"), cfg.Signature)

	card, err := wxtoken.NewTicket(newReplica(t, srv, wxtoken.NewMemoryStore()), wxtoken.TicketWxCard)
	require.NoError(t, err)
	defer card.Close()
	_, err = card.JSSDKConfig(t.Context(), "https://shop.example/")
	require.Error(t, err, "a card ticket does not sign wx.config")
}

// Errors of a ticket fetch hold neither the access_token nor the secret.
func TestTicketErrorsHoldNoToken(t *testing.T) {
	srv := wxtest.NewHandler()
	tokens := newReplica(t, srv, wxtoken.NewMemoryStore())
	access, err := tokens.Get(t.Context())
	require.NoError(t, err)
	srv.Inject(wxtest.FaultErrcode(-1, "busy, your access_token="+access).On(wxtest.PathTicket))
	tc := newTicket(t, tokens)
	_, err = tc.Get(t.Context())
	require.Error(t, err)
	for e := err; e != nil; e = errors.Unwrap(e) {
		assert.NotContains(t, e.Error(), access)
		assert.NotContains(t, e.Error(), secret)
	}
	assert.True(t, wxtoken.IsRetryable(err))
}
