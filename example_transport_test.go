package wxtoken_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/wxtoken/wxtoken"
)

// Send a customer-service message through a Transport, which adds the
// access_token and, when WeChat rejects it, gets a new one and sends the
// message again.
func ExampleTransport() {
	// A stand-in for https://api.weixin.qq.com. It issues NEW-TOKEN and rejects
	// any other token with errcode 40001, in JSON labelled text/plain, as
	// WeChat does with a token that was superseded.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cgi-bin/token", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"access_token":"NEW-TOKEN","expires_in":7200}`)
	})
	mux.HandleFunc("POST /cgi-bin/message/custom/send", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Query().Get("access_token") != "NEW-TOKEN" {
			fmt.Println("wechat: rejected a superseded token")
			io.WriteString(w, `{"errcode":40001,"errmsg":"invalid credential"}`)
			return
		}
		var msg struct {
			ToUser string `json:"touser"`
			Text   struct {
				Content string `json:"content"`
			} `json:"text"`
		}
		json.NewDecoder(r.Body).Decode(&msg)
		fmt.Printf("wechat: delivered %q to %s\n", msg.Text.Content, msg.ToUser)
		io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
	})
	wechat := httptest.NewServer(mux)
	defer wechat.Close()

	// The shared store holds a token another replica fetched an hour ago,
	// which WeChat has since replaced.
	ctx := context.Background()
	store := wxtoken.NewMemoryStore()
	store.Save(ctx, "wx0123456789abcdef", wxtoken.Token{
		AccessToken: "OLD-TOKEN", ExpiresIn: 7200, CreateTime: time.Now().Add(-time.Hour),
	})
	client, err := wxtoken.New("wx0123456789abcdef", "app-secret",
		wxtoken.WithBaseURL(wechat.URL), wxtoken.WithStore(store),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	// wxtoken.NewHTTPClient(client, nil) builds such a client, without a Timeout.
	hc := &http.Client{Transport: &wxtoken.Transport{Client: client}, Timeout: 10 * time.Second}
	msg := `{"touser":"OPENID","msgtype":"text","text":{"content":"Hello"}}`
	resp, err := hc.Post(wechat.URL+"/cgi-bin/message/custom/send", "application/json", strings.NewReader(msg))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var result struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&result); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("errcode %d: %s\n", result.ErrCode, result.ErrMsg)
	// Output:
	// wechat: rejected a superseded token
	// wechat: delivered "Hello" to OPENID
	// errcode 0: ok
}

// Without a Transport, report a token that a business API rejected to
// Invalidate, and retry once with the token it returns.
func ExampleClient_Invalidate() {
	// A stand-in for https://api.weixin.qq.com, which accepts only NEW-TOKEN.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cgi-bin/token", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"access_token":"NEW-TOKEN","expires_in":7200}`)
	})
	mux.HandleFunc("POST /cgi-bin/message/custom/send", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("access_token") != "NEW-TOKEN" {
			io.WriteString(w, `{"errcode":40001,"errmsg":"invalid credential"}`)
			return
		}
		io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
	})
	wechat := httptest.NewServer(mux)
	defer wechat.Close()

	// The shared store holds a token another replica fetched an hour ago,
	// which WeChat has since replaced.
	ctx := context.Background()
	store := wxtoken.NewMemoryStore()
	store.Save(ctx, "wx0123456789abcdef", wxtoken.Token{
		AccessToken: "OLD-TOKEN", ExpiresIn: 7200, CreateTime: time.Now().Add(-time.Hour),
	})
	client, err := wxtoken.New("wx0123456789abcdef", "app-secret",
		wxtoken.WithBaseURL(wechat.URL), wxtoken.WithStore(store),
		wxtoken.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	// send posts a message with token and returns WeChat's errcode as an
	// *wxtoken.APIError, or nil for errcode 0.
	send := func(token string) error {
		target := wechat.URL + "/cgi-bin/message/custom/send?access_token=" + url.QueryEscape(token)
		msg := `{"touser":"OPENID","msgtype":"text","text":{"content":"Hello"}}`
		resp, err := http.Post(target, "application/json", strings.NewReader(msg))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var result struct {
			ErrCode int    `json:"errcode"`
			ErrMsg  string `json:"errmsg"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&result); err != nil {
			return err
		}
		if result.ErrCode != 0 {
			return &wxtoken.APIError{Code: result.ErrCode, Msg: result.ErrMsg}
		}
		return nil
	}

	token, err := client.Get(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = send(token)
	fmt.Println("first try:", err)
	if wxtoken.IsTokenRejected(err) {
		// However many requests report the same token, one fetch replaces it.
		if token, err = client.Invalidate(ctx, token); err != nil {
			fmt.Println(err)
			return
		}
		err = send(token)
		fmt.Println("retry:", err)
	}
	// Output:
	// first try: wxtoken: errcode 40001: invalid credential
	// retry: <nil>
}
