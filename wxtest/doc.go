// Package wxtest is a fake of the WeChat Official Account API for tests: the
// two token endpoints and a few business endpoints, with WeChat's rules on
// credentials, token overlap, expiry and quotas, plus fault injection and
// counters. It depends on the standard library only, so any test can use it,
// including the tests of package wxtoken itself.
//
// # Starting it
//
// NewServer serves the fake on a loopback port; point your client at URL()
// instead of https://api.weixin.qq.com:
//
//	srv := wxtest.NewServer()
//	defer srv.Close()
//	c, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
//		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithStore(wxtoken.NewMemoryStore()))
//
// NewHandler makes the same fake without a listener, for use as an
// http.Handler (for example behind httpmock) or through Client, whose
// Transport calls ServeHTTP in-process. Inside a testing/synctest bubble, where
// real sockets do not work, use that:
//
//	synctest.Test(t, func(t *testing.T) {
//		srv := wxtest.NewHandler()
//		c, _ := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
//			wxtoken.WithBaseURL(srv.URL()), wxtoken.WithHTTPClient(srv.Client()))
//		...
//		time.Sleep(2 * time.Hour) // fake time: instant, and the fake sees it
//	})
//
// # Time
//
// Every expiry, overlap and quota is measured against the WithClock clock,
// time.Now by default, which is what synctest fakes. Outside synctest, give
// the fake a Clock and move it by hand:
//
//	clk := wxtest.NewClock(time.Time{})
//	srv := wxtest.NewServer(wxtest.WithClock(clk.Now))
//	clk.Advance(2 * time.Hour) // every token issued so far has now expired
//
// Daily quotas reset at midnight Beijing time (UTC+8), as WeChat's do; the
// stable_token minute quota resets at each clock minute.
//
// # What it models
//
// GET /cgi-bin/token (PathToken) checks, in this order: grant_type is
// client_credential (else 40002), appid present (41002), secret present
// (41004), appid known (40013), secret right (40001, or the code set with
// WithSecretErrcode). Every successful call issues a new token with expires_in
// 7200 (WithTokenLifetime). The previous token keeps working for Overlap (5
// minutes), then answers 40001; any older one answers 40001 at once.
// Successful calls count against a daily quota per app (2000, WithDailyQuota);
// past it the answer is 45009. A method other than GET gets 43001.
//
// POST /cgi-bin/stable_token (PathStableToken) takes a JSON body
// {"grant_type","appid","secret","force_refresh"}; a body that is not one JSON
// object of those types gets 47001, other methods 43002, and the credential
// checks are those above. In normal mode it returns the current stable token
// with its remaining expires_in while more than 5 minutes remain; in the last
// 5 minutes it issues a new one (the old one works until its own expiry), so
// expires_in is never below 300. force_refresh:true issues a new token and the
// previous one answers 40001 at once; within 30 s of the last force refresh
// WeChat does not refresh again, and neither does the fake: it returns the
// current token. Every force_refresh call counts against a limit of 20 a day
// (45009 past it). All stable calls count against 10,000 a minute (45011) and
// 500,000 a day (45009). See WithStableQuota and WithForceRefreshLimit.
// Stable tokens and /cgi-bin/token tokens never affect each other.
//
// The business endpoints check the access_token query parameter as WeChat
// does: missing 41001, unknown, superseded or revoked 40001, expired 42001.
// Either kind of token is accepted. Then:
//
//   - GET /cgi-bin/getcallbackip (PathCallbackIP) answers {"ip_list":["127.0.0.1"]}.
//   - POST /cgi-bin/message/custom/send (PathCustomSend) wants a JSON object
//     body (47001 otherwise) and answers {"errcode":0,"errmsg":"ok"}.
//   - GET /cgi-bin/media/get?media_id=... (PathMediaGet) answers 256 KiB of
//     image/jpeg, MediaContent(media_id), for testing that binary answers pass
//     through untouched.
//
// Business answers carry Content-Type text/plain, JSON or not, as many WeChat
// endpoints do; the token endpoints send application/json; encoding=utf-8.
// Errors always come with HTTP 200 and {"errcode":N,"errmsg":"..."}; by default
// errmsg ends with a random " rid: ..." like WeChat's (WithoutRID drops it).
// The fake never echoes or records a secret.
//
// # Inspecting and steering
//
// Counters (TokenCalls, StableCalls, ForceRefreshCalls, BusinessCalls) count
// requests as they arrive, whatever the answer; Rejections counts answers by
// errcode. Requests and LastBody return business calls byte for byte, and
// WithOnBusinessCall sees each as it arrives. CurrentToken,
// CurrentStableToken, CheckToken, Revoke, RevokeToken and ExpireToken read and
// change token state directly.
//
// Inject and InjectN queue faults for the next requests (optionally for one
// path with Fault.On): a WeChat errcode, an HTTP status, a delay, a malformed
// or truncated body, or a dropped connection. Hold blocks requests until
// released, to catch a refresh mid-flight.
package wxtest
