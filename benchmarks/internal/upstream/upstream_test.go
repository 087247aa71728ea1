package upstream

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wxtoken/wxtoken/wxtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type answer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	ErrCode     int    `json:"errcode"`
}

func get(t *testing.T, url string) answer {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var a answer
	require.NoError(t, json.Unmarshal(body, &a), "body %q", body)
	return a
}

func TestOverridesExpiresInAndDelays(t *testing.T) {
	s := Start()
	defer s.Close()
	defer http.DefaultClient.CloseIdleConnections()
	good := s.URL() + wxtest.PathToken + "?grant_type=client_credential&appid=" +
		wxtest.DefaultAppID + "&secret=" + wxtest.DefaultSecret

	assert.Equal(t, int64(7200), get(t, good).ExpiresIn, "no override: the fake's own lifetime")

	s.SetExpiresIn(2)
	s.SetDelay(20 * time.Millisecond)
	t0 := time.Now()
	a := get(t, good)
	assert.GreaterOrEqual(t, time.Since(t0), 20*time.Millisecond)
	assert.Equal(t, int64(2), a.ExpiresIn)
	assert.Zero(t, s.Check(a.AccessToken), "the token itself stays valid at the fake")

	bad := get(t, s.URL()+wxtest.PathToken+"?grant_type=client_credential&appid="+wxtest.DefaultAppID+"&secret=wrong")
	assert.Equal(t, answer{ErrCode: wxtest.CodeInvalidCredential}, bad, "error answers pass unchanged")
	assert.Equal(t, 3, s.Fetches())
}
