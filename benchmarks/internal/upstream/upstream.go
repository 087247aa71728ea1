// Package upstream serves the wxtest fake WeChat API on a loopback port for the
// benchmarks, with two knobs the figures need: a delay before every token
// answer, and an override of the expires_in that token answers report.
package upstream

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wxtoken/wxtoken/wxtest"
)

// Server is a wxtest fake behind a loopback HTTP listener. Its methods are
// safe for concurrent use.
type Server struct {
	fake      *wxtest.Server
	http      *httptest.Server
	delay     atomic.Int64 // time.Duration before each token answer
	expiresIn atomic.Int64 // seconds reported to clients; 0 keeps the fake's own
}

// Start serves a fresh fake on 127.0.0.1 with no daily quota, so that many
// benchmark rounds never run into 45009. Close it when done.
func Start() *Server {
	s := &Server{fake: wxtest.NewHandler(wxtest.WithDailyQuota(0))}
	s.http = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the base URL to use in place of https://api.weixin.qq.com.
func (s *Server) URL() string { return s.http.URL }

// Fetches counts the requests that reached /cgi-bin/token so far.
func (s *Server) Fetches() int { return s.fake.TokenCalls() }

// Check returns the errcode a business API would answer for tok now: 0 when
// the fake issued it and it is still valid.
func (s *Server) Check(tok string) int { return s.fake.CheckToken(tok) }

// SetDelay makes every later token request wait d before it is answered.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// SetExpiresIn makes later token answers report sec as expires_in (0: the
// fake's own 7200). The fake itself keeps the token valid for its full
// lifetime; only what the client believes changes, which is what decides when
// the client renews.
func (s *Server) SetExpiresIn(sec int64) { s.expiresIn.Store(sec) }

// Close shuts the listener down.
func (s *Server) Close() {
	s.fake.Close()
	s.http.Close()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != wxtest.PathToken {
		s.fake.ServeHTTP(w, r)
		return
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	sec := s.expiresIn.Load()
	if sec == 0 {
		s.fake.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	s.fake.ServeHTTP(rec, r)
	body := rewriteExpiresIn(rec.Body.Bytes(), sec)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// rewriteExpiresIn replaces expires_in in a successful token answer and leaves
// error answers as they are.
func rewriteExpiresIn(body []byte, sec int64) []byte {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return body
	}
	if _, ok := m["access_token"]; !ok {
		return body
	}
	m["expires_in"] = sec
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(m); err != nil {
		return body
	}
	return bytes.TrimSpace(buf.Bytes())
}
