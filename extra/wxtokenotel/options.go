package wxtokenotel

import "go.opentelemetry.io/otel/metric"

// An Option changes how New builds an Observer.
type Option func(*config)

type config struct {
	provider metric.MeterProvider
	withKey  bool
	buckets  []float64
}

// DefaultBuckets are the bounds, in seconds, of the wxtoken.duration
// histogram: from 1 ms, a Store in memory, to 30 s, a fetch at its timeout.
var DefaultBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

func defaultConfig() config {
	return config{withKey: true, buckets: DefaultBuckets}
}

// WithMeterProvider sets where the instruments come from. The default is the
// global provider, otel.GetMeterProvider, as it is when New is called.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.provider = mp }
}

// WithoutKey drops the key attribute, so that every Client using the
// Observer adds to the same series: for processes with many keys, where a
// series per key would cost too much.
func WithoutKey() Option { return func(c *config) { c.withKey = false } }

// WithBuckets sets the bounds, in seconds, of the wxtoken.duration histogram
// in place of DefaultBuckets. The bounds must be increasing.
func WithBuckets(bounds ...float64) Option {
	return func(c *config) { c.buckets = append([]float64(nil), bounds...) }
}
