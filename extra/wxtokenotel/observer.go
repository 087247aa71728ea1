package wxtokenotel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wxtoken/wxtoken"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of the Observer's Meter.
const ScopeName = "github.com/wxtoken/wxtoken/extra/wxtokenotel"

// Observer is a wxtoken.Observer that records each event on OpenTelemetry
// instruments (see the package documentation). It is safe for concurrent use
// by any number of Clients.
type Observer struct {
	events     metric.Int64Counter
	duration   metric.Float64Histogram
	gateShut   metric.Int64Gauge
	gateOpenAt metric.Float64Gauge

	withKey bool
	keys    sync.Map // store key → *series
	keyless *series  // the only series under WithoutKey
}

var _ wxtoken.Observer = (*Observer)(nil)

// errBuckets is returned by New for bounds that do not increase.
var errBuckets = errors.New("wxtokenotel: histogram bounds must be increasing")

// New creates the instruments on a Meter of the MeterProvider (the global one
// unless WithMeterProvider says otherwise) and returns an Observer recording
// on them. It fails if the provider refuses an instrument or the buckets of
// WithBuckets do not increase.
func New(opts ...Option) (*Observer, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.provider == nil {
		cfg.provider = otel.GetMeterProvider()
	}
	for i := 1; i < len(cfg.buckets); i++ {
		if !(cfg.buckets[i-1] < cfg.buckets[i]) {
			return nil, errBuckets
		}
	}
	return newObserver(cfg.provider.Meter(ScopeName), cfg)
}

// newObserver creates the four instruments on m.
func newObserver(m metric.Meter, cfg config) (*Observer, error) {
	o := &Observer{withKey: cfg.withKey}
	var err error
	o.events, err = m.Int64Counter("wxtoken.events", metric.WithUnit("{event}"),
		metric.WithDescription("Things a wxtoken Client did, by kind and outcome."))
	if err != nil {
		return nil, fmt.Errorf("wxtokenotel: %w", err)
	}
	o.duration, err = m.Float64Histogram("wxtoken.duration", metric.WithUnit("s"),
		metric.WithDescription("How long fetches, Store calls, lock waits and callers' waits took."),
		metric.WithExplicitBucketBoundaries(cfg.buckets...))
	if err != nil {
		return nil, fmt.Errorf("wxtokenotel: %w", err)
	}
	o.gateShut, err = m.Int64Gauge("wxtoken.gate.shut",
		metric.WithDescription("1 while a failure keeps the Client from calling WeChat, else 0."))
	if err != nil {
		return nil, fmt.Errorf("wxtokenotel: %w", err)
	}
	o.gateOpenAt, err = m.Float64Gauge("wxtoken.gate.open_at", metric.WithUnit("s"),
		metric.WithDescription("Unix time at which a shut gate lets WeChat be called again; 0 while open."))
	if err != nil {
		return nil, fmt.Errorf("wxtokenotel: %w", err)
	}
	if !o.withKey {
		o.keyless = newSeries("", false)
		o.initGate(o.keyless)
	}
	return o, nil
}

// Observe records e. It does not block beyond what the instruments do, and
// allocates nothing for a key, kind and outcome it has seen before.
func (o *Observer) Observe(e wxtoken.Event) {
	ctx := context.Background()
	s := o.seriesOf(e.Key)
	a := s.of(e.Kind, e.Outcome)
	o.events.Add(ctx, 1, a.add...)
	if timed(e.Kind) {
		o.duration.Record(ctx, e.Duration.Seconds(), a.record...)
	}
	switch e.Kind {
	case wxtoken.EventGateShut:
		o.gateShut.Record(ctx, 1, s.gate.record...)
		o.gateOpenAt.Record(ctx, unixSeconds(e.Until), s.gate.record...)
	case wxtoken.EventGateOpen:
		o.gateShut.Record(ctx, 0, s.gate.record...)
		o.gateOpenAt.Record(ctx, 0, s.gate.record...)
	}
}

// seriesOf returns the series of key, creating it on first sight.
func (o *Observer) seriesOf(key string) *series {
	if !o.withKey {
		return o.keyless
	}
	if s, ok := o.keys.Load(key); ok {
		return s.(*series)
	}
	s, loaded := o.keys.LoadOrStore(key, newSeries(key, true))
	if !loaded {
		o.initGate(s.(*series))
	}
	return s.(*series)
}

// initGate records an open gate for a new series, so that the gauges read 0
// rather than nothing until the first failure.
func (o *Observer) initGate(s *series) {
	ctx := context.Background()
	o.gateShut.Record(ctx, 0, s.gate.record...)
	o.gateOpenAt.Record(ctx, 0, s.gate.record...)
}

// timed reports whether events of kind carry a duration worth a histogram.
func timed(kind wxtoken.EventKind) bool {
	switch kind {
	case wxtoken.EventFetch, wxtoken.EventStoreLoad, wxtoken.EventStoreSave,
		wxtoken.EventLockWait, wxtoken.EventWait:
		return true
	}
	return false
}

// unixSeconds is t as fractional Unix seconds, 0 for the zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}
