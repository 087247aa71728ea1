package server

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxtoken/wxtoken"
)

// The routes, as metric labels and access-log fields name them.
type route uint8

const (
	routeCredential route = iota
	routeInvalidate
	routeJSSDK
	routeHealthz
	routeReadyz
	routeMetrics
	routeOther
	numRoutes
)

var routeNames = [numRoutes]string{"credential", "invalidate", "jssdk", "healthz", "readyz", "metrics", "other"}

func (r route) String() string { return routeNames[r] }

// latencyBuckets are the upper bounds of the request-duration histogram.
var latencyBuckets = [numBuckets]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// numBuckets is how many finite buckets the histogram has.
const numBuckets = 15

// statusSlots covers the HTTP statuses 100-599; anything else counts as 0.
const statusSlots = 600

// routeStats is one route's counters, lock-free on the request path.
type routeStats struct {
	inFlight atomic.Int64
	status   [statusSlots]atomic.Uint64
	buckets  [numBuckets + 1]atomic.Uint64 // the last: +Inf
	sumNanos atomic.Uint64
}

// metrics is fed by the HTTP middleware and, as a wxtoken.Observer, by the
// credentials' Clients; it writes the Prometheus text exposition format.
type metrics struct {
	routes [numRoutes]routeStats

	names atomic.Pointer[map[string]string] // store key → credential name

	mu     sync.Mutex
	events map[eventKey]uint64
}

type eventKey struct {
	credential, kind, outcome string
}

func newMetrics() *metrics { return &metrics{events: map[eventKey]uint64{}} }

// nameKeys makes events carry the credential's name rather than its store key.
func (m *metrics) nameKeys(creds map[string]*credential) {
	names := map[string]string{}
	for name, c := range creds {
		names[c.client.Key()] = name
	}
	m.names.Store(&names)
}

// Observe counts a Client's event under its credential's name.
func (m *metrics) Observe(e wxtoken.Event) {
	name := e.Key
	if names := m.names.Load(); names != nil {
		if n, ok := (*names)[e.Key]; ok {
			name = n
		}
	}
	k := eventKey{name, e.Kind.String(), e.Outcome.String()}
	m.mu.Lock()
	m.events[k]++
	m.mu.Unlock()
}

// observeRequest counts one answered request.
func (m *metrics) observeRequest(r route, status int, d time.Duration) {
	st := &m.routes[r]
	if status < 0 || status >= statusSlots {
		status = 0
	}
	st.status[status].Add(1)
	secs := d.Seconds()
	i := sort.SearchFloat64s(latencyBuckets[:], secs)
	st.buckets[i].Add(1)
	st.sumNanos.Add(uint64(max(d, 0)))
}

// writeTo writes every series in the Prometheus text format.
func (m *metrics) writeTo(w io.Writer) {
	m.writeEvents(w)
	fmt.Fprintln(w, "# HELP wxtoken_http_requests_total Requests answered, by route and status.")
	fmt.Fprintln(w, "# TYPE wxtoken_http_requests_total counter")
	for r := range numRoutes {
		for code := range statusSlots {
			if n := m.routes[r].status[code].Load(); n > 0 {
				fmt.Fprintf(w, "wxtoken_http_requests_total{route=%q,status=\"%d\"} %d\n", r.String(), code, n)
			}
		}
	}
	fmt.Fprintln(w, "# HELP wxtoken_http_requests_in_flight Requests being served, by route.")
	fmt.Fprintln(w, "# TYPE wxtoken_http_requests_in_flight gauge")
	for r := range numRoutes {
		fmt.Fprintf(w, "wxtoken_http_requests_in_flight{route=%q} %d\n", r.String(), m.routes[r].inFlight.Load())
	}
	m.writeLatency(w)
}

func (m *metrics) writeEvents(w io.Writer) {
	m.mu.Lock()
	keys := make([]eventKey, 0, len(m.events))
	for k := range m.events {
		keys = append(keys, k)
	}
	counts := make([]uint64, len(keys))
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.credential != b.credential {
			return a.credential < b.credential
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.outcome < b.outcome
	})
	for i, k := range keys {
		counts[i] = m.events[k]
	}
	m.mu.Unlock()
	fmt.Fprintln(w, "# HELP wxtoken_events_total What the credentials' engines did: fetches, failures, waits, store calls, invalidations, by credential, kind and outcome.")
	fmt.Fprintln(w, "# TYPE wxtoken_events_total counter")
	for i, k := range keys {
		fmt.Fprintf(w, "wxtoken_events_total{credential=%q,kind=%q,outcome=%q} %d\n", k.credential, k.kind, k.outcome, counts[i])
	}
}

func (m *metrics) writeLatency(w io.Writer) {
	fmt.Fprintln(w, "# HELP wxtoken_http_request_duration_seconds Time to answer a request, by route.")
	fmt.Fprintln(w, "# TYPE wxtoken_http_request_duration_seconds histogram")
	for r := range numRoutes {
		st := &m.routes[r]
		var cum uint64
		for i := range st.buckets {
			cum += st.buckets[i].Load()
			le := "+Inf"
			if i < len(latencyBuckets) {
				le = strconv.FormatFloat(latencyBuckets[i], 'g', -1, 64)
			}
			fmt.Fprintf(w, "wxtoken_http_request_duration_seconds_bucket{route=%q,le=%q} %d\n", r.String(), le, cum)
		}
		sum := float64(st.sumNanos.Load()) / 1e9
		fmt.Fprintf(w, "wxtoken_http_request_duration_seconds_sum{route=%q} %s\n", r.String(), formatFloat(sum))
		fmt.Fprintf(w, "wxtoken_http_request_duration_seconds_count{route=%q} %d\n", r.String(), cum)
	}
}

func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "0"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
