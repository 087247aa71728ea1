package server

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sample is one line of the text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([-+0-9.eE]+|\+Inf|NaN)$`)
	labelPair  = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$`)
)

// parseExposition parses Prometheus' text format strictly enough to catch
// a malformed line: comments are HELP or TYPE, every sample's family was
// typed first, labels are name="value" pairs.
func parseExposition(t *testing.T, text string) []sample {
	t.Helper()
	typed := map[string]string{}
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# ") {
			f := strings.SplitN(line, " ", 4)
			require.Len(t, f, 4, line)
			require.Contains(t, []string{"HELP", "TYPE"}, f[1], line)
			if f[1] == "TYPE" {
				require.Contains(t, []string{"counter", "gauge", "histogram"}, f[3], line)
				typed[f[2]] = f[3]
			}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		require.NotNil(t, m, "malformed line %q", line)
		s := sample{name: m[1], labels: map[string]string{}}
		if m[3] != "" {
			for _, pair := range strings.Split(m[3], ",") {
				p := labelPair.FindStringSubmatch(pair)
				require.NotNil(t, p, "malformed label %q", pair)
				s.labels[p[1]] = p[2]
			}
		}
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s.name, "_bucket"), "_sum"), "_count")
		_, ok := typed[family]
		if !ok {
			_, ok = typed[s.name]
		}
		require.True(t, ok, "sample %q before its TYPE", line)
		v, err := strconv.ParseFloat(m[4], 64)
		require.NoError(t, err, line)
		s.value = v
		out = append(out, s)
	}
	return out
}

// find returns the value of the sample name with every label of want.
func find(samples []sample, name string, want map[string]string) (float64, bool) {
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

func TestMetricsParseAndHoldTheNamedSeries(t *testing.T) {
	t.Parallel()
	f := start(t, nil)
	for range 3 {
		decodeToken(t, f.do(t, "GET", "/v1/credentials/shop", shopKey, ""))
	}
	f.do(t, "GET", "/v1/credentials/shop", "", "")
	f.do(t, "GET", "/v1/credentials/corp", shopKey, "")
	a := f.do(t, "GET", "/metrics", "", "")
	require.Equal(t, http.StatusOK, a.status)
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", a.header.Get("Content-Type"))
	samples := parseExposition(t, a.body)

	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wxtoken_http_requests_total", map[string]string{"route": "credential", "status": "200"}, 3},
		{"wxtoken_http_requests_total", map[string]string{"route": "credential", "status": "401"}, 1},
		{"wxtoken_http_requests_total", map[string]string{"route": "credential", "status": "403"}, 1},
		{"wxtoken_events_total", map[string]string{"credential": "shop", "kind": "fetch", "outcome": "ok"}, 1},
		{"wxtoken_events_total", map[string]string{"credential": "shop", "kind": "wait", "outcome": "ok"}, 1},
		{"wxtoken_http_request_duration_seconds_count", map[string]string{"route": "credential"}, 5},
		{"wxtoken_http_request_duration_seconds_bucket", map[string]string{"route": "credential", "le": "+Inf"}, 5},
		{"wxtoken_http_requests_in_flight", map[string]string{"route": "credential"}, 0},
		{"wxtoken_http_requests_in_flight", map[string]string{"route": "metrics"}, 1},
	} {
		got, ok := find(samples, tc.name, tc.labels)
		require.True(t, ok, "%s%v missing from\n%s", tc.name, tc.labels, a.body)
		assert.Equal(t, tc.want, got, "%s%v", tc.name, tc.labels)
	}
	f.assertNoToken(t, a.body)
}

func TestHistogramBucketsAreCumulative(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	for _, d := range []float64{0.0001, 0.003, 0.003, 7, 100} {
		m.observeRequest(routeCredential, 200, secondsDuration(d))
	}
	rec := httptest.NewRecorder()
	m.writeTo(rec)
	samples := parseExposition(t, rec.Body.String())
	for le, want := range map[string]float64{"0.0005": 1, "0.001": 1, "0.005": 3, "5": 3, "10": 4, "30": 4, "+Inf": 5} {
		got, ok := find(samples, "wxtoken_http_request_duration_seconds_bucket", map[string]string{"route": "credential", "le": le})
		require.True(t, ok, le)
		assert.Equal(t, want, got, le)
	}
	sum, _ := find(samples, "wxtoken_http_request_duration_seconds_sum", map[string]string{"route": "credential"})
	assert.InDelta(t, 107.0061, sum, 1e-6)
}
