package wxtoken_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"time"

	"github.com/wxtoken/wxtoken"
)

// The example of WeChat's JS-SDK documentation.
func ExampleSignJSSDK() {
	fmt.Println(wxtoken.SignJSSDK(
		"sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
		"Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value#ignored"))
	// Output: 0f9de62fce790f9a083d5c99e95740ceb90c27ed
}

// The example of WeChat's card documentation: a card with a custom code and
// no bound openid.
func ExampleSignCard() {
	fmt.Println(wxtoken.SignCard("ojZ8YtyVyr30HheH3CM73y7h4jJE", "123", 1404896688,
		"pjZ8Yt1XGILfi-FUsewpnnolGgZk", "1434008071", ""))
	// Output: f137ab68b7f8112d20ee528ab6074564e2796250
}

func ExampleNewJSSDKConfigAt() {
	cfg, err := wxtoken.NewJSSDKConfigAt("wx0123456789abcdef",
		"sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
		"http://mp.weixin.qq.com?params=value", "Wm3WZYTPz0wzccnW", time.Unix(1414587457, 0))
	if err != nil {
		fmt.Println(err)
		return
	}
	json.NewEncoder(os.Stdout).Encode(cfg)

	_, err = wxtoken.NewJSSDKConfigAt("wx0123456789abcdef", "ticket", "/relative/path", "n", time.Now())
	fmt.Println(err)
	// Output:
	// {"appId":"wx0123456789abcdef","timestamp":1414587457,"nonceStr":"Wm3WZYTPz0wzccnW","signature":"0f9de62fce790f9a083d5c99e95740ceb90c27ed"}
	// wxtoken: JS-SDK page URL must be an absolute http or https URL: the scheme is not http or https
}

// A handler that the page asks for its wx.config, passing its own
// location.href (encodeURIComponent'ed) as url.
func ExampleNewJSSDKConfig() {
	const appID = "wx0123456789abcdef"
	ticket := "a-jsapi-ticket" // in a service: the cached jsapi ticket of the account
	handler := func(w http.ResponseWriter, r *http.Request) {
		cfg, err := wxtoken.NewJSSDKConfig(appID, ticket, r.FormValue("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(cfg)
	}

	page := "https://example.com/shop?item=42#reviews"
	rec := httptest.NewRecorder()
	handler(rec, httptest.NewRequest(http.MethodGet, "/jssdk-config?url="+url.QueryEscape(page), nil))
	var cfg wxtoken.JSSDKConfig
	json.NewDecoder(rec.Body).Decode(&cfg)
	fmt.Println(rec.Code, cfg.AppID, cfg.Signature == wxtoken.SignJSSDK(ticket, cfg.NonceStr, cfg.Timestamp, page))
	// Output: 200 wx0123456789abcdef true
}
