package wxtoken

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeTokenResponse(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, err := decodeTokenResponse([]byte(`{"access_token":"ACCESS","expires_in":7200}`), created)
	require.NoError(t, err)
	assert.Equal(t, Token{AccessToken: "ACCESS", ExpiresIn: 7200, CreateTime: created}, tok)

	_, err = decodeTokenResponse([]byte(`{"errcode":40013,"errmsg":"invalid appid"}`), created)
	assert.Equal(t, &APIError{Code: 40013, Msg: "invalid appid", Kind: KindPermanent}, err)

	long := strings.Repeat("x", 1000)
	_, err = decodeTokenResponse([]byte(`{"errcode":-1,"errmsg":"`+long+`"}`), created)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Len(t, apiErr.Msg, maxErrMsgLen+3, "errmsg is truncated")
}

// FuzzDecodeTokenResponse feeds arbitrary bodies to the token decoder: it must
// never panic, and it returns either a valid token or a classified error of
// bounded size, which therefore cannot quote a long body.
func FuzzDecodeTokenResponse(f *testing.F) {
	for _, seed := range []string{
		`{"access_token":"ACCESS","expires_in":7200}`,
		`{"errcode":40164,"errmsg":"invalid ip 1.2.3.4, not in whitelist rid: 1"}`,
		`{"errcode":0,"access_token":"A","expires_in":1}`,
		`{"access_token":"SECRETISH","expires_in":-1}`,
		`{"access_token":"SECRETISH","expires_in":"7200"}`,
		`{"access_token":"SECRETISH`,
		`<html>502 Bad Gateway</html>`,
		``, `null`, `[]`, `{}`, `{"expires_in":1e30}`,
	} {
		f.Add([]byte(seed))
	}
	created := time.Unix(1700000000, 0).UTC()
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := decodeTokenResponse(body, created)
		if err == nil {
			require.NoError(t, tok.Validate())
			require.Equal(t, created, tok.CreateTime)
			return
		}
		var apiErr *APIError
		if !errors.As(err, &apiErr) {
			require.ErrorIs(t, err, ErrMalformedResponse)
			// Only the body's size and the kind of problem are told, never its content.
			require.Less(t, len(err.Error()), 200)
		}
	})
}
