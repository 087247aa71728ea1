package wxtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/msgcrypt"
)

// platformReply holds the fields the Open Platform endpoints answer with.
type platformReply struct {
	Errcode        int    `json:"errcode"`
	ComponentToken string `json:"component_access_token"`
	AccessToken    string `json:"authorizer_access_token"`
	Refresh        string `json:"authorizer_refresh_token"`
	Total          int    `json:"total_count"`
	List           []struct {
		AppID   string `json:"authorizer_appid"`
		Refresh string `json:"refresh_token"`
	} `json:"list"`
	Info struct {
		AppID   string `json:"authorizer_appid"`
		Refresh string `json:"authorizer_refresh_token"`
	} `json:"authorization_info"`
}

func (f *fake) platform(t *testing.T, path, ctok string, body map[string]any) platformReply {
	t.Helper()
	q := url.Values{}
	if ctok != "" {
		q.Set("component_access_token", ctok)
	}
	b, err := json.Marshal(body)
	require.NoError(t, err)
	resp, out := f.do(t, http.MethodPost, path, q, string(b))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var r platformReply
	require.NoError(t, json.Unmarshal(out, &r), "body %s", out)
	return r
}

func (f *fake) componentToken(t *testing.T, ticket string) platformReply {
	t.Helper()
	return f.platform(t, PathComponentToken, "", map[string]any{"component_appid": DefaultComponentAppID,
		"component_appsecret": DefaultComponentSecret, "component_verify_ticket": ticket})
}

func TestComponentTokenNeedsCurrentTicket(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		assert.Equal(t, CodeTicketInvalid, f.componentToken(t, "never-pushed").Errcode)
		first, err := f.NewVerifyTicket(DefaultComponentAppID)
		require.NoError(t, err)
		assert.Zero(t, f.componentToken(t, first.VerifyTicket).Errcode)

		f.clk.Advance(time.Minute)
		second, err := f.NewVerifyTicket(DefaultComponentAppID)
		require.NoError(t, err)
		assert.Zero(t, f.componentToken(t, first.VerifyTicket).Errcode, "the previous ticket, just after a push")
		f.clk.Advance(VerifyTicketInterval)
		assert.Equal(t, CodeTicketInvalid, f.componentToken(t, first.VerifyTicket).Errcode, "superseded")
		assert.Zero(t, f.componentToken(t, second.VerifyTicket).Errcode)
		f.clk.Advance(VerifyTicketLifetime)
		assert.Equal(t, CodeTicketExpired, f.componentToken(t, second.VerifyTicket).Errcode)

		wrong := f.platform(t, PathComponentToken, "", map[string]any{"component_appid": DefaultComponentAppID,
			"component_appsecret": "wrong", "component_verify_ticket": second.VerifyTicket})
		assert.Equal(t, CodeInvalidCredential, wrong.Errcode)
		assert.Equal(t, 7, f.PlatformCalls(PathComponentToken))
	})
}

func TestRefreshTokenRotationAndList(t *testing.T) {
	both(t, func(t *testing.T, f *fake) {
		ev, err := f.NewVerifyTicket(DefaultComponentAppID)
		require.NoError(t, err)
		ctok := f.componentToken(t, ev.VerifyTicket).ComponentToken
		var codes []string
		for i := range 3 {
			auth, err := f.Authorize(DefaultComponentAppID, fmt.Sprintf("wx%016d", i))
			require.NoError(t, err)
			codes = append(codes, auth.AuthorizationCode)
		}
		q := f.platform(t, PathQueryAuth, ctok, map[string]any{"component_appid": DefaultComponentAppID,
			"authorization_code": codes[0]})
		require.Zero(t, q.Errcode)
		appID, r1 := q.Info.AppID, q.Info.Refresh
		assert.Equal(t, r1, f.CurrentRefreshToken(DefaultComponentAppID, appID))

		exchange := func(refresh string) platformReply {
			return f.platform(t, PathAuthorizerToken, ctok, map[string]any{"component_appid": DefaultComponentAppID,
				"authorizer_appid": appID, "authorizer_refresh_token": refresh})
		}
		r := exchange(r1)
		require.Zero(t, r.Errcode)
		assert.NotEqual(t, r1, r.Refresh, "rotated")
		assert.Equal(t, CodeOK, f.CheckToken(r.AccessToken), "business APIs take an authorizer token")
		assert.Equal(t, CodeRefreshTokenInvalid, exchange(r1).Errcode, "the old one is dead")
		assert.Zero(t, exchange(r.Refresh).Errcode)

		page := f.platform(t, PathAuthorizerList, ctok, map[string]any{"component_appid": DefaultComponentAppID,
			"offset": 1, "count": 500})
		require.Zero(t, page.Errcode)
		assert.Equal(t, 3, page.Total)
		assert.Len(t, page.List, 2)
		tooMany := f.platform(t, PathAuthorizerList, ctok, map[string]any{"component_appid": DefaultComponentAppID,
			"offset": 0, "count": 501})
		assert.Equal(t, CodeInvalidArgs, tooMany.Errcode)

		_, err = f.Unauthorize(DefaultComponentAppID, appID)
		require.NoError(t, err)
		assert.Equal(t, CodeNotAuthorized, exchange(f.CurrentRefreshToken(DefaultComponentAppID, appID)).Errcode)
	}, WithRefreshTokenRotation())
}

func TestEventRequestDecrypts(t *testing.T) {
	f := newLocalFake(t)
	ev, err := f.NewVerifyTicket(DefaultComponentAppID)
	require.NoError(t, err)
	req, err := f.EventRequest("http://platform.invalid/events", ev)
	require.NoError(t, err)
	env, err := msgcrypt.ReadEnvelope(req.Body)
	require.NoError(t, err)
	assert.Equal(t, DefaultComponentAppID, env.AppID)
	c, err := msgcrypt.New(DefaultComponentToken, DefaultComponentAESKey, DefaultComponentAppID)
	require.NoError(t, err)
	q := req.URL.Query()
	plain, err := c.Decrypt(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), env.Encrypt)
	require.NoError(t, err)
	assert.Equal(t, string(ev.XML()), string(plain))
	assert.Equal(t, "aes", q.Get("encrypt_type"))
}
