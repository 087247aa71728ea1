package wxtokenotel_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/extra/wxtokenotel"
	"github.com/wxtoken/wxtoken/wxtest"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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

// meter is an SDK MeterProvider whose metrics the test reads by hand.
type meter struct {
	reader   *sdkmetric.ManualReader
	provider *sdkmetric.MeterProvider
}

func newMeter(t testing.TB) *meter {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
	return &meter{reader: r, provider: mp}
}

// collect returns the instruments the Observer exported, by name.
func (m *meter) collect(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, m.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, wxtokenotel.ScopeName, sm.Scope.Name)
		for _, md := range sm.Metrics {
			out[md.Name] = md.Data
		}
	}
	return out
}

// label renders an attribute set as kind/outcome (and key= when present).
func label(set attribute.Set) string {
	kind, _ := set.Value("kind")
	outcome, _ := set.Value("outcome")
	return kind.AsString() + "/" + outcome.AsString()
}

// counts returns wxtoken.events by kind/outcome, checking every point's key.
func counts(t *testing.T, data metricdata.Aggregation, key string) map[string]int64 {
	t.Helper()
	sum, ok := data.(metricdata.Sum[int64])
	require.True(t, ok, "wxtoken.events is %T", data)
	assert.True(t, sum.IsMonotonic)
	out := map[string]int64{}
	for _, p := range sum.DataPoints {
		k, _ := p.Attributes.Value("key")
		assert.Equal(t, key, k.AsString())
		out[label(p.Attributes)] += p.Value
	}
	return out
}

// samples returns the number of wxtoken.duration samples by kind/outcome.
func samples(t *testing.T, data metricdata.Aggregation) map[string]uint64 {
	t.Helper()
	h, ok := data.(metricdata.Histogram[float64])
	require.True(t, ok, "wxtoken.duration is %T", data)
	out := map[string]uint64{}
	for _, p := range h.DataPoints {
		out[label(p.Attributes)] += p.Count
		assert.Equal(t, wxtokenotel.DefaultBuckets, p.Bounds)
	}
	return out
}

// gauge returns the one value of a gauge, checking its key.
func gauge[N int64 | float64](t *testing.T, data metricdata.Aggregation, key string) N {
	t.Helper()
	g, ok := data.(metricdata.Gauge[N])
	require.True(t, ok, "gauge is %T", data)
	require.Len(t, g.DataPoints, 1)
	k, _ := g.DataPoints[0].Attributes.Value("key")
	assert.Equal(t, key, k.AsString())
	return g.DataPoints[0].Value
}

// tally counts events by kind/outcome, and timed ones apart.
func tally(ev []wxtoken.Event) (all map[string]int64, timed map[string]uint64) {
	all, timed = map[string]int64{}, map[string]uint64{}
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

// A failing cold Get, a Get once the gate opens and an Invalidate, read back
// from the SDK: every event is counted once under its kind and outcome, the
// timed ones have histogram samples, the gate gauge goes to 1 and back, and
// nothing exported holds the secret or a token.
func TestObserverExportsWhatTheClientDid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeter(t)
		obs, err := wxtokenotel.New(wxtokenotel.WithMeterProvider(m.provider))
		require.NoError(t, err)
		rec := &recorder{}
		srv := wxtest.NewHandler()
		c := newClient(t, srv, tee{obs, rec})
		ctx := context.Background()

		srv.Inject(wxtest.FaultErrcode(40164, "invalid ip 203.0.113.9, not in whitelist"))
		_, err = c.Get(ctx)
		require.Error(t, err)
		require.True(t, wxtoken.IsPermanent(err), "%v", err)
		synctest.Wait() // the fetch reports the gate after it hands its waiters the error
		key := rec.all()[0].Key
		require.NotEmpty(t, key)
		got := m.collect(t)
		assert.Equal(t, int64(1), gauge[int64](t, got["wxtoken.gate.shut"], key), "the failure shut the gate")
		var until time.Time
		for _, e := range rec.all() {
			if e.Kind == wxtoken.EventGateShut {
				until = e.Until
			}
		}
		require.False(t, until.IsZero())
		assert.Equal(t, float64(until.UnixNano())/1e9, gauge[float64](t, got["wxtoken.gate.open_at"], key))

		time.Sleep(time.Minute) // the cool-down, in the bubble's time
		first, err := c.Get(ctx)
		require.NoError(t, err)
		synctest.Wait()
		got = m.collect(t)
		assert.Equal(t, int64(0), gauge[int64](t, got["wxtoken.gate.shut"], key), "a fetch opened the gate")
		assert.Equal(t, float64(0), gauge[float64](t, got["wxtoken.gate.open_at"], key))

		time.Sleep(time.Minute) // past the guard against rejections of fresh tokens
		second, err := c.Invalidate(ctx, first)
		require.NoError(t, err)
		require.NotEqual(t, first, second)
		require.NoError(t, c.Close())
		synctest.Wait()

		got = m.collect(t)
		all, timed := tally(rec.all())
		events := counts(t, got["wxtoken.events"], key)
		assert.Equal(t, all, events, "one count per event")
		assert.Equal(t, timed, samples(t, got["wxtoken.duration"]), "one sample per timed event")
		for l, n := range map[string]int64{
			"fetch/permanent": 1, "fetch/ok": 2, "gate_shut/permanent": 1, "gate_open/ok": 1,
			"wait/permanent": 1, "wait/ok": 2, "invalidate/ok": 1,
		} {
			assert.Equal(t, n, events[l], l)
		}
		// How often the Store is read and written depends on when the Client's
		// store sync runs, which the minutes slept above may coincide with.
		assert.NotZero(t, events["store_load/miss"])
		assert.NotZero(t, events["store_save/ok"])

		text := fmt.Sprintf("%+v", got)
		assert.Contains(t, text, key)
		for _, s := range []string{wxtest.DefaultSecret, first, second} {
			assert.NotContains(t, text, s)
		}
	})
}

// Under WithoutKey no point carries a key, and two Clients add to one series.
func TestWithoutKeySumsAllClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMeter(t)
		obs, err := wxtokenotel.New(wxtokenotel.WithMeterProvider(m.provider), wxtokenotel.WithoutKey())
		require.NoError(t, err)
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

		got := m.collect(t)
		sum := got["wxtoken.events"].(metricdata.Sum[int64])
		var fetches int64
		for _, p := range sum.DataPoints {
			_, hasKey := p.Attributes.Value("key")
			assert.False(t, hasKey)
			if label(p.Attributes) == "fetch/ok" {
				fetches += p.Value
			}
		}
		assert.Equal(t, int64(2), fetches)
		g := got["wxtoken.gate.shut"].(metricdata.Gauge[int64])
		require.Len(t, g.DataPoints, 1)
		assert.Equal(t, 0, g.DataPoints[0].Attributes.Len())
	})
}

// Kinds and outcomes a newer core might add are still counted, as "unknown".
func TestUnknownKindsAreCounted(t *testing.T) {
	m := newMeter(t)
	obs, err := wxtokenotel.New(wxtokenotel.WithMeterProvider(m.provider))
	require.NoError(t, err)
	obs.Observe(wxtoken.Event{Kind: wxtoken.EventKind(200), Outcome: wxtoken.Outcome(200), Key: "k"})
	obs.Observe(wxtoken.Event{Kind: wxtoken.EventFetch, Outcome: wxtoken.Outcome(200), Key: "k"})
	events := counts(t, m.collect(t)["wxtoken.events"], "k")
	assert.Equal(t, map[string]int64{"unknown/unknown": 1, "fetch/unknown": 1}, events)
}

func TestWithBuckets(t *testing.T) {
	m := newMeter(t)
	obs, err := wxtokenotel.New(wxtokenotel.WithMeterProvider(m.provider), wxtokenotel.WithBuckets(0.5, 1))
	require.NoError(t, err)
	obs.Observe(wxtoken.Event{Kind: wxtoken.EventFetch, Outcome: wxtoken.OutcomeOK, Key: "k", Duration: 700 * time.Millisecond})
	h := m.collect(t)["wxtoken.duration"].(metricdata.Histogram[float64])
	require.Len(t, h.DataPoints, 1)
	assert.Equal(t, []float64{0.5, 1}, h.DataPoints[0].Bounds)
	assert.Equal(t, []uint64{0, 1, 0}, h.DataPoints[0].BucketCounts)
	assert.InDelta(t, 0.7, h.DataPoints[0].Sum, 1e-9)

	_, err = wxtokenotel.New(wxtokenotel.WithMeterProvider(m.provider), wxtokenotel.WithBuckets(1, 1))
	assert.EqualError(t, err, "wxtokenotel: histogram bounds must be increasing")
}

// Clients on many goroutines reporting at once lose no count, while the
// Observer builds attribute sets for keys, kinds and outcomes it sees first.
func TestConcurrentObserveCountsEveryEvent(t *testing.T) {
	m := newMeter(t)
	obs, err := wxtokenotel.New(wxtokenotel.WithMeterProvider(m.provider))
	require.NoError(t, err)
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
	var total int64
	for _, p := range m.collect(t)["wxtoken.events"].(metricdata.Sum[int64]).DataPoints {
		total += p.Value
	}
	assert.Equal(t, int64(goroutines*each), total)
}
