package openplatform_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/openplatform"
	"github.com/wxtoken/wxtoken/wxtest"
)

// A third-party platform end to end against wxtest: the event URL takes a
// verify ticket push and a merchant's authorization, and the merchant's
// authorizer_access_token is then one call away. In production the Store is
// a redisstore.Store on a Redis with appendonly yes, shared by every replica.
func Example() {
	wechat := wxtest.NewHandler() // stands in for api.weixin.qq.com
	p, err := openplatform.New(openplatform.Config{
		AppID:          wxtest.DefaultComponentAppID,
		Secret:         wxtest.DefaultComponentSecret,
		Token:          wxtest.DefaultComponentToken,
		EncodingAESKey: wxtest.DefaultComponentAESKey,
		OnEvent: func(ctx context.Context, ev openplatform.Event) {
			fmt.Println("event:", strings.TrimSpace(ev.InfoType+" "+ev.AuthorizerAppID))
		},
	},
		openplatform.WithStore(wxtoken.NewMemoryStore()),
		openplatform.WithBaseURL(wechat.URL()), openplatform.WithHTTPClient(wechat.Client()),
		openplatform.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	// In a server: mux.Handle("/wechat/auth-events", p), the authorization event URL.

	// WeChat pushes the verify ticket every 10 minutes.
	if _, err := wechat.PushTicket(p, wxtest.DefaultComponentAppID); err != nil {
		log.Fatal(err)
	}
	// The link a merchant follows to authorize the platform.
	link, err := p.AuthURL(context.Background(), "https://example.com/authorized", openplatform.AuthOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(link[:len("https://mp.weixin.qq.com/cgi-bin/componentloginpage")])

	// The merchant consents: WeChat sends the authorized event.
	ev, _ := wechat.Authorize(wxtest.DefaultComponentAppID, "wx1111111111111111")
	if _, _, err := wechat.Deliver(p, ev); err != nil {
		log.Fatal(err)
	}
	tok, err := p.Token(context.Background(), "wx1111111111111111")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token works:", wechat.CheckToken(tok) == 0)
	// Output:
	// event: component_verify_ticket
	// https://mp.weixin.qq.com/cgi-bin/componentloginpage
	// event: authorized wx1111111111111111
	// token works: true
}
