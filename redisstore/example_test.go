package redisstore_test

import (
	"context"
	"log"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/redisstore"
)

// Every replica builds its Client on the same Redis: they share one token and
// fetch it once between them.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	client, err := wxtoken.New(os.Getenv("WECHAT_APPID"), os.Getenv("WECHAT_SECRET"),
		wxtoken.WithStore(redisstore.New(rdb, redisstore.WithPrefix("myapp:wxtoken:"))))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	token, err := client.Get(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	_ = token // call the WeChat API with it
}
