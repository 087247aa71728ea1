package wxtoken_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// How much of the day's token quota is left, and the way out once WeChat
// answered 45009: clear_quota/v2 needs no token (ten resets a month).
func ExampleClient_Quota() {
	srv := wxtest.NewServer()
	defer srv.Close()
	// A fetch answered 45009 logs a warning naming the reset time by itself.
	c, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(wxtoken.NewMemoryStore()))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	q, err := c.Quota(context.Background(), "/cgi-bin/token")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("used %d of %d, %d left\n", q.Used, q.DailyLimit, q.Remain)

	var apiErr *wxtoken.APIError
	if err := c.ClearQuotaV2(context.Background()); errors.As(err, &apiErr) && apiErr.Code == wxtoken.CodeClearQuotaSpent {
		fmt.Println("this month's ten resets are spent")
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Println("resets left this month:", srv.ClearQuotaLeft(wxtest.DefaultAppID))
	// Output:
	// used 1 of 2000, 1999 left
	// resets left this month: 9
}
