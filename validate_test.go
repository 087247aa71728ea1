package wxtoken

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tokens are bounded in length and limited to printable ASCII, at the decoder
// of WeChat's answers and, through Validate, in every Store.
func TestValidateBoundsTokenLengthAndAlphabet(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ok := func(s string) Token { return Token{AccessToken: s, ExpiresIn: 7200, CreateTime: created} }

	require.NoError(t, ok(strings.Repeat("A", 512)).Validate(), "WeChat's stated maximum is accepted")
	require.NoError(t, ok(strings.Repeat("A", MaxTokenLen)).Validate())
	require.NoError(t, ok("a-Z_0.9~!*").Validate())

	for name, s := range map[string]string{
		"too long":       strings.Repeat("A", MaxTokenLen+1),
		"60 KB":          strings.Repeat("A", 60<<10),
		"newline":        "ACCESS\nTOKEN",
		"ANSI escape":    "ACCESS\x1b[31mTOKEN",
		"space":          "ACCESS TOKEN",
		"NUL":            "ACCESS\x00",
		"invalid UTF-8":  "ACCESS\xff",
		"non-ASCII text": "ACCESS令牌",
	} {
		err := ok(s).Validate()
		require.ErrorIs(t, err, ErrInvalidToken, name)
		assert.NotContains(t, err.Error(), "ACCESS", "%s: the error does not quote the token", name)
	}

	_, err := decodeTokenResponse([]byte(`{"access_token":"ACCESS\u001b[2J","expires_in":7200}`), created)
	require.ErrorIs(t, err, ErrMalformedResponse)
	_, err = decodeTokenResponse([]byte(`{"access_token":"`+strings.Repeat("A", 60<<10)+`","expires_in":7200}`), created)
	require.ErrorIs(t, err, ErrMalformedResponse)
}
