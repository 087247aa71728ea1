package wxtoken

import (
	"bytes"
	"encoding/json"

	"io"
	"net/http"
)

// Business APIs answer errors in the body, with HTTP 200:
// {"errcode":40001,"errmsg":"invalid credential ..."}. CheckBody and
// CheckResponse turn such an answer into an *APIError that says what it means
// there: for 40001, 40014 and 42001 a rejected token (IsTokenRejected, not
// IsPermanent: report it with Invalidate and retry once), for -1 and 45011 a
// retryable one, for anything else the API's own error (KindBusiness).

// maxBusinessErrorBody caps how much of a response CheckResponse reads: an
// errcode answer is well under a kilobyte, and a large body is data.
const maxBusinessErrorBody = 64 << 10

// CheckBody returns nil when body is not a business API error (no errcode,
// errcode 0, or not a JSON object), and otherwise an *APIError with Kind set.
func CheckBody(body []byte) error {
	var answer struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if checkUniqueKeys(body) != nil || json.Unmarshal(body, &answer) != nil ||
		answer.ErrCode == nil || *answer.ErrCode == 0 {
		return nil
	}
	code := *answer.ErrCode
	return &APIError{Code: code, Msg: upstreamText(nil, answer.ErrMsg, maxErrMsgLen), Kind: businessKind(code)}
}

// CheckResponse is CheckBody for a response: it reads a small body that may
// be an errcode answer (JSON, plain text or unlabelled, not compressed, at
// most 64 KiB) and puts it back, readable from its first byte, so the caller
// can decode it as usual. Other responses (images, files, large bodies) are
// left unread, and nil is returned. The error names resp's path in Endpoint.
func CheckResponse(resp *http.Response) error {
	if resp == nil || !mayBeRejection(resp) {
		return nil
	}
	buf, err := readAtMost(resp.Body, maxBusinessErrorBody, resp.ContentLength)
	orig := resp.Body
	if err != nil || len(buf) > maxBusinessErrorBody {
		var rest io.Reader = orig
		if err != nil {
			rest = errReader{err}
		}
		resp.Body = &joinedBody{Reader: io.MultiReader(bytes.NewReader(buf), rest), Closer: orig}
		return nil
	}
	resp.Body = newReadBody(buf, orig)
	err = CheckBody(buf)
	if apiErr, ok := err.(*APIError); ok && resp.Request != nil {
		apiErr.Endpoint = resp.Request.URL.Path
	}
	return err
}

// businessKind classifies a business API's errcode.
func businessKind(code int) ErrorKind {
	switch {
	case isRejectionCode(code):
		return KindTokenRejected
	case code == CodeSystemBusy || code == CodeMinuteQuota:
		return KindRetryable
	}
	return KindBusiness
}
