package openplatform_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
)

// fileStore is a FileStore in a folder of t's; deleteKey removes a key by
// hand, as an operator might.
func fileStore(t *testing.T) (*wxtoken.FileStore, func(key string)) {
	t.Helper()
	dir := t.TempDir()
	fs, err := wxtoken.NewFileStore(dir)
	require.NoError(t, err)
	return fs, func(key string) { require.NoError(t, os.Remove(filepath.Join(dir, key+".json"))) }
}

func readAll(t *testing.T, req *http.Request) string {
	t.Helper()
	b, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	return string(b)
}

// serve delivers req with body to h and returns the status.
func serve(t *testing.T, h http.Handler, req *http.Request, body string) int {
	t.Helper()
	req.Body = io.NopCloser(strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}
