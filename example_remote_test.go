package wxtoken_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/wxtoken/wxtoken"
)

// A Go service takes its tokens from the central `wxtoken serve` server and
// keeps the whole engine locally: Get costs an atomic load, and the server
// is asked once per token lifetime. (The httptest server stands in for
// `wxtoken serve`, answering as it does.)
func ExampleNewRemote() {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer wxt_the-key-keygen-printed" {
			http.Error(w, `{"error":"a valid client key is needed","code":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"access_token":"TOKEN-FROM-THE-SERVER","expires_in":7000,"expires_at":"2030-01-01T00:00:00Z"}`)
	}))
	defer server.Close()

	// In production: wxtoken.NewRemote("https://tokens.internal:8443", "shop", os.Getenv("WXTOKEN_KEY"))
	client, err := wxtoken.NewRemote(server.URL, "shop", "wxt_the-key-keygen-printed",
		wxtoken.WithStore(wxtoken.NewMemoryStore()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	tok, err := client.Get(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok)

	// A key the server does not know is a permanent error, typed.
	stranger, err := wxtoken.NewRemote(server.URL, "shop", "wxt_a-key-nobody-configured",
		wxtoken.WithStore(wxtoken.NewMemoryStore()))
	if err != nil {
		log.Fatal(err)
	}
	defer stranger.Close()
	_, err = stranger.Get(context.Background())
	fmt.Println(wxtoken.IsPermanent(err))
	// Output:
	// TOKEN-FROM-THE-SERVER
	// true
}

// The store key of a remote credential names the server and the client key
// by a fingerprint: a staging and a production server never share a stored
// token, even in one Redis or one user's cache folder.
func ExampleRemoteKey() {
	staging, _ := wxtoken.RemoteKey("https://tokens.staging.internal", "shop", "wxt_the-key-keygen-printed")
	prod, _ := wxtoken.RemoteKey("https://tokens.internal", "shop", "wxt_the-key-keygen-printed")
	fmt.Println(staging != prod, len(staging))
	// Output:
	// true 28
}

// A JS-SDK ticket the server hands out, as {"ticket": ...}: the Client
// refuses to send it as an access_token.
func ExampleNewRemoteTicket() {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"ticket":"TICKET-FROM-THE-SERVER","expires_in":7000,"expires_at":"2030-01-01T00:00:00Z","age":200}`)
	}))
	defer server.Close()

	tickets, err := wxtoken.NewRemoteTicket(server.URL, "shop-jsapi", "wxt_the-key-keygen-printed",
		wxtoken.WithStore(wxtoken.NewMemoryStore()))
	if err != nil {
		log.Fatal(err)
	}
	defer tickets.Close()
	ticket, err := tickets.Get(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	// The appid is the server's to know: sign with it, or ask /v1/jssdk.
	cfg, err := wxtoken.NewJSSDKConfig("wx0123456789abcdef", ticket, "https://shop.example.com/")
	fmt.Println(ticket, cfg.AppID, len(cfg.Signature), err)
	// Output:
	// TICKET-FROM-THE-SERVER wx0123456789abcdef 40 <nil>
}
