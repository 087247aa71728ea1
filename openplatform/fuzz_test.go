package openplatform_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/openplatform"
	"github.com/wxtoken/wxtoken/wxtest"
)

// FuzzParseEvent: any decrypted XML gives an Event or ErrMalformedEvent,
// never a panic, and an Event has what its InfoType needs.
func FuzzParseEvent(f *testing.F) {
	app := wxtest.DefaultComponentAppID
	f.Add([]byte(`<xml><AppId>` + app + `</AppId><CreateTime>1413192605</CreateTime><InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>ticket@@@x</ComponentVerifyTicket></xml>`))
	f.Add([]byte(`<xml><AppId>` + app + `</AppId><CreateTime>1413192760</CreateTime><InfoType>authorized</InfoType><AuthorizerAppid>wx1111111111111111</AuthorizerAppid><AuthorizationCode>code</AuthorizationCode></xml>`))
	f.Add([]byte(`<xml><AppId>` + app + `</AppId><CreateTime>1</CreateTime><InfoType>unauthorized</InfoType><AuthorizerAppid>wx1</AuthorizerAppid></xml>`))
	f.Add([]byte(`<xml><AppId><![CDATA[` + app + `]]></AppId><CreateTime>1</CreateTime><InfoType>notify_third_fasteregister</InfoType></xml>`))
	f.Add([]byte(`<xml><AppId>` + app + `</AppId><AppId>x</AppId></xml>`))
	f.Fuzz(func(t *testing.T, plain []byte) {
		ev, err := openplatform.ParseEvent(app, plain)
		if err != nil {
			if !errors.Is(err, openplatform.ErrMalformedEvent) {
				t.Fatalf("error %v does not match ErrMalformedEvent", err)
			}
			return
		}
		if ev.InfoType == "" || ev.CreateTime.IsZero() {
			t.Fatalf("event without InfoType or CreateTime: %v", ev)
		}
		switch ev.InfoType {
		case openplatform.InfoAuthorized, openplatform.InfoUpdateAuthorized, openplatform.InfoUnauthorized:
			if ev.AuthorizerAppID == "" {
				t.Fatal("authorization event without authorizer")
			}
		}
	})
}

// FuzzDecodeAnswer: any body is a decoded answer, an *APIError or
// ErrMalformedResponse, and no error quotes the secret or the body.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add([]byte(`{"authorization_info":{"authorizer_appid":"wx1","authorizer_access_token":"a","expires_in":7200,"authorizer_refresh_token":"r","func_info":[{"funcscope_category":{"id":1}}]}}`))
	f.Add([]byte(`{"authorizer_access_token":"a","expires_in":7200,"authorizer_refresh_token":"r"}`))
	f.Add([]byte(`{"total_count":1,"list":[{"authorizer_appid":"wx1","refresh_token":"r","auth_time":1}]}`))
	f.Add([]byte(`{"errcode":61023,"errmsg":"refresh_token is invalid SECRET-fuzz"}`))
	f.Add([]byte(`{"errcode":0}trailing`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var out struct {
			Info struct {
				AppID    string `json:"authorizer_appid"`
				FuncInfo []struct {
					Category struct {
						ID int `json:"id"`
					} `json:"funcscope_category"`
				} `json:"func_info"`
			} `json:"authorization_info"`
			AccessToken string `json:"authorizer_access_token"`
			Refresh     string `json:"authorizer_refresh_token"`
			Total       int    `json:"total_count"`
			List        []struct {
				AppID   string `json:"authorizer_appid"`
				Refresh string `json:"refresh_token"`
			} `json:"list"`
		}
		err := openplatform.DecodeAnswer(body, "/cgi-bin/component/api_query_auth", &out)
		if err == nil {
			return
		}
		var apiErr *wxtoken.APIError
		if !errors.As(err, &apiErr) && !errors.Is(err, wxtoken.ErrMalformedResponse) {
			t.Fatalf("error %v is neither an APIError nor ErrMalformedResponse", err)
		}
		if apiErr != nil && apiErr.Endpoint == "" {
			t.Fatal("APIError without Endpoint")
		}
		if strings.Contains(err.Error(), "SECRET-fuzz") {
			t.Fatalf("error quotes the secret: %v", err)
		}
	})
}

func TestClassification(t *testing.T) {
	for code, want := range map[int]wxtoken.ErrorKind{
		openplatform.CodeClientIPNotRegistered: wxtoken.KindPermanent,
		openplatform.CodeInvalidComponent:      wxtoken.KindPermanent,
		openplatform.CodeRefreshTokenInvalid:   wxtoken.KindPermanent,
		openplatform.CodeTicketExpired:         wxtoken.KindRetryable,
		openplatform.CodeTicketInvalid:         wxtoken.KindRetryable,
		-1:                                     wxtoken.KindRetryable,
	} {
		if got := openplatform.ClassifyForTest(code); got != want {
			t.Errorf("errcode %d: kind %v, want %v", code, got, want)
		}
	}
}
