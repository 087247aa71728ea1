package wxtokenprom

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wxtoken/wxtoken"
)

// The label names.
const (
	labelKey     = "key"
	labelKind    = "kind"
	labelOutcome = "outcome"
)

// Observer is a wxtoken.Observer that keeps Prometheus metrics of the events
// it is told (see the package documentation), and a prometheus.Collector
// that exports them: register it once with a Registerer. It is safe for
// concurrent use by any number of Clients.
type Observer struct {
	events     *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	gateShut   *prometheus.GaugeVec
	gateOpenAt *prometheus.GaugeVec

	withKey bool
	keys    sync.Map // store key → *series
	keyless *series  // the only series under WithoutKey
}

var (
	_ wxtoken.Observer     = (*Observer)(nil)
	_ prometheus.Collector = (*Observer)(nil)
)

// NewObserver returns an Observer with no series yet: they appear as Clients
// report events.
func NewObserver(opts ...Option) *Observer {
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	o := &Observer{withKey: cfg.withKey}
	var keyLabel []string
	if cfg.withKey {
		keyLabel = []string{labelKey}
	}
	eventLabels := append(keyLabel[:len(keyLabel):len(keyLabel)], labelKind, labelOutcome)
	o.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: cfg.namespace, Subsystem: "wxtoken", Name: "events_total",
		Help: "Things a wxtoken Client did, by kind and outcome.",
	}, eventLabels)
	o.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: cfg.namespace, Subsystem: "wxtoken", Name: "duration_seconds",
		Help:    "How long fetches, Store calls, lock waits and callers' waits took.",
		Buckets: cfg.buckets,
	}, eventLabels)
	o.gateShut = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: cfg.namespace, Subsystem: "wxtoken", Name: "gate_shut",
		Help: "1 while a failure keeps the Client from calling WeChat, else 0.",
	}, keyLabel)
	o.gateOpenAt = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: cfg.namespace, Subsystem: "wxtoken", Name: "gate_open_at_seconds",
		Help: "Unix time at which a shut gate lets WeChat be called again; 0 while open.",
	}, keyLabel)
	if !o.withKey {
		o.keyless = o.newSeries("")
	}
	return o
}

// Describe sends the descriptions of the four metrics.
func (o *Observer) Describe(ch chan<- *prometheus.Desc) {
	o.events.Describe(ch)
	o.duration.Describe(ch)
	o.gateShut.Describe(ch)
	o.gateOpenAt.Describe(ch)
}

// Collect sends the current value of every series.
func (o *Observer) Collect(ch chan<- prometheus.Metric) {
	o.events.Collect(ch)
	o.duration.Collect(ch)
	o.gateShut.Collect(ch)
	o.gateOpenAt.Collect(ch)
}

// Observe records e. It takes no lock of its own, and allocates nothing for
// a key, kind and outcome it has seen before.
func (o *Observer) Observe(e wxtoken.Event) {
	s := o.seriesOf(e.Key)
	m := s.of(e.Kind, e.Outcome)
	m.count.Inc()
	if m.duration != nil {
		m.duration.Observe(e.Duration.Seconds())
	}
	switch e.Kind {
	case wxtoken.EventGateShut:
		s.gateShut.Set(1)
		s.gateOpenAt.Set(unixSeconds(e.Until))
	case wxtoken.EventGateOpen:
		s.gateShut.Set(0)
		s.gateOpenAt.Set(0)
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
	s, _ := o.keys.LoadOrStore(key, o.newSeries(key))
	return s.(*series)
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
