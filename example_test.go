package wxtoken_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// The examples run against wxtest, an in-process fake of WeChat; in production,
// leave out WithBaseURL.

func Example() {
	srv := wxtest.NewServer()
	defer srv.Close()

	client, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithBaseURL(srv.URL()),
		wxtoken.WithStore(wxtoken.NewMemoryStore()),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx := context.Background()
	for range 3 {
		tok, err := client.Get(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(tok == srv.CurrentToken(wxtest.DefaultAppID))
	}
	fmt.Println("fetches:", srv.TokenCalls())
	// Output:
	// true
	// true
	// true
	// fetches: 1
}

// A FileStore keeps the token across restarts: the second Client finds the
// token the first one saved and does not call WeChat.
func ExampleNewFileStore() {
	srv := wxtest.NewServer()
	defer srv.Close()
	dir, err := os.MkdirTemp("", "wxtoken-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	for run := 1; run <= 2; run++ {
		store, err := wxtoken.NewFileStore(dir)
		if err != nil {
			log.Fatal(err)
		}
		client, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
			wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(store),
			wxtoken.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			log.Fatal(err)
		}
		if _, err := client.Get(context.Background()); err != nil {
			log.Fatal(err)
		}
		client.Close()
		fmt.Printf("run %d: fetches so far %d\n", run, srv.TokenCalls())
	}
	// Output:
	// run 1: fetches so far 1
	// run 2: fetches so far 1
}

// Errors say what WeChat said, and whether trying again can help.
func ExampleAPIError() {
	srv := wxtest.NewServer(wxtest.WithoutRID())
	defer srv.Close()
	client, err := wxtoken.New(wxtest.DefaultAppID, "not-the-secret",
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(wxtoken.NewMemoryStore()),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	_, err = client.Get(context.Background())
	var apiErr *wxtoken.APIError
	if errors.As(err, &apiErr) {
		fmt.Println("errcode:", apiErr.Code)
	}
	fmt.Println("permanent:", wxtoken.IsPermanent(err), "retryable:", wxtoken.IsRetryable(err))
	// Output:
	// errcode: 40001
	// permanent: true retryable: false
}

// Stable tokens come from POST /cgi-bin/stable_token, which hands every caller the
// same token while it is valid, so independent services do not supersede each
// other's tokens.
func ExampleWithStableToken() {
	srv := wxtest.NewServer()
	defer srv.Close()
	client, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithStableToken(),
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(wxtoken.NewMemoryStore()),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	tok, err := client.Token(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.AccessToken == srv.CurrentStableToken(wxtest.DefaultAppID), tok.ExpiresIn)
	fmt.Println("stable calls:", srv.StableCalls(), "plain calls:", srv.TokenCalls())
	// Output:
	// true 7200
	// stable calls: 1 plain calls: 0
}
