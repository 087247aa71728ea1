package wxtoken_test

import (
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// CheckResponse turns a business API's errcode answer into a typed error,
// leaving the body readable for the caller's own decoding.
func ExampleCheckResponse() {
	srv := wxtest.NewServer()
	defer srv.Close()
	client, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(wxtoken.NewMemoryStore()))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// A message sent with a token WeChat no longer accepts.
	resp, err := http.Post(client.BaseURL()+wxtest.PathCustomSend+"?access_token=revoked",
		"application/json", strings.NewReader(`{"touser":"OPENID","msgtype":"text","text":{"content":"hi"}}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	err = wxtoken.CheckResponse(resp)
	fmt.Println("token rejected:", wxtoken.IsTokenRejected(err))
	fmt.Println("permanent:", wxtoken.IsPermanent(err))
	// Output:
	// token rejected: true
	// permanent: false
}
