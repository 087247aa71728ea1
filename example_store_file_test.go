package wxtoken_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/wxtoken/wxtoken"
)

// LoadMany reads many keys of a FileStore in one pass; each key has its own
// result, so a missing or damaged record fails only its key.
func ExampleFileStore_LoadMany() {
	dir, err := os.MkdirTemp("", "wxtoken-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := wxtoken.NewFileStore(dir)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	tok := wxtoken.Token{AccessToken: "ACCESS_TOKEN", ExpiresIn: 7200, CreateTime: time.Now()}
	if err := store.Save(ctx, "wx0123456789abcdef", tok); err != nil {
		log.Fatal(err)
	}

	results, err := store.LoadMany(ctx, []string{"wx0123456789abcdef", "wxabsent", "../escape"})
	if err != nil {
		log.Fatal(err) // the folder could not be read at all
	}
	for _, r := range results {
		switch {
		case r.Err == nil:
			fmt.Println("found, expires in", r.Token.ExpiresIn, "s")
		case errors.Is(r.Err, wxtoken.ErrNotFound):
			fmt.Println("not stored yet")
		case errors.Is(r.Err, wxtoken.ErrInvalidKey):
			fmt.Println("not a key")
		}
	}
	// Output:
	// found, expires in 7200 s
	// not stored yet
	// not a key
}
