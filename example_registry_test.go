package wxtoken_test

import (
	"context"
	"fmt"
	"log"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// A Registry holds the tokens of many accounts: lookup finds an account's
// secret (in a database, a vault, a platform's records) the first time its
// token is asked for.
func ExampleNewRegistry() {
	srv := wxtest.NewServer()
	defer srv.Close()
	secrets := map[string]string{wxtest.DefaultAppID: wxtest.DefaultSecret} // your merchants' records

	lookup := func(ctx context.Context, appID string) (wxtoken.Source, error) {
		secret, ok := secrets[appID]
		if !ok {
			return nil, fmt.Errorf("unknown account %s", appID)
		}
		return wxtoken.OfficialAccount(appID, secret, false)
	}
	reg, err := wxtoken.NewRegistry(lookup, wxtoken.WithBaseURL(srv.URL()),
		wxtoken.WithStore(wxtoken.NewMemoryStore()))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	tok, err := reg.Get(context.Background(), wxtest.DefaultAppID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok == srv.CurrentToken(wxtest.DefaultAppID))
	_, err = reg.Get(context.Background(), "wx-unknown")
	fmt.Println(err)
	// Output:
	// true
	// wxtoken: registry key "wx-unknown": unknown account wx-unknown
}
