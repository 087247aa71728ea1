package wxtoken

import (
	"context"
	"time"
)

// Other WeChat SDKs let their users plug in where the access_token comes from.
// The adapters below have the method sets those hooks expect, so that a
// service keeps its SDK and gets its tokens from a Client (cached, shared
// through the Store, renewed ahead, healed after 40001) with one line. They
// depend on nothing but this package: Go's interfaces are satisfied by shape.

// AccessTokenHandle serves a Client's token through GetAccessToken and
// GetAccessTokenContext, the methods of the token hooks that take an object
// with those two (such as an official account's SetAccessTokenHandle).
type AccessTokenHandle struct {
	Client *Client
}

// GetAccessToken returns a valid access_token, as Client.Get does with a
// background context: the Client's fetch timeout bounds the wait.
func (h AccessTokenHandle) GetAccessToken() (string, error) {
	return h.Client.Get(context.Background())
}

// GetAccessTokenContext returns a valid access_token; ctx bounds the wait.
func (h AccessTokenHandle) GetAccessTokenContext(ctx context.Context) (string, error) {
	return h.Client.Get(ctx)
}

// TokenProvider serves a Client's token through GetToken(ctx), the method of
// the token provider interfaces that SDKs for a central token service take
// (WeCom SDKs among them). It is safe for concurrent use, as they require.
type TokenProvider struct {
	Client *Client
}

// GetToken returns a valid access_token; ctx bounds the wait.
func (p TokenProvider) GetToken(ctx context.Context) (string, error) {
	return p.Client.Get(ctx)
}

// TokenGetter returns a function in the shape of the getter hooks that take
// an appid and secret and return a token with its remaining lifetime in
// seconds, and no error (such as a Mini Program SDK's access token setter).
// The appid and secret they pass are ignored: the Client has its own. A
// failure returns "" and 0, which such SDKs treat as no token; the Client has
// logged the cause.
func (c *Client) TokenGetter() func(appID, secret string) (token string, expiresIn uint) {
	return func(string, string) (string, uint) {
		tok, err := c.Token(context.Background())
		if err != nil {
			return "", 0
		}
		left := time.Until(tok.ExpiresAt()) / time.Second
		if left <= 0 {
			return tok.AccessToken, 1
		}
		return tok.AccessToken, uint(left)
	}
}
