package wxtoken_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/wxtoken/wxtoken"
)

// accountSource issues a token per call and says that a record whose token is
// "-cancelled-" revokes the account's credential.
type accountSource struct{ fetches int }

func (s *accountSource) Fetch(ctx context.Context, req wxtoken.FetchRequest) (wxtoken.Token, error) {
	s.fetches++
	return wxtoken.Token{AccessToken: fmt.Sprintf("token-%d", s.fetches), ExpiresIn: 7200, CreateTime: time.Now()}, nil
}

var errCancelled = fmt.Errorf("%w: the account cancelled", wxtoken.ErrRevoked)

func (s *accountSource) CheckStored(tok wxtoken.Token) error {
	if tok.AccessToken == "-cancelled-" {
		return errCancelled
	}
	return nil
}

// A Source's CheckStored lets a record in the Store revoke the credential:
// a Client that reads it (at its store sync, from a change feed, or, as
// here, on a cold start) fails with the Source's error, without fetching.
func ExampleErrRevoked() {
	ctx := context.Background()
	store := wxtoken.NewMemoryStore()
	// Some process learns that the account is gone and says so in the Store.
	_ = store.Save(ctx, "account", wxtoken.Token{AccessToken: "-cancelled-", ExpiresIn: 60, CreateTime: time.Now()})

	src := &accountSource{}
	c, _ := wxtoken.NewClient("account", src, wxtoken.WithStore(store))
	defer c.Close()
	_, err := c.Get(ctx)
	fmt.Println(errors.Is(err, wxtoken.ErrRevoked), errors.Is(err, errCancelled), src.fetches)
	// A newer valid record in the Store ends the revocation.
	// Output: true true 0
}

// Keep saves a record obtained outside the Client's Source, such as an
// authorization code's exchange, and serves it.
func ExampleClient_Keep() {
	ctx := context.Background()
	store := wxtoken.NewMemoryStore()
	c, _ := wxtoken.NewClient("authorizer", &accountSource{}, wxtoken.WithStore(store))
	defer c.Close()
	rec := wxtoken.Token{AccessToken: "from-the-code", ExpiresIn: 7200, CreateTime: time.Now(), Refresh: "refresh-1"}
	if err := c.Keep(ctx, rec); err != nil {
		fmt.Println("not saved yet; retried in the background:", err)
	}
	tok, _ := c.Get(ctx)
	saved, _ := store.Load(ctx, "authorizer")
	fmt.Println(tok, saved.Refresh)
	// Output: from-the-code refresh-1
}

// pushedInput is a Source whose input (a ticket WeChat pushes) arrives by
// itself; arrived says it came in this process since the last Fetch.
type pushedInput struct{ ticket, arrived atomic.Bool }

func (s *pushedInput) Fetch(ctx context.Context, req wxtoken.FetchRequest) (wxtoken.Token, error) {
	s.arrived.Store(false)
	if !s.ticket.Load() {
		return wxtoken.Token{}, fmt.Errorf("no ticket pushed yet: %w", wxtoken.ErrAwaitingInput)
	}
	return wxtoken.Token{AccessToken: "made-with-the-ticket", ExpiresIn: 7200, CreateTime: time.Now()}, nil
}

func (s *pushedInput) InputArrived() bool { return s.arrived.Load() }

// A Source waiting for a pushed input fails with ErrAwaitingInput; once the
// input arrives, the next Get fetches at once, without the failure backoff.
func ExampleErrAwaitingInput() {
	ctx := context.Background()
	src := &pushedInput{}
	c, _ := wxtoken.NewClient("component", src, wxtoken.WithStore(wxtoken.NewMemoryStore()))
	defer c.Close()
	_, err := c.Get(ctx)
	fmt.Println(errors.Is(err, wxtoken.ErrAwaitingInput), wxtoken.IsRetryable(err))

	src.ticket.Store(true) // the push handler saved the ticket
	src.arrived.Store(true)
	tok, err := c.Get(ctx)
	fmt.Println(tok, err)
	// Output:
	// true true
	// made-with-the-ticket <nil>
}
