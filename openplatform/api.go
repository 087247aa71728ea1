package openplatform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wxtoken/wxtoken"
)

// maxAnswer caps an answer read from WeChat. A page of 500 authorizers is
// about 100 KiB; anything near this cap is not an answer.
const maxAnswer = 1 << 20

// maxErrMsg bounds the errmsg kept in an APIError.
const maxErrMsg = 256

// call POSTs body as JSON to base+path?query and decodes the answer into out.
// An errcode becomes a *wxtoken.APIError classified by kind, with Endpoint
// set. No error quotes any of secrets (the component secret, tokens).
func call(ctx context.Context, hc *http.Client, base, path string, query url.Values, body, out any,
	kind func(int) wxtoken.ErrorKind, secrets ...string) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("openplatform: %s: encode the request: %w", path, err)
	}
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(raw))
	if err != nil {
		return wxtoken.ScrubError(fmt.Errorf("openplatform: %s: %w", path, err), secrets...)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return wxtoken.ScrubError(fmt.Errorf("openplatform: %s: %w", path, err), secrets...)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return wxtoken.ScrubError(fmt.Errorf("openplatform: %s: reading the answer: %w", path, err), secrets...)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &wxtoken.StatusError{StatusCode: resp.StatusCode, Status: cleanText(resp.Status, secrets)}
	}
	return decodeAnswer(answer, path, out, kind, secrets)
}

// decodeAnswer decodes one of WeChat's JSON answers into out, or its errcode
// into a *wxtoken.APIError. Anything but one UTF-8 JSON object of at most
// maxAnswer bytes is wxtoken.ErrMalformedResponse; the error never quotes
// the answer, which may hold tokens.
func decodeAnswer(answer []byte, path string, out any, kind func(int) wxtoken.ErrorKind, secrets []string) error {
	if len(answer) > maxAnswer || !utf8.Valid(answer) {
		return fmt.Errorf("%w: %s: %d bytes that are not a UTF-8 answer within %d bytes",
			wxtoken.ErrMalformedResponse, path, len(answer), maxAnswer)
	}
	var head struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if err := strictDecode(answer, &head); err != nil {
		return fmt.Errorf("%w: %s: %s", wxtoken.ErrMalformedResponse, path, problem(err))
	}
	if head.ErrCode != 0 {
		return &wxtoken.APIError{Code: head.ErrCode, Msg: cleanText(head.ErrMsg, secrets), Endpoint: path,
			Kind: kind(head.ErrCode)}
	}
	if err := strictDecode(answer, out); err != nil {
		return fmt.Errorf("%w: %s: %s", wxtoken.ErrMalformedResponse, path, problem(err))
	}
	return nil
}

// strictDecode decodes exactly one JSON value from data into v.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// problem describes a decoding error without quoting the input.
func problem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return "a field has the wrong type"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "truncated"
	}
	return "not one JSON object"
}

// cleanText makes upstream text fit to keep in an error: scrubbed of
// secrets, non-printable characters replaced, at most maxErrMsg bytes.
func cleanText(s string, secrets []string) string {
	s = wxtoken.ScrubText(s, secrets...)
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || (!unicode.IsPrint(r) && r != ' ') {
			return '?'
		}
		return r
	}, s)
	if len(s) > maxErrMsg {
		cut := maxErrMsg
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// redirectSafe copies hc (nil: a client with wxtoken's default timeout) so
// that it never follows a redirect, which would carry the secret elsewhere.
func redirectSafe(hc *http.Client) *http.Client {
	c := &http.Client{Timeout: wxtoken.DefaultHTTPTimeout}
	if hc != nil {
		copied := *hc
		c = &copied
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}
