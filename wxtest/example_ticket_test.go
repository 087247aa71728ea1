package wxtest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/wxtoken/wxtoken/wxtest"
)

type ticketAnswer struct {
	Errcode   int    `json:"errcode"`
	Errmsg    string `json:"errmsg"`
	Ticket    string `json:"ticket"`
	ExpiresIn int64  `json:"expires_in"`
}

// getJSON sends GET base+path?q with hc and decodes the answer into v.
func getJSON(hc *http.Client, base, path string, q url.Values, v any) {
	resp, err := hc.Get(base + path + "?" + q.Encode())
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		panic(err)
	}
}

func ExampleServer_CurrentTicket() {
	clk := wxtest.NewClock(time.Time{})
	srv := wxtest.NewHandler(wxtest.WithClock(clk.Now))
	defer srv.Close()
	getTicket := func() ticketAnswer {
		tok := getToken(srv.Client(), srv.URL(), wxtest.DefaultAppID, wxtest.DefaultSecret).AccessToken
		var a ticketAnswer
		getJSON(srv.Client(), srv.URL(), wxtest.PathTicket, url.Values{"access_token": {tok}, "type": {wxtest.TicketJSAPI}}, &a)
		return a
	}

	first := getTicket()
	fmt.Println(first.Errcode, first.Errmsg, first.ExpiresIn, first.Ticket == srv.CurrentTicket(wxtest.DefaultAppID, wxtest.TicketJSAPI))
	clk.Advance(time.Hour)
	again := getTicket() // the same ticket while it is valid, with what is left of it
	fmt.Println(again.Ticket == first.Ticket, again.ExpiresIn)
	clk.Advance(time.Hour)
	fmt.Println(srv.TicketValid(wxtest.DefaultAppID, wxtest.TicketJSAPI, first.Ticket))
	fresh := getTicket()
	fmt.Println(fresh.Ticket != first.Ticket, fresh.ExpiresIn, srv.TicketCalls(wxtest.TicketJSAPI))
	// Output:
	// 0 ok 7200 true
	// true 3600
	// false
	// true 7200 3
}

func ExampleServer_RevokeWeComToken() {
	// WeCom shares the fake's URL: point the WeCom client's base URL at it too.
	srv := wxtest.NewHandler(wxtest.WithoutRID())
	defer srv.Close()
	q := url.Values{"corpid": {wxtest.DefaultCorpID}, "corpsecret": {wxtest.DefaultCorpSecret}}
	getToken := func() answer {
		var a answer
		getJSON(srv.Client(), srv.URL(), wxtest.PathWeComToken, q, &a)
		return a
	}
	send := func(tok string) answer {
		var a answer
		getJSON(srv.Client(), srv.URL(), wxtest.PathWeComSend, url.Values{"access_token": {tok}}, &a)
		return a
	}

	first := getToken()
	fmt.Println(first.Errcode, first.ExpiresIn, first.AccessToken == getToken().AccessToken)
	srv.RevokeWeComToken(wxtest.DefaultCorpID, wxtest.DefaultCorpSecret)
	r := send(first.AccessToken)
	fmt.Println(r.Errcode, r.Errmsg)
	healed := getToken()
	fmt.Println(healed.AccessToken != first.AccessToken, send(healed.AccessToken).Errcode)
	fmt.Println("gettoken calls:", srv.WeComTokenCalls())
	// Output:
	// 0 7200 true
	// 40014 invalid access_token
	// true 0
	// gettoken calls: 3
}
