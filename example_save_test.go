package wxtoken_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"sync"
	"time"

	"github.com/wxtoken/wxtoken"
)

// exampleSource issues one credential, as a Source of the user's own would.
type exampleSource struct{}

func (exampleSource) Fetch(ctx context.Context, req wxtoken.FetchRequest) (wxtoken.Token, error) {
	return wxtoken.Token{AccessToken: "ACCESS_TOKEN", ExpiresIn: 7200, CreateTime: time.Now()}, nil
}

// downOnce is a Store whose first Save fails, as one during a failover does.
type downOnce struct {
	*wxtoken.MemoryStore
	once sync.Once
}

func (s *downOnce) Save(ctx context.Context, key string, tok wxtoken.Token) error {
	first := false
	s.once.Do(func() { first = true })
	if first {
		return errors.New("store unavailable")
	}
	return s.MemoryStore.Save(ctx, key, tok)
}

// A save that fails is not lost: the token is tried again in the background,
// and Close gives it one last try. WithSaveTimeout bounds each attempt; no
// caller waits for it.
func ExampleWithSaveTimeout() {
	store := &downOnce{MemoryStore: wxtoken.NewMemoryStore()}
	c, err := wxtoken.NewClient("example.credential", exampleSource{},
		wxtoken.WithStore(store),
		wxtoken.WithSaveTimeout(2*time.Second),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := c.Get(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("served:", tok)
	_ = c.Close() // the first Save failed: Close saves the token

	saved, err := store.Load(context.Background(), "example.credential")
	fmt.Println("saved:", saved.AccessToken, err)
	// Output:
	// served: ACCESS_TOKEN
	// saved: ACCESS_TOKEN <nil>
}
