package wxtokenprom_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/extra/wxtokenprom"
	"github.com/wxtoken/wxtoken/wxtest"
)

// recorder keeps every Event, to check the metrics against what the Client
// reported.
type recorder struct {
	mu     sync.Mutex
	events []wxtoken.Event
}

func (r *recorder) Observe(e wxtoken.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) all() []wxtoken.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wxtoken.Event(nil), r.events...)
}

// tee hands each Event to every Observer in turn.
type tee []wxtoken.Observer

func (t tee) Observe(e wxtoken.Event) {
	for _, o := range t {
		o.Observe(e)
	}
}

// quiet keeps the Clients' log lines out of the test output.
var quiet = wxtoken.WithLogger(slog.New(slog.DiscardHandler))

// newClient returns a Client of the fake's default app that tells obs.
func newClient(t *testing.T, srv *wxtest.Server, obs wxtoken.Observer) *wxtoken.Client {
	t.Helper()
	c, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithHTTPClient(srv.Client()),
		wxtoken.WithStore(wxtoken.NewMemoryStore()), wxtoken.WithObserver(obs), quiet)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// gather registers obs alone on a registry and returns its families by name.
func gather(t *testing.T, obs *wxtokenprom.Observer) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(obs))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// labels returns a metric's labels by name.
func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// tally counts events by kind/outcome, and timed ones apart.
func tally(ev []wxtoken.Event) (all map[string]float64, timed map[string]uint64) {
	all, timed = map[string]float64{}, map[string]uint64{}
	for _, e := range ev {
		l := e.Kind.String() + "/" + e.Outcome.String()
		all[l]++
		switch e.Kind {
		case wxtoken.EventFetch, wxtoken.EventStoreLoad, wxtoken.EventStoreSave,
			wxtoken.EventLockWait, wxtoken.EventWait:
			timed[l]++
		}
	}
	return all, timed
}

// gate is the text form of the two gate gauges of key.
func gate(key string, shut int, openAt float64) string {
	return fmt.Sprintf(`
# HELP wxtoken_gate_open_at_seconds Unix time at which a shut gate lets WeChat be called again; 0 while open.
# TYPE wxtoken_gate_open_at_seconds gauge
wxtoken_gate_open_at_seconds{key=%q} %s
# HELP wxtoken_gate_shut 1 while a failure keeps the Client from calling WeChat, else 0.
# TYPE wxtoken_gate_shut gauge
wxtoken_gate_shut{key=%q} %d
`, key, strings.ToLower(fmt.Sprintf("%g", openAt)), key, shut)
}

// A failing cold Get, a Get once the gate opens and an Invalidate, read back
// through a registry: every event is counted once under its kind and
// outcome, the timed ones have histogram samples, the gate gauge goes to 1
// and back, and nothing exported holds the secret or a token.
func TestObserverExportsWhatTheClientDid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := wxtokenprom.NewObserver()
		rec := &recorder{}
		srv := wxtest.NewHandler()
		c := newClient(t, srv, tee{obs, rec})
		ctx := context.Background()

		srv.Inject(wxtest.FaultErrcode(40164, "invalid ip 203.0.113.9, not in whitelist"))
		_, err := c.Get(ctx)
		require.Error(t, err)
		require.True(t, wxtoken.IsPermanent(err), "%v", err)
		synctest.Wait() // the fetch reports the gate after it hands its waiters the error
		key := rec.all()[0].Key
		require.NotEmpty(t, key)
		var until time.Time
		for _, e := range rec.all() {
			if e.Kind == wxtoken.EventGateShut {
				until = e.Until
			}
		}
		require.False(t, until.IsZero())
		assert.NoError(t, testutil.CollectAndCompare(obs, strings.NewReader(gate(key, 1, float64(until.UnixNano())/1e9)),
			"wxtoken_gate_shut", "wxtoken_gate_open_at_seconds"), "the failure shut the gate")

		time.Sleep(time.Minute) // the cool-down, in the bubble's time
		first, err := c.Get(ctx)
		require.NoError(t, err)
		synctest.Wait()
		assert.NoError(t, testutil.CollectAndCompare(obs, strings.NewReader(gate(key, 0, 0)),
			"wxtoken_gate_shut", "wxtoken_gate_open_at_seconds"), "a fetch opened the gate")

		time.Sleep(time.Minute) // past the guard against rejections of fresh tokens
		second, err := c.Invalidate(ctx, first)
		require.NoError(t, err)
		require.NotEqual(t, first, second)
		require.NoError(t, c.Close())
		synctest.Wait()

		all, timed := tally(rec.all())
		got := gather(t, obs)
		events := map[string]float64{}
		for _, m := range got["wxtoken_events_total"].GetMetric() {
			l := labels(m)
			assert.Equal(t, key, l["key"])
			events[l["kind"]+"/"+l["outcome"]] += m.GetCounter().GetValue()
		}
		assert.Equal(t, all, events, "one count per event")
		samples := map[string]uint64{}
		for _, m := range got["wxtoken_duration_seconds"].GetMetric() {
			l := labels(m)
			samples[l["kind"]+"/"+l["outcome"]] += m.GetHistogram().GetSampleCount()
			assert.Len(t, m.GetHistogram().GetBucket(), len(wxtokenprom.DefaultBuckets))
		}
		assert.Equal(t, timed, samples, "one sample per timed event")
		for l, n := range map[string]float64{
			"fetch/permanent": 1, "fetch/ok": 2, "gate_shut/permanent": 1, "gate_open/ok": 1,
			"wait/permanent": 1, "wait/ok": 2, "invalidate/ok": 1,
		} {
			assert.Equal(t, n, events[l], l)
		}
		// How often the Store is read and written depends on when the Client's
		// store sync runs, which the minutes slept above may coincide with.
		assert.NotZero(t, events["store_load/miss"])
		assert.NotZero(t, events["store_save/ok"])

		// CollectAndFormat keeps only the families it is given by name.
		text, err := testutil.CollectAndFormat(obs, expfmt.TypeTextPlain, "wxtoken_events_total",
			"wxtoken_duration_seconds", "wxtoken_gate_shut", "wxtoken_gate_open_at_seconds")
		require.NoError(t, err)
		assert.Contains(t, string(text), `key="`+key+`"`)
		assert.Contains(t, string(text), `wxtoken_duration_seconds_bucket{`)
		for _, s := range []string{wxtest.DefaultSecret, first, second} {
			assert.NotContains(t, string(text), s)
		}
	})
}

// Under WithoutKey no series carries a key, and two Clients add to one.
func TestWithoutKeySumsAllClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := wxtokenprom.NewObserver(wxtokenprom.WithoutKey())
		srv := wxtest.NewHandler(wxtest.WithApp("wx1111111111111111", "other-secret"))
		srv.SetApp(wxtest.DefaultAppID, wxtest.DefaultSecret)
		c1 := newClient(t, srv, obs)
		c2, err := wxtoken.New("wx1111111111111111", "other-secret",
			wxtoken.WithBaseURL(srv.URL()), wxtoken.WithHTTPClient(srv.Client()),
			wxtoken.WithStore(wxtoken.NewMemoryStore()), wxtoken.WithObserver(obs), quiet)
		require.NoError(t, err)
		defer c2.Close()
		for _, c := range []*wxtoken.Client{c1, c2} {
			_, err := c.Get(context.Background())
			require.NoError(t, err)
		}
		synctest.Wait()

		got := gather(t, obs)
		var fetches float64
		for _, m := range got["wxtoken_events_total"].GetMetric() {
			l := labels(m)
			assert.NotContains(t, l, "key")
			if l["kind"] == "fetch" && l["outcome"] == "ok" {
				fetches += m.GetCounter().GetValue()
			}
		}
		assert.Equal(t, float64(2), fetches)
		require.Len(t, got["wxtoken_gate_shut"].GetMetric(), 1)
		assert.Empty(t, got["wxtoken_gate_shut"].GetMetric()[0].GetLabel())
	})
}

func TestWithNamespaceAndBuckets(t *testing.T) {
	obs := wxtokenprom.NewObserver(wxtokenprom.WithNamespace("shop"), wxtokenprom.WithBuckets(0.5, 1))
	obs.Observe(wxtoken.Event{Kind: wxtoken.EventFetch, Outcome: wxtoken.OutcomeOK, Key: "k", Duration: 700 * time.Millisecond})
	obs.Observe(wxtoken.Event{Kind: wxtoken.EventInvalidate, Outcome: wxtoken.OutcomeCached, Key: "k"})
	want := `
# HELP shop_wxtoken_duration_seconds How long fetches, Store calls, lock waits and callers' waits took.
# TYPE shop_wxtoken_duration_seconds histogram
shop_wxtoken_duration_seconds_bucket{key="k",kind="fetch",outcome="ok",le="0.5"} 0
shop_wxtoken_duration_seconds_bucket{key="k",kind="fetch",outcome="ok",le="1"} 1
shop_wxtoken_duration_seconds_bucket{key="k",kind="fetch",outcome="ok",le="+Inf"} 1
shop_wxtoken_duration_seconds_sum{key="k",kind="fetch",outcome="ok"} 0.7
shop_wxtoken_duration_seconds_count{key="k",kind="fetch",outcome="ok"} 1
# HELP shop_wxtoken_events_total Things a wxtoken Client did, by kind and outcome.
# TYPE shop_wxtoken_events_total counter
shop_wxtoken_events_total{key="k",kind="fetch",outcome="ok"} 1
shop_wxtoken_events_total{key="k",kind="invalidate",outcome="cached"} 1
# HELP shop_wxtoken_gate_shut 1 while a failure keeps the Client from calling WeChat, else 0.
# TYPE shop_wxtoken_gate_shut gauge
shop_wxtoken_gate_shut{key="k"} 0
`
	assert.NoError(t, testutil.CollectAndCompare(obs, strings.NewReader(want),
		"shop_wxtoken_duration_seconds", "shop_wxtoken_events_total", "shop_wxtoken_gate_shut"))
	assert.Equal(t, 5, testutil.CollectAndCount(obs), "two counters, one histogram (none for the invalidation), two gauges")
}

// Kinds and outcomes a newer core might add are still counted, as "unknown".
func TestUnknownKindsAreCounted(t *testing.T) {
	obs := wxtokenprom.NewObserver()
	obs.Observe(wxtoken.Event{Kind: wxtoken.EventKind(200), Outcome: wxtoken.Outcome(200), Key: "k"})
	obs.Observe(wxtoken.Event{Kind: wxtoken.EventFetch, Outcome: wxtoken.Outcome(200), Key: "k"})
	want := `
# HELP wxtoken_events_total Things a wxtoken Client did, by kind and outcome.
# TYPE wxtoken_events_total counter
wxtoken_events_total{key="k",kind="fetch",outcome="unknown"} 1
wxtoken_events_total{key="k",kind="unknown",outcome="unknown"} 1
`
	assert.NoError(t, testutil.CollectAndCompare(obs, strings.NewReader(want), "wxtoken_events_total"))
}

// Clients on many goroutines reporting at once lose no count, while the
// Observer fills in its series for keys, kinds and outcomes it sees first.
func TestConcurrentObserveCountsEveryEvent(t *testing.T) {
	obs := wxtokenprom.NewObserver()
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				obs.Observe(wxtoken.Event{
					Kind: wxtoken.EventKind(1 + i%8), Outcome: wxtoken.Outcome(1 + g%8),
					Key: fmt.Sprintf("key-%d", i%3), Duration: time.Millisecond,
				})
			}
		})
	}
	wg.Wait()
	var total float64
	for _, m := range gather(t, obs)["wxtoken_events_total"].GetMetric() {
		total += m.GetCounter().GetValue()
	}
	assert.Equal(t, float64(goroutines*each), total)
}
