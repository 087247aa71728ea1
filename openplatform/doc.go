// Package openplatform runs a WeChat third-party platform (开放平台 第三方平台)
// on the wxtoken engine: the whole credential chain, kept in one Store and
// shared by every replica.
//
//	component_verify_ticket  pushed every 10 min to ServeHTTP, kept 12 h in the Store
//	  → component_access_token   Component(): a wxtoken.Client reading the stored ticket
//	    → authorizer_access_token  Authorizer(ctx, appid): a Client per authorized account,
//	                               whose record carries its authorizer_refresh_token
//
//	p, err := openplatform.New(openplatform.Config{AppID: ..., Secret: ..., Token: ..., EncodingAESKey: ...},
//		openplatform.WithStore(redisstore.New(rdb)), openplatform.WithRedisPersistenceCheck(rdb))
//	http.Handle("/wechat/auth-events", p)                      // the authorization event URL
//	link, err := p.AuthURL(ctx, "https://example.com/authorized", openplatform.AuthOptions{})
//	auth, err := p.Authorize(ctx, r.URL.Query().Get("auth_code"))   // on the redirect
//	tok, err := p.Token(ctx, auth.AppID)                     // ?access_token=tok for the merchant's account
//
// Every refresh token WeChat returns is saved in the same Save as the access
// token it came with; records that carry one never lapse from the Store, and
// a failed save is retried until it lands. One replica at a time exchanges a
// refresh token (the Store's lock): two exchanging the same one is how
// platforms lose them. A refresh token lost anyway is recovered from
// api_get_authorizer_list (Recover, and once automatically on 61023).
//
// Store keys, for the component appid c: c.component.ticket,
// c.component.token, c.component.preauthcode, c.authorizer.<appid>. None
// holds a secret. The Store must be durable: a Redis that persists nothing
// loses every refresh token when it restarts (WithRedisPersistenceCheck).
package openplatform
