package wxtoken

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

func TestDecoderRefusesDuplicateKeys(t *testing.T) {
	for name, body := range map[string]string{
		"errcode twice":          `{"errcode":40001,"errcode":0,"access_token":"T0KEN","expires_in":7200}`,
		"token twice":            `{"access_token":"A","access_token":"B","expires_in":7200}`,
		"escaped spelling":       `{"errcode":40001,"err\u0063ode":0,"access_token":"T0KEN","expires_in":7200}`,
		"other case":             `{"ErrCode":40001,"errcode":0,"access_token":"T0KEN","expires_in":7200}`,
		"unknown key twice":      `{"access_token":"T0KEN","expires_in":7200,"x":1,"x":2}`,
		"nested object":          `{"access_token":"T0KEN","expires_in":7200,"extra":{"a":1,"a":2}}`,
		"object inside an array": `{"access_token":"T0KEN","expires_in":7200,"list":[1,{"a":1,"A":2}]}`,
	} {
		_, err := decodeTokenResponse([]byte(body), testNow)
		require.ErrorIs(t, err, ErrMalformedResponse, name)
		assert.Contains(t, err.Error(), "duplicate key", name)
		assert.NotContains(t, err.Error(), "T0KEN", name)
		var apiErr *APIError
		assert.False(t, errors.As(err, &apiErr), name)
	}
	_, err := decodeTokenResponse([]byte(`{"errcode":40001,"errcode":0}`), testNow)
	assert.EqualError(t, err, `wxtoken: malformed token response: duplicate key "errcode"`)
}

func TestCheckUniqueKeys(t *testing.T) {
	for _, ok := range []string{
		`{}`, `[]`, `"a"`, `{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}],"c":[[{"a":1}]]}`,
		`{"a":[],"b":{},"c":null,"d":"a"}`, `{"k":"k","v":["k","k"]}`,
		`not json at all`, `{"a":1,`, // left to the decoder
	} {
		assert.NoError(t, checkUniqueKeys([]byte(ok)), ok)
	}
	for _, dup := range []string{
		`{"a":1,"a":1}`, `{"a":{},"a":[]}`, `{"x":{"b":[],"b":1}}`, `[{"k":1,"K":1}]`,
		`{"expires_in":1,"expireſ_in":2}`, // ſ folds to s, as encoding/json matches it
	} {
		assert.Error(t, checkUniqueKeys([]byte(dup)), dup)
	}
}

func TestDecoderRefusesInvalidUTF8(t *testing.T) {
	for _, body := range []string{
		"{\"access_token\":\"T0KEN\xff\",\"expires_in\":7200}",
		"{\"errcode\":40013,\"errmsg\":\"bad \xc3\"}",
	} {
		_, err := decodeTokenResponse([]byte(body), testNow)
		require.ErrorIs(t, err, ErrMalformedResponse)
		assert.Contains(t, err.Error(), "not UTF-8")
	}
}

// A hostile upstream cannot smuggle line breaks or terminal escapes through
// a token: every byte outside WeChat's printable alphabet makes it malformed.
func TestDecoderRefusesTokensOutsidePrintableASCII(t *testing.T) {
	for _, tok := range []string{`T0KEN\n`, `T0KEN\u001b[2J`, `T0 KEN`, `T0KEN\u00e9`, `T0KEN\ud800`, `T0KEN\u0000`} {
		_, err := decodeTokenResponse([]byte(`{"access_token":"`+tok+`","expires_in":7200}`), testNow)
		require.ErrorIs(t, err, ErrMalformedResponse, tok)
		require.ErrorIs(t, err, ErrInvalidToken, tok)
		assert.NotContains(t, err.Error(), "T0KEN")
	}
}

func TestPlainHTTPBaseURLWarnsOnce(t *testing.T) {
	cases := map[string]int{
		"http://api.example.com":      1,
		"http://10.0.0.7:8080":        1,
		"https://api.weixin.qq.com":   0,
		"http://127.0.0.1:8080":       0,
		"http://localhost:8080":       0,
		"http://[::1]:8080":           0,
		"http://wxtest.invalid":       0,
		"http://sidecar.localhost:80": 0,
	}
	for base, warnings := range cases {
		var logs logbuf.Buffer
		up := newUpstream(t, tokens(t))
		up.RegisterResponder("GET", base+"/cgi-bin/token", tokens(t))
		c := newTestClient(t, up, WithBaseURL(base), WithRejectGuard(0),
			WithLogger(logs.Logger(slog.LevelDebug)))
		tok := mustGet(t, c)
		_, err := c.Invalidate(t.Context(), tok) // a second fetch
		require.NoError(t, err)
		got := logs.Warnings()
		require.Len(t, got, warnings, base)
		if warnings > 0 {
			assert.Contains(t, got[0], "plain http", base)
			assertNoSpelling(t, logs.String(), testSecret)
		}
	}
}
