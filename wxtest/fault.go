package wxtest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is one abnormal answer, made by the Fault... functions and queued with
// Inject or InjectN. The zero Fault serves the request normally.
type Fault struct {
	kind   faultKind
	path   string
	delay  time.Duration
	code   int
	msg    string
	status int
	body   string
}

type faultKind int

const (
	faultNone faultKind = iota
	faultErrcode
	faultStatus
	faultMalformed
	faultTruncate
	faultDrop
)

// FaultErrcode answers {"errcode":code,"errmsg":msg} with HTTP 200, as WeChat
// reports its errors. An empty msg means WeChat's message for code.
func FaultErrcode(code int, msg string) Fault {
	return Fault{kind: faultErrcode, code: code, msg: msg}
}

// FaultStatus answers with an HTTP status and body, as a proxy or gateway in
// front of WeChat might. An empty body means an nginx-style HTML error page.
func FaultStatus(status int, body string) Fault {
	return Fault{kind: faultStatus, status: status, body: body}
}

// FaultDelay serves the request normally after d, or gives up, answering
// nothing, when the request's context ends first. The wait is on a real timer,
// not the WithClock clock: inside testing/synctest it takes no real time.
func FaultDelay(d time.Duration) Fault {
	return Fault{kind: faultNone, delay: d}
}

// FaultMalformed answers HTTP 200 with a JSON content type and a body that is
// not valid JSON.
func FaultMalformed() Fault { return Fault{kind: faultMalformed} }

// FaultTruncate announces a longer Content-Length than it sends, then closes
// the connection, so reading the body fails with io.ErrUnexpectedEOF.
func FaultTruncate() Fault { return Fault{kind: faultTruncate} }

// FaultDrop closes the connection without answering. Through Client or
// Transport the round trip fails instead.
//
// Go's http.Transport silently retries an idempotent request (such as a GET)
// once when a reused keep-alive connection drops before any answer, so a
// single FaultDrop on a GET may go unseen: use a fresh connection, or InjectN(2, ...).
func FaultDrop() Fault { return Fault{kind: faultDrop} }

// On restricts f to requests for path, such as PathToken; by default a fault
// hits whatever request comes next.
func (f Fault) On(path string) Fault {
	f.path = path
	return f
}

// After adds a delay, as FaultDelay's, before f takes effect.
func (f Fault) After(d time.Duration) Fault {
	f.delay = d
	return f
}

type queuedFault struct {
	f    Fault
	left int
}

// Inject makes the next matching request meet f.
func (s *Server) Inject(f Fault) { s.InjectN(1, f) }

// InjectN makes the next n matching requests meet f. Faults apply in the order
// injected: a request meets the earliest one that matches its path.
func (s *Server) InjectN(n int, f Fault) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &queuedFault{f: f, left: n})
}

// ClearFaults drops every fault not yet met.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// PendingFaults returns how many injected faults have not been met yet.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, q := range s.faults {
		n += q.left
	}
	return n
}

func (s *Server) nextFault(path string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.faults {
		if q.f.path != "" && q.f.path != path {
			continue
		}
		q.left--
		if q.left == 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return q.f, true
	}
	return Fault{}, false
}

// applyFault carries f out and reports whether the request is answered (or
// abandoned) so normal serving must not follow.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.delay > 0 && !sleep(r, f.delay) {
		return true
	}
	switch f.kind {
	case faultErrcode:
		msg := f.msg
		if msg == "" {
			msg = errmsg(f.code)
		}
		s.rejectMsg(w, contentJSON, f.code, msg)
	case faultStatus:
		writeStatus(w, f.status, f.body)
	case faultMalformed:
		b := `{"access_token":"wxtest-malformed","expires_in":` // cut off mid-object
		w.Header().Set("Content-Type", contentJSON)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(b))
	case faultTruncate:
		truncate(w)
	case faultDrop:
		drop(w)
	default:
		return false
	}
	return true
}

// sleep waits d and reports whether the request still wants an answer.
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func writeStatus(w http.ResponseWriter, status int, body string) {
	contentType := "text/plain; charset=utf-8"
	if body == "" {
		text := fmt.Sprintf("%d %s", status, http.StatusText(status))
		body = "<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" +
			text + "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
	}
	if strings.HasPrefix(strings.TrimSpace(body), "<") {
		contentType = "text/html"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// faultWriter is implemented by the in-process transport's response writer,
// which cannot be hijacked but can fail the round trip itself.
type faultWriter interface {
	truncate(header http.Header, partial []byte, declared int)
	drop()
}

// truncatedBody is the start of a token answer that never finishes.
const truncatedBody = `{"access_token":"wxtest-truncated-`

func truncate(w http.ResponseWriter) {
	declared := len(truncatedBody) + 100
	if fw, ok := w.(faultWriter); ok {
		h := http.Header{"Content-Type": {contentJSON}, "Content-Length": {strconv.Itoa(declared)}}
		fw.truncate(h, []byte(truncatedBody), declared)
		return
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, buf, err := hj.Hijack(); err == nil {
			defer conn.Close()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
				contentJSON, declared, truncatedBody)
			_ = buf.Flush()
			return
		}
	}
	// A plain ResponseWriter: declare more than is written. net/http then
	// closes the connection after the short body.
	w.Header().Set("Content-Type", contentJSON)
	w.Header().Set("Content-Length", strconv.Itoa(declared))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(truncatedBody))
}

func drop(w http.ResponseWriter) {
	if fw, ok := w.(faultWriter); ok {
		fw.drop()
		return
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // net/http's way to abandon a response
}

// Hold blocks requests until released, so a test can catch one mid-flight:
//
//	h := srv.Hold(wxtest.PathToken)
//	go client.Get(ctx)
//	<-h.Waiting() // the fetch is now inside the fake, before any token is issued
//	...
//	h.Release()
//
// A held request gives up, answering nothing, when its context ends.
type Hold struct {
	s        *Server
	path     string
	release  chan struct{}
	waiting  chan struct{}
	relOnce  sync.Once
	waitOnce sync.Once
	held     int // guarded by s.mu
}

// Hold starts holding every request for path ("" for every path) that
// arrives from now until Release. After Close it holds nothing.
func (s *Server) Hold(path string) *Hold {
	h := &Hold{s: s, path: path, release: make(chan struct{}), waiting: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		h.relOnce.Do(func() { close(h.release) })
		return h
	}
	s.holds = append(s.holds, h)
	return h
}

// Waiting returns a channel closed once a request is being held.
func (h *Hold) Waiting() <-chan struct{} { return h.waiting }

// Held returns how many requests are being held right now.
func (h *Hold) Held() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.held
}

// Release lets every held request go on and stops holding. It is idempotent.
func (h *Hold) Release() {
	h.relOnce.Do(func() { close(h.release) })
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	for i, x := range h.s.holds {
		if x == h {
			h.s.holds = append(h.s.holds[:i], h.s.holds[i+1:]...)
			break
		}
	}
}

// waitHolds blocks r on every Hold for its path and reports whether r still
// wants an answer.
func (s *Server) waitHolds(r *http.Request) bool {
	s.mu.Lock()
	var mine []*Hold
	for _, h := range s.holds {
		if h.path == "" || h.path == r.URL.Path {
			h.held++
			mine = append(mine, h)
		}
	}
	s.mu.Unlock()
	ok := true
	for _, h := range mine {
		h.waitOnce.Do(func() { close(h.waiting) })
		if ok {
			select {
			case <-h.release:
			case <-r.Context().Done():
				ok = false
			}
		}
		s.mu.Lock()
		h.held--
		s.mu.Unlock()
	}
	return ok
}

func (s *Server) releaseAll() {
	s.mu.Lock()
	holds := append([]*Hold(nil), s.holds...)
	s.mu.Unlock()
	for _, h := range holds {
		h.Release()
	}
}
