package wxtokenprom

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wxtoken/wxtoken"
)

// The sizes of the per-series tables: every kind and outcome wxtoken defines
// has a slot; a value beyond them (from a newer core) takes the slow path.
const (
	numKinds    = int(wxtoken.EventQuotaSpent) + 1
	numOutcomes = int(wxtoken.OutcomeCached) + 1
)

// eventMetrics are the children of one key, kind and outcome.
type eventMetrics struct {
	count    prometheus.Counter
	duration prometheus.Observer // nil for kinds without a duration
}

// series holds the children of one store key (or of all keys, under
// WithoutKey), looked up as kinds and outcomes are first seen: a vector's
// WithLabelValues hashes the labels and allocates on every call.
type series struct {
	o          *Observer
	key        []string // the key label value, or none
	gateShut   prometheus.Gauge
	gateOpenAt prometheus.Gauge
	events     [numKinds][numOutcomes]atomic.Pointer[eventMetrics]
}

// newSeries makes the series of key. Its gauges exist from now on, at 0.
func (o *Observer) newSeries(key string) *series {
	s := &series{o: o}
	if o.withKey {
		s.key = []string{key}
	}
	s.gateShut = o.gateShut.WithLabelValues(s.key...)
	s.gateOpenAt = o.gateOpenAt.WithLabelValues(s.key...)
	return s
}

// of returns the children for kind and outcome.
func (s *series) of(kind wxtoken.EventKind, outcome wxtoken.Outcome) *eventMetrics {
	if int(kind) >= numKinds || int(outcome) >= numOutcomes {
		return s.lookup(kind, outcome)
	}
	slot := &s.events[kind][outcome]
	if m := slot.Load(); m != nil {
		return m
	}
	// Two goroutines may look up the same children at once; the vector hands
	// both the same ones.
	m := s.lookup(kind, outcome)
	slot.Store(m)
	return m
}

func (s *series) lookup(kind wxtoken.EventKind, outcome wxtoken.Outcome) *eventMetrics {
	lvs := append(s.key[:len(s.key):len(s.key)], kind.String(), outcome.String())
	m := &eventMetrics{count: s.o.events.WithLabelValues(lvs...)}
	if timed(kind) {
		m.duration = s.o.duration.WithLabelValues(lvs...)
	}
	return m
}
