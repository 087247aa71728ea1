package wxtest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wxtoken/wxtoken/wxtest"
)

type answer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	Errcode     int    `json:"errcode"`
	Errmsg      string `json:"errmsg"`
}

// getToken calls GET /cgi-bin/token the way a client of WeChat would.
func getToken(hc *http.Client, base, appID, secret string) answer {
	q := url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}}
	resp, err := hc.Get(base + wxtest.PathToken + "?" + q.Encode())
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		panic(err)
	}
	return a
}

func Example() {
	srv := wxtest.NewServer() // listens on 127.0.0.1
	defer srv.Close()

	a := getToken(http.DefaultClient, srv.URL(), wxtest.DefaultAppID, wxtest.DefaultSecret)
	fmt.Println(len(a.AccessToken), a.ExpiresIn, a.AccessToken == srv.CurrentToken(wxtest.DefaultAppID))
	fmt.Println("token calls:", srv.TokenCalls())
	// Output:
	// 136 7200 true
	// token calls: 1
}

func ExampleServer_Client() {
	// No listener: the Client serves requests in-process, which also works
	// inside a testing/synctest bubble.
	srv := wxtest.NewHandler(wxtest.WithApp("wx1111111111111111", "right-secret"), wxtest.WithoutRID())
	defer srv.Close()

	a := getToken(srv.Client(), srv.URL(), "wx1111111111111111", "wrong-secret")
	fmt.Println(a.Errcode, a.Errmsg)
	// Output: 40001 invalid credential, access_token is invalid or not latest
}

func ExampleClock() {
	clk := wxtest.NewClock(time.Time{})
	srv := wxtest.NewHandler(wxtest.WithClock(clk.Now))
	defer srv.Close()
	get := func() string {
		return getToken(srv.Client(), srv.URL(), wxtest.DefaultAppID, wxtest.DefaultSecret).AccessToken
	}

	first := get()
	second := get() // first keeps working for five more minutes
	fmt.Println(srv.CheckToken(first), srv.CheckToken(second))
	clk.Advance(wxtest.Overlap)
	fmt.Println(srv.CheckToken(first), srv.CheckToken(second))
	clk.Advance(2 * time.Hour)
	fmt.Println(srv.CheckToken(second))
	// Output:
	// 0 0
	// 40001 0
	// 42001
}

func ExampleServer_InjectN() {
	srv := wxtest.NewHandler()
	defer srv.Close()
	srv.InjectN(2, wxtest.FaultErrcode(-1, "system error").On(wxtest.PathToken))

	for range 3 {
		a := getToken(srv.Client(), srv.URL(), wxtest.DefaultAppID, wxtest.DefaultSecret)
		fmt.Println(a.Errcode, a.AccessToken != "")
	}
	fmt.Println(srv.Rejections())
	// Output:
	// -1 false
	// -1 false
	// 0 true
	// map[-1:2]
}

func ExampleServer_Hold() {
	srv := wxtest.NewHandler()
	defer srv.Close()

	h := srv.Hold(wxtest.PathToken)
	done := make(chan answer)
	go func() { done <- getToken(srv.Client(), srv.URL(), wxtest.DefaultAppID, wxtest.DefaultSecret) }()
	<-h.Waiting() // the request is inside the fake, no token issued yet
	fmt.Println(srv.TokenCalls(), srv.CurrentToken(wxtest.DefaultAppID) == "")
	h.Release()
	fmt.Println((<-done).AccessToken == srv.CurrentToken(wxtest.DefaultAppID))
	// Output:
	// 1 true
	// true
}

func ExampleServer_Requests() {
	srv := wxtest.NewHandler()
	defer srv.Close()
	tok := getToken(srv.Client(), srv.URL(), wxtest.DefaultAppID, wxtest.DefaultSecret).AccessToken

	body := `{"touser":"OPENID","msgtype":"text","text":{"content":"hi"}}`
	resp, err := srv.Client().Post(srv.URL()+wxtest.PathCustomSend+"?access_token="+tok,
		"application/json", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(string(srv.LastBody()) == body, srv.Requests()[0].Errcode)
	// Output: true 0
}
