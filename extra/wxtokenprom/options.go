package wxtokenprom

// An Option changes how NewObserver builds an Observer.
type Option func(*config)

type config struct {
	namespace string
	withKey   bool
	buckets   []float64
}

// DefaultBuckets are the bounds, in seconds, of wxtoken_duration_seconds:
// from 1 ms, a Store in memory, to 30 s, a fetch at its timeout.
var DefaultBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

func defaultConfig() config {
	return config{withKey: true, buckets: DefaultBuckets}
}

// WithNamespace puts ns and an underscore before every metric name:
// WithNamespace("shop") exports shop_wxtoken_events_total. The default is
// none.
func WithNamespace(ns string) Option { return func(c *config) { c.namespace = ns } }

// WithoutKey drops the key label, so that every Client using the Observer
// adds to the same series: for processes with many keys, where a series per
// key would cost too much.
func WithoutKey() Option { return func(c *config) { c.withKey = false } }

// WithBuckets sets the bounds, in seconds, of wxtoken_duration_seconds in
// place of DefaultBuckets. The bounds must be increasing (NewObserver panics
// otherwise, as prometheus.NewHistogramVec does).
func WithBuckets(bounds ...float64) Option {
	return func(c *config) { c.buckets = append([]float64(nil), bounds...) }
}
