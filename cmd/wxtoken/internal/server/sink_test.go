package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
)

func newRecorderSink() http.ResponseWriter { return httptest.NewRecorder() }

func httpRequest(t *testing.T, method, path string) *http.Request {
	t.Helper()
	return httptest.NewRequest(method, path, nil)
}

func decodeJSSDK(t *testing.T, a answer) wxtoken.JSSDKConfig {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	var cfg wxtoken.JSSDKConfig
	require.NoError(t, dec.Decode(&cfg))
	return cfg
}
