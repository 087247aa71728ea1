// Package wxtest is a fake of the WeChat Official Account API for tests: the
// two token endpoints, the JS-SDK ticket endpoint and a few business
// endpoints, plus WeCom's token, ticket and message endpoints, with their
// rules on credentials, token overlap, expiry and quotas, plus fault
// injection and counters. It depends on the standard library only, so any test can use it,
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
// stable_token minute quota resets at each clock minute, and WeCom's hourly
// ticket quota at each clock hour.
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
// GET /cgi-bin/ticket/getticket?access_token=...&type=jsapi|wx_card
// (PathTicket) checks the token as the business endpoints do (41001, 40001,
// 42001), then the method (43001), then the type (40097 "invalid args" when
// missing or unknown), and answers {"errcode":0,"errmsg":"ok","ticket":"...",
// "expires_in":7200}. Each (app, type) has one current ticket: while it works
// and has at least a second left, every call returns it with its remaining
// expires_in, whichever token of the app asks; after that a call issues a new
// one (WithTicketLifetime, default 7200 s). WeChat's documentation only says
// to cache the ticket; a fake that hands out a stable ticket lets a test
// assert exactly what a caller got. WithTicketRotation makes every call issue
// a new ticket instead; the previous one then works for Overlap more, any
// older one stops at once. Calls count against a daily quota per (app, type)
// (DefaultTicketDailyQuota, WithTicketQuota; 45009 past it). A ticket lives
// its own lifetime whatever happens to the token that fetched it: whether
// WeChat kills it with the token is undocumented, so that is only a fault,
// WithTicketsDieWithToken.
//
// WeCom (企业微信) lives on the same fake and the same URL: point the WeCom
// client's base URL, in place of https://qyapi.weixin.qq.com, at URL() too.
// Its tokens and tickets are apart from the Official Account's: a token of
// one is unknown to the other. GET /cgi-bin/gettoken?corpid=...&corpsecret=...
// (PathWeComToken) checks, in this order: the method is GET (43001), corpid
// present (41002), corpsecret present (41004), corp known (40013), secret one
// of the corp's applications (40001), the caller's IP trusted (60020, only
// under WithWeComTrustedIPs), then a daily quota per application
// (DefaultWeComTokenQuota, WithWeComTokenQuota; 45009). It answers
// {"errcode":0,"errmsg":"ok","access_token":"...","expires_in":7200}: the
// application's current token with its remaining expires_in while it works
// and has a second left, a new one otherwise, as WeCom documents. WithCorp
// declares corps and their applications, one secret each, each with its own
// token (default: DefaultCorpID with DefaultCorpSecret). WeCom's busy answer
// (-1) comes only from an injected fault. RevokeWeComToken drops an
// application's token early, as WeCom may; the next gettoken issues a new
// one.
//
// WeCom's business endpoint is GET or POST /cgi-bin/message/send
// (PathWeComSend; other methods 43002). It checks the WeCom token: missing
// 41001, unknown or revoked 40014, expired 42001, then the trusted IPs; the
// body is recorded, not checked, and the answer is
// {"errcode":0,"errmsg":"ok"}. It counts as a business call. GET
// /cgi-bin/get_jsapi_ticket (PathWeComJSAPITicket, the corp ticket, kind
// TicketJSAPI) and GET /cgi-bin/ticket/get?type=agent_config
// (PathWeComAgentTicket, kind TicketAgentConfig; any other type 40097) check
// the WeCom token the same way, then the trusted IPs and the method (43001),
// and follow the ticket rules above per (application, kind), options
// included, with WeCom's documented limit of 100 calls an hour per
// application and kind (WithWeComTicketQuota; 45009).
//
// Business answers carry Content-Type text/plain, JSON or not, as many WeChat
// endpoints do; the token and ticket endpoints send application/json;
// encoding=utf-8, and WeCom's endpoints application/json; charset=UTF-8.
// Errors always come with HTTP 200 and {"errcode":N,"errmsg":"..."}; by default
// errmsg ends with a random " rid: ..." like WeChat's (WithoutRID drops it).
// The fake never echoes or records a secret.
//
// POST /cgi-bin/openapi/quota/get?access_token=... {"cgi_path":...}
// (PathQuotaGet) reports {daily_limit, used, remain} for the token,
// stable_token and ticket endpoints (76021 for any other path). POST
// /cgi-bin/clear_quota?access_token=... {"appid":...} (PathClearQuota) and POST
// /cgi-bin/clear_quota/v2?appid=...&appsecret=... (PathClearQuotaV2, no token
// needed) reset the account's daily quotas, DefaultClearQuotaMonthly (10) times
// a Beijing month between them, then answer 48006. QuotaCalls and
// ClearQuotaLeft count them.
//
// # Inspecting and steering
//
// Counters (TokenCalls, StableCalls, ForceRefreshCalls, BusinessCalls,
// TicketCalls, WeComTokenCalls, WeComTicketCalls) count requests as they
// arrive, whatever the answer; Rejections counts answers by errcode. Requests
// and LastBody return business calls byte for byte, and WithOnBusinessCall
// sees each as it arrives. CurrentToken, CurrentStableToken, CheckToken,
// Revoke, RevokeToken and ExpireToken read and change token state directly;
// CurrentTicket and TicketValid read ticket state; CurrentWeComToken,
// CheckWeComToken, RevokeWeComToken, CurrentWeComTicket and WeComTicketValid
// do the same for WeCom.
//
// Inject and InjectN queue faults for the next requests (optionally for one
// path with Fault.On): a WeChat errcode, an HTTP status, a delay, a malformed
// or truncated body, or a dropped connection. Hold blocks requests until
// released, to catch a refresh mid-flight.
package wxtest
