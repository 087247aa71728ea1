package wxtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxRequests bounds how many business requests the fake remembers.
const maxRequests = 1000

// Request is a business call as the fake received it.
type Request struct {
	Method  string
	Path    string
	Query   url.Values // access_token included
	Header  http.Header
	Body    []byte // exactly the bytes received
	Errcode int    // what the fake answered: 0 for success
	Time    time.Time
}

// Requests returns the business calls received, oldest first (at most the
// last 1000), including rejected ones. The slice is a copy.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// LastBody returns the body of the latest business call, or nil if none.
func (s *Server) LastBody() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return nil
	}
	return s.requests[len(s.requests)-1].Body
}

// serveBusiness checks the access_token the way WeChat's business APIs do,
// then answers the endpoint. Errors are JSON sent as text/plain, as many
// WeChat endpoints send them; WeCom's message/send checks a WeCom token and
// labels its JSON as WeCom does.
func (s *Server) serveBusiness(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(r.Body, maxBody))
	}
	if s.cfg.onBusiness != nil {
		s.cfg.onBusiness(r, body)
	}
	code := s.businessCode(r, body)
	s.record(r, body, code)
	if r.URL.Path == PathWeComSend {
		if code != CodeOK {
			s.rejectWeCom(w, r, code)
			return
		}
		writeJSON(w, contentWeCom, errorBody{Errcode: CodeOK, Errmsg: "ok"})
		return
	}
	if code != CodeOK {
		s.reject(w, contentText, code)
		return
	}
	switch r.URL.Path {
	case PathCallbackIP:
		writeJSON(w, contentText, map[string][]string{"ip_list": {"127.0.0.1"}})
	case PathCustomSend:
		writeJSON(w, contentText, errorBody{Errcode: CodeOK, Errmsg: "ok"})
	case PathMediaGet:
		serveMedia(w, r.URL.Query().Get("media_id"))
	}
}

// businessCode returns the errcode for a business call: the token first,
// then the method, then the body.
func (s *Server) businessCode(r *http.Request, body []byte) int {
	if r.URL.Path == PathWeComSend {
		return s.wecomSendCode(r)
	}
	if code := s.CheckToken(r.URL.Query().Get("access_token")); code != CodeOK {
		return code
	}
	switch r.URL.Path {
	case PathCustomSend:
		if r.Method != http.MethodPost {
			return CodeRequirePOST
		}
		if !json.Valid(body) || !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
			return CodeDataFormat
		}
	case PathCallbackIP:
		if r.Method != http.MethodGet {
			return CodeRequireGET
		}
	case PathMediaGet:
		if r.Method != http.MethodGet {
			return CodeRequireGET
		}
		if r.URL.Query().Get("media_id") == "" {
			return CodeInvalidMediaID
		}
	}
	return CodeOK
}

func (s *Server) record(r *http.Request, body []byte, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) >= maxRequests {
		s.requests = append(s.requests[:0], s.requests[1:]...)
	}
	s.requests = append(s.requests, Request{
		Method:  r.Method,
		Path:    r.URL.Path,
		Query:   r.URL.Query(),
		Header:  r.Header.Clone(),
		Body:    body,
		Errcode: code,
		Time:    s.cfg.now(),
	})
}

// MediaContent returns the bytes GET /cgi-bin/media/get serves for mediaID:
// 256 KiB that start like a JPEG file and depend on mediaID, so a test can
// check a download arrived whole and unaltered.
func MediaContent(mediaID string) []byte {
	const size = 256 << 10
	b := make([]byte, size)
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00})
	// A cheap deterministic stream seeded by mediaID (FNV-1a, then xorshift).
	x := uint64(14695981039346656037)
	for i := 0; i < len(mediaID); i++ {
		x = (x ^ uint64(mediaID[i])) * 1099511628211
	}
	for i := 11; i < size-2; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	b[size-2], b[size-1] = 0xFF, 0xD9
	return b
}

func serveMedia(w http.ResponseWriter, mediaID string) {
	b := MediaContent(mediaID)
	h := w.Header()
	h.Set("Content-Type", "image/jpeg")
	h.Set("Content-Disposition", `attachment; filename="`+url.PathEscape(mediaID)+`.jpg"`)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
