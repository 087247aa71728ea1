package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// FuzzInvalidateBody sends arbitrary bodies to the invalidate endpoint: an
// answer of a known status and a JSON error body, never a panic, and never
// a fetch for a token the server has not handed out.
func FuzzInvalidateBody(f *testing.F) {
	f.Add([]byte(`{"rejected":"x"}`))
	f.Add([]byte(`{"rejected":1}`))
	f.Add([]byte(`{"rejected":"x","rejected":"y"}`))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(`[]`))
	h := start(f, nil).srv.Handler() // one server for every input
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/credentials/shop/invalidate", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+shopKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusTooManyRequests, http.StatusBadGateway:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	})
}
