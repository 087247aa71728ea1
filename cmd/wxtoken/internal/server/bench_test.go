package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchClients is how many clients the load benchmark runs at once.
const benchClients = 64

// BenchmarkServeCredentials measures GET /v1/credentials/{name} through the
// whole handler stack and the configured http.Server (keys, rate limit,
// metrics, access log formatted to a discarding handler), on loopback, by
// 64 keep-alive Go clients: requests per second, and the p50 and p99 of
// each request's latency.
//
//	go test -run '^$' -bench ServeCredentials -benchtime 200000x ./cmd/wxtoken/internal/server/
func BenchmarkServeCredentials(b *testing.B) {
	f := start(b, func(c *Config) {
		cl := c.Clients["billing"]
		cl.RateLimit = RateLimitConfig{PerSecond: maxRate, Burst: maxBurst}
		c.Clients["billing"] = cl
	})
	// The access log formatted as in production, written nowhere: the
	// benchmark measures the server, not the terminal.
	f.srv.access = slog.New(slog.NewTextHandler(io.Discard, nil))
	loadTest(b, f.srv.Handler(), f.srv.HTTPServer(), "/v1/credentials/shop", shopKey)
}

// BenchmarkServeBaseline is the floor on the same machine: net/http with a
// handler that writes a constant answer of the same size, under the same
// 64 clients.
func BenchmarkServeBaseline(b *testing.B) {
	body := []byte(`{"access_token":"wxtest-0123456789abcdef0123456789abcdef","expires_in":7199,"expires_at":"2030-01-01T00:00:00Z"}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = headerJSON
		_, _ = w.Write(body)
	})
	loadTest(b, h, &http.Server{}, "/", "")
}

// loadTest runs b.N GETs of path by benchClients keep-alive clients against
// h served by hs on loopback, and reports req/s, p50, p99 and CPU per request.
func loadTest(b *testing.B, h http.Handler, hs *http.Server, path, key string) {
	ts := httptest.NewUnstartedServer(h)
	hs.Handler = h
	ts.Config = hs
	ts.Start()
	defer ts.Close()
	url := ts.URL + path
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxIdleConns: benchClients}}
	defer hc.CloseIdleConnections()
	get := func() error {
		req, _ := http.NewRequest("GET", url, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return &httpStatus{resp.StatusCode}
		}
		return nil
	}
	require.NoError(b, get()) // warm: the one fetch, and a connection

	latencies := make([][]time.Duration, benchClients)
	var wg sync.WaitGroup
	var failed error
	var once sync.Once
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for i := range benchClients {
		n := b.N / benchClients
		if i < b.N%benchClients {
			n++
		}
		wg.Go(func() {
			lat := make([]time.Duration, 0, n)
			for range n {
				t0 := time.Now()
				if err := get(); err != nil {
					once.Do(func() { failed = err })
					return
				}
				lat = append(lat, time.Since(t0))
			}
			latencies[i] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	require.NoError(b, failed)
	all := slices.Concat(latencies...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	// CPU time per request, server and clients together: what the machine's
	// load from other processes does not change much.
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/req")
	b.ReportMetric(0, "ns/op")
}

type httpStatus struct{ code int }

func (e *httpStatus) Error() string { return http.StatusText(e.code) }

// discardWriter is a ResponseWriter that keeps nothing: what the handler
// stack costs without the network.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkServeHandler is the server's own cost per cached credential:
// routing, the key's hash and constant-time compare, the bucket, the
// metrics, the answer, and the access log formatted to a discarding handler.
//
//	go test -run '^$' -bench ServeHandler -benchmem ./cmd/wxtoken/internal/server/
func BenchmarkServeHandler(b *testing.B) {
	f := start(b, func(c *Config) {
		cl := c.Clients["billing"]
		cl.RateLimit = RateLimitConfig{PerSecond: maxRate, Burst: maxBurst}
		c.Clients["billing"] = cl
	})
	f.srv.access = slog.New(slog.NewTextHandler(io.Discard, nil))
	h := f.srv.Handler()
	req := httptest.NewRequest("GET", "/v1/credentials/shop", nil)
	req.Header.Set("Authorization", "Bearer "+shopKey)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, req) // the one fetch
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.ServeHTTP(w, req)
	}
}
