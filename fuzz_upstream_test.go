package wxtoken

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fuzzToken is the token the fuzzed upstream issues: {T} in a body.
const fuzzToken = "ISSUED-fuzz-T0KEN-7Qx"

// fuzzSecret has characters that each escaping spells differently.
const fuzzSecret = `fuzz-s3cr3t<"/+=&>`

// expandPlaceholders writes the secret into s wherever s says: {S} as it is,
// {Q} query-escaped, {J} JSON-escaped; and, when withToken, {T} the token.
func expandPlaceholders(s string, withToken bool) string {
	j, _ := json.Marshal(fuzzSecret)
	r := []string{"{S}", fuzzSecret, "{Q}", url.QueryEscape(fuzzSecret), "{J}", strings.Trim(string(j), `"`)}
	if withToken {
		r = append(r, "{T}", fuzzToken)
	} else {
		s = strings.ReplaceAll(s, fuzzToken, "") // the token is issued in the body only
	}
	return strings.NewReplacer(r...).Replace(s)
}

// FuzzUpstreamAnswers has the token endpoints answer with a random status,
// status line, header and body, into which the secret and the issued token
// are spliced, and checks that no level of the error's chain quotes the
// secret in any spelling, nor the token the answer issued.
func FuzzUpstreamAnswers(f *testing.F) {
	f.Add(200, "200 OK", "Content-Type", "application/json", `{"access_token":"{T}","expires_in":7200}`, false)
	f.Add(200, "200 OK", "", "", `{"errcode":40013,"errmsg":"bad request secret={S} {T}","access_token":"{T}"}`, false)
	f.Add(200, "200 OK", "", "", `{"errcode":-1,"errmsg":"{\"secret\":\"{J}\"} {Q}"}`, true)
	f.Add(502, "502 proxy error for /cgi-bin/token?secret={Q}", "Via", "{S}", `<html>{S}</html>`, false)
	f.Add(302, "302 Found", "Location", "https://evil.example/?s={S}", `{"access_token":"{T}","expires_in":7200}`, true)
	f.Add(307, "307 Temporary Redirect", "Location", "http://[::1%{S}/", ``, false)
	f.Add(301, "301 x", "Location", "%{Q}", ``, true)
	f.Add(200, "200 OK", "", "", `{"errcode":40001,"errcode":0,"access_token":"{T}","expires_in":7200}`, false)
	f.Add(200, "200 OK", "", "", "{\"access_token\":\"{T}\xff\",\"expires_in\":7200}", false)
	f.Add(200, "200 OK", "", "", `{"access_token":"{T}","expires_in":-5}`, true)
	f.Add(429, "429 {J}", "Retry-After", "1", `{"errmsg":"{S}"}`, false)
	f.Fuzz(func(t *testing.T, code int, status, hkey, hval, body string, stable bool) {
		if code < 100 || code > 999 {
			return
		}
		header := http.Header{}
		if hkey != "" {
			header.Set(hkey, expandPlaceholders(hval, false))
		}
		answer := expandPlaceholders(body, true)
		rt := transportFunc(func(req *http.Request) (*http.Response, error) {
			closeRequestBody(req)
			return &http.Response{
				Status: expandPlaceholders(status, false), StatusCode: code,
				Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: header, ContentLength: -1,
				Body: io.NopCloser(strings.NewReader(answer)), Request: req,
			}, nil
		})
		src := newOfficialSource(testAppID, fuzzSecret, stable)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		tok, err := src.Fetch(ctx, FetchRequest{HTTPClient: redirectSafe(&http.Client{Transport: rt})})
		if ctx.Err() != nil {
			t.Fatalf("the fetch hung: %v", err)
		}
		if err == nil {
			if tok.Validate() != nil {
				t.Fatalf("an invalid token was accepted: %q", tok.AccessToken)
			}
			return
		}
		for _, level := range chainLevels(err) {
			text := level.Error()
			for _, s := range spellings(fuzzSecret) {
				if strings.Contains(text, s) {
					t.Fatalf("a level (%T) quotes the secret: %q", level, text)
				}
			}
			if strings.Contains(text, fuzzToken) {
				t.Fatalf("a level (%T) quotes the issued token: %q", level, text)
			}
		}
	})
}
