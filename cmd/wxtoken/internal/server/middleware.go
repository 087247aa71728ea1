package server

import (
	"log/slog"
	"net/http"
	"time"
)

// recorder is the ResponseWriter the middleware hands on: it remembers the
// status, the size and the client, for the metrics and the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
	client string // set once the bearer key is known
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument counts and times every request of rt, and logs it: the route,
// the credential's name, the client's name, the status, never a header,
// a query or a body (they hold keys, tokens and users' page URLs).
func (s *Server) instrument(rt route, next func(w *recorder, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &s.metrics.routes[rt]
		st.inFlight.Add(1)
		rec := &recorder{ResponseWriter: w}
		defer func() {
			st.inFlight.Add(-1)
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			d := time.Since(start)
			s.metrics.observeRequest(rt, rec.status, d)
			if s.access != nil {
				s.access.LogAttrs(r.Context(), slog.LevelInfo, "request",
					slog.String("route", rt.String()), slog.String("method", r.Method),
					slog.String("credential", credentialLabel(r, rt)), slog.String("client", rec.client),
					slog.Int("status", rec.status), slog.Int("bytes", rec.bytes),
					slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("remote", r.RemoteAddr))
			}
		}()
		next(rec, r)
	})
}

// credentialLabel is the credential a request named, when it is one the
// configuration knows the shape of (a name of the safe alphabet).
func credentialLabel(r *http.Request, rt route) string {
	if rt != routeCredential && rt != routeInvalidate && rt != routeJSSDK {
		return ""
	}
	return safeName(r.PathValue("name"))
}
