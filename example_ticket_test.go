package wxtoken_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wxtest"
)

// A handler that gives a web page in WeChat its wx.config: the jsapi ticket is
// cached, shared and renewed like the token it is fetched with.
func ExampleNewTicket() {
	srv := wxtest.NewServer()
	defer srv.Close()
	tokens, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(wxtoken.NewMemoryStore()))
	if err != nil {
		log.Fatal(err)
	}
	defer tokens.Close()
	ticket, err := wxtoken.NewTicket(tokens, wxtoken.TicketJSAPI)
	if err != nil {
		log.Fatal(err)
	}
	defer ticket.Close()

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg, err := ticket.JSSDKConfig(r.Context(), r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, "no wx.config", http.StatusBadGateway)
			return
		}
		_ = json.NewEncoder(w).Encode(cfg)
	})

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/jssdk?url=https://shop.example/p%231", nil))
	var cfg wxtoken.JSSDKConfig
	if err := json.Unmarshal(rec.Body.Bytes(), &cfg); err != nil {
		log.Fatal(err)
	}
	want := wxtoken.SignJSSDK(srv.CurrentTicket(wxtest.DefaultAppID, "jsapi"), cfg.NonceStr, cfg.Timestamp,
		"https://shop.example/p")
	fmt.Println(cfg.AppID, cfg.Signature == want)
	// Output: wx0123456789abcdef true
}
