package wxtoken

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// printedClient returns a Client holding a token, so that every field a
// printer could reach is filled in.
func printedClient(t *testing.T) *Client {
	t.Helper()
	c := newTestClient(t, newUpstream(t, tokens(t)))
	_, err := c.Get(context.Background())
	require.NoError(t, err)
	return c
}

func TestPrintingAClientShowsNoSecret(t *testing.T) {
	c := printedClient(t)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%20v", "%-20s"} {
		out := fmt.Sprintf(verb, c)
		assertNoSpelling(t, out, testSecret)
		assert.NotContains(t, out, "token-1", verb)
		if verb != "%x" && verb != "%X" {
			assert.Contains(t, out, testAppID, verb)
		}
	}
	assert.Equal(t, "wxtoken.Client{appid: "+testAppID+", key: "+testAppID+"}", fmt.Sprint(c))
	assert.Equal(t, `&wxtoken.Client{appID:"`+testAppID+`", key:"`+testAppID+`"}`, fmt.Sprintf("%#v", c))
	// Inside other values too.
	assertNoSpelling(t, fmt.Sprintf("%+v", struct{ C *Client }{c}), testSecret)
	assertNoSpelling(t, fmt.Sprintf("%#v", []any{c, &Transport{Client: c}}), testSecret)

	var nilClient *Client
	assert.Equal(t, "wxtoken.Client(nil)", fmt.Sprint(nilClient))
}

func TestLoggingAClientShowsNoSecret(t *testing.T) {
	c := printedClient(t)
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("started", "client", c)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("started", "client", c)
	assertNoSpelling(t, text.String(), testSecret)
	assertNoSpelling(t, js.String(), testSecret)
	assert.Contains(t, text.String(), "client.appid="+testAppID+" client.key="+testAppID)
	assert.Contains(t, js.String(), `"client":{"appid":"`+testAppID+`","key":"`+testAppID+`"}`)
}

// TestReflectionReachesNoSecret walks the Client the way reflection-based
// printers (spew, go-cmp's reporter, debuggers' pretty printers) do: through
// every field, exported or not, every pointer, slice, map and interface. It
// must meet the secret in no string. Func values are opaque to such printers.
func TestReflectionReachesNoSecret(t *testing.T) {
	c := printedClient(t)
	require.NoError(t, c.Close()) // so that no goroutine writes what the walk reads
	seen := map[uintptr]bool{}
	var found []string
	var walk func(v reflect.Value, path string, depth int)
	walk = func(v reflect.Value, path string, depth int) {
		if depth > 12 || !v.IsValid() {
			return
		}
		switch v.Kind() {
		case reflect.String:
			if strings.Contains(v.String(), testSecret) {
				found = append(found, path)
			}
		case reflect.Pointer, reflect.Interface:
			if v.IsNil() {
				return
			}
			if v.Kind() == reflect.Pointer {
				if seen[v.Pointer()] {
					return
				}
				seen[v.Pointer()] = true
			}
			walk(v.Elem(), path, depth+1)
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i), path+"."+v.Type().Field(i).Name, depth+1)
			}
		case reflect.Slice, reflect.Array:
			for i := range min(v.Len(), 64) {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(k, path+"{key}", depth+1)
				walk(v.MapIndex(k), path+"{value}", depth+1)
			}
		}
	}
	walk(reflect.ValueOf(c), "Client", 0)
	assert.Empty(t, found, "fields holding the secret")
}
