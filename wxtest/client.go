package wxtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// ErrDropped is matched (errors.Is) by the error the in-process Transport
// returns when a FaultDrop closes the "connection".
var ErrDropped = errors.New("wxtest: connection dropped")

// Client returns an http.Client whose requests are served by s in-process,
// through ServeHTTP, without sockets or goroutines. Requests may use any host;
// HandlerURL is the conventional one. It works inside a testing/synctest
// bubble, and for NewServer as well as NewHandler.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: s.Transport()}
}

// Transport returns the http.RoundTripper behind Client, for wrapping (for
// example as the Base of another RoundTripper).
func (s *Server) Transport() http.RoundTripper { return inProcess{s} }

type inProcess struct{ s *Server }

// RoundTrip serves req through ServeHTTP and turns what was written into a
// response. FaultTruncate yields a body whose read fails with
// io.ErrUnexpectedEOF and FaultDrop an error matching ErrDropped and io.EOF;
// a request whose context ends first fails with the context's error.
func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("wxtest: read request body: %w", err)
		}
		body = b
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in := req.Clone(ctx)
	in.Body = io.NopCloser(bytes.NewReader(body))
	in.ContentLength = int64(len(body))
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:1"
	in.Proto, in.ProtoMajor, in.ProtoMinor = "HTTP/1.1", 1, 1
	if in.Host == "" {
		in.Host = req.URL.Host
	}

	rec := &recorder{header: make(http.Header)}
	if err := serve(t.s, rec, in); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return rec.response(req), nil
}

// serve calls ServeHTTP, turning an aborted handler into a dropped connection.
func serve(s *Server, rec *recorder, r *http.Request) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			err = dropError()
		}
	}()
	s.ServeHTTP(rec, r)
	if rec.dropped {
		return dropError()
	}
	return nil
}

func dropError() error { return fmt.Errorf("%w: %w", ErrDropped, io.EOF) }

// recorder is the in-process ResponseWriter.
type recorder struct {
	header      http.Header
	status      int
	body        bytes.Buffer
	dropped     bool
	truncated   bool
	declaredLen int
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// Flush is a no-op: the whole answer is handed over when the handler returns.
func (r *recorder) Flush() {}

func (r *recorder) truncate(h http.Header, partial []byte, declared int) {
	r.header, r.status, r.truncated, r.declaredLen = h, http.StatusOK, true, declared
	r.body.Reset()
	r.body.Write(partial)
}

func (r *recorder) drop() { r.dropped = true }

func (r *recorder) response(req *http.Request) *http.Response {
	status := r.status
	if status == 0 {
		status = http.StatusOK
	}
	resp := &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.header,
		ContentLength: int64(r.body.Len()),
		Request:       req,
	}
	if r.truncated {
		resp.ContentLength = int64(r.declaredLen)
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(r.body.Bytes()), errReader{io.ErrUnexpectedEOF}))
		return resp
	}
	if req.Method == http.MethodHead {
		resp.Body = http.NoBody
		return resp
	}
	resp.Body = io.NopCloser(bytes.NewReader(r.body.Bytes()))
	return resp
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
