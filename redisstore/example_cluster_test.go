package redisstore_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/redisstore"
)

// On Redis Cluster, build the client with NewClusterClient and options that
// give up on a dead node quickly, so that replicas follow a failover within
// its own few seconds instead of go-redis's minute.
func ExampleNewClusterClient() {
	rdb := redisstore.NewClusterClient(&redis.ClusterOptions{
		Addrs:                      []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"},
		ClusterStateReloadInterval: time.Second, // go-redis: 60 s
		DialTimeout:                500 * time.Millisecond,
		DialerRetries:              1, // go-redis: 5 dials 100 ms apart to a dead node
		ReadTimeout:                500 * time.Millisecond,
		WriteTimeout:               500 * time.Millisecond,
	})
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

// With Sentinel, go-redis's failover client asks the sentinels for the
// master and switches when they announce a new one.
func Example_sentinel() {
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    "mymaster",
		SentinelAddrs: []string{"127.0.0.1:26379", "127.0.0.1:26380", "127.0.0.1:26381"},
		DialTimeout:   500 * time.Millisecond,
		DialerRetries: 1,
		ReadTimeout:   500 * time.Millisecond,
		WriteTimeout:  500 * time.Millisecond,
	})
	defer rdb.Close()

	client, err := wxtoken.New(os.Getenv("WECHAT_APPID"), os.Getenv("WECHAT_SECRET"),
		wxtoken.WithStore(redisstore.New(rdb)))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
}
