package redisstore_test

import (
	"context"
	"log"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/redisstore"
)

// With the change feed on, a replica learns of another replica's renewal as
// soon as it is saved, and re-reads nothing while nothing changes: the Store
// subscribes once to "myapp:wxtoken:changed", whatever the number of keys.
func ExampleWithChangeFeed() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	store := redisstore.New(rdb, redisstore.WithPrefix("myapp:wxtoken:"), redisstore.WithChangeFeed())
	reg, err := wxtoken.NewRegistry(func(ctx context.Context, appID string) (wxtoken.Source, error) {
		return wxtoken.OfficialAccount(appID, os.Getenv("SECRET_OF_"+appID), false)
	}, wxtoken.WithStore(store))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	token, err := reg.Get(context.Background(), os.Getenv("WECHAT_APPID"))
	if err != nil {
		log.Fatal(err)
	}
	_ = token // call the WeChat API with it
}
