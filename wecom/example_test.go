package wecom_test

import (
	"context"
	"fmt"
	"log"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wecom"
	"github.com/wxtoken/wxtoken/wxtest"
)

// A WeCom application's token: one per (corpid, application secret), cached,
// shared across replicas through the Store, renewed ahead.
func ExampleNew() {
	srv := wxtest.NewServer() // in production, leave out WithBaseURL
	defer srv.Close()
	client, err := wecom.New(wxtest.DefaultCorpID, wxtest.DefaultCorpSecret,
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(wxtoken.NewMemoryStore()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	tok, err := client.Get(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok == srv.CurrentWeComToken(wxtest.DefaultCorpID, wxtest.DefaultCorpSecret))
	fmt.Println(client.Key() == wecom.Key(wxtest.DefaultCorpID, wxtest.DefaultCorpSecret))
	// Output:
	// true
	// true
}
