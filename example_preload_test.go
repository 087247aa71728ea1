package wxtoken_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// A replica that starts with many accounts warms them from the shared Store
// before it takes traffic: Preload reads their records in batches (one
// round trip per 500 keys on redisstore) and fetches nothing. Here the Store
// already holds the account's token, saved by another replica.
func ExampleRegistry_Preload() {
	srv := wxtest.NewServer()
	defer srv.Close()
	store := wxtoken.NewMemoryStore() // in production: redisstore.New(rdb)
	saved := wxtoken.Token{AccessToken: "saved-by-another-replica", ExpiresIn: 7200, CreateTime: time.Now()}
	if err := store.Save(context.Background(), wxtest.DefaultAppID, saved); err != nil {
		log.Fatal(err)
	}
	reg, err := wxtoken.NewRegistry(func(ctx context.Context, appID string) (wxtoken.Source, error) {
		return wxtoken.OfficialAccount(appID, wxtest.DefaultSecret, false)
	}, wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(store))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	if err := reg.Preload(context.Background(), []string{wxtest.DefaultAppID}); err != nil {
		log.Fatal(err)
	}
	tok, _ := reg.Get(context.Background(), wxtest.DefaultAppID)
	fmt.Println(tok, srv.TokenCalls())
	// Output:
	// saved-by-another-replica 0
}
