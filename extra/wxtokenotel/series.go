package wxtokenotel

import (
	"sync/atomic"

	"github.com/wxtoken/wxtoken"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The sizes of the per-series tables: every kind and outcome wxtoken defines
// has a slot; a value beyond them (from a newer core) takes the slow path.
const (
	numKinds    = int(wxtoken.EventQuotaSpent) + 1
	numOutcomes = int(wxtoken.OutcomeCached) + 1
)

// The attribute names.
const (
	attrKey     = "key"
	attrKind    = "kind"
	attrOutcome = "outcome"
)

// measureOpts holds the options of one attribute set, ready to pass to Add
// and Record: building them once is what keeps Observe from allocating.
type measureOpts struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

func newMeasureOpts(kvs ...attribute.KeyValue) *measureOpts {
	opt := metric.WithAttributeSet(attribute.NewSet(kvs...))
	return &measureOpts{add: []metric.AddOption{opt}, record: []metric.RecordOption{opt}}
}

// series holds the attribute sets of one store key (or of all keys, under
// WithoutKey), filled in as kinds and outcomes are first seen.
type series struct {
	key    []attribute.KeyValue // the key attribute, or none
	gate   *measureOpts         // key only, for the gauges
	events [numKinds][numOutcomes]atomic.Pointer[measureOpts]
}

func newSeries(key string, withKey bool) *series {
	s := &series{}
	if withKey {
		s.key = []attribute.KeyValue{attribute.String(attrKey, key)}
	}
	s.gate = newMeasureOpts(s.key...)
	return s
}

// of returns the attribute set for kind and outcome.
func (s *series) of(kind wxtoken.EventKind, outcome wxtoken.Outcome) *measureOpts {
	if int(kind) >= numKinds || int(outcome) >= numOutcomes {
		return s.build(kind, outcome)
	}
	slot := &s.events[kind][outcome]
	if m := slot.Load(); m != nil {
		return m
	}
	// Two goroutines may build the same set at once; either copy is right.
	m := s.build(kind, outcome)
	slot.Store(m)
	return m
}

func (s *series) build(kind wxtoken.EventKind, outcome wxtoken.Outcome) *measureOpts {
	kvs := append(s.key[:len(s.key):len(s.key)],
		attribute.String(attrKind, kind.String()), attribute.String(attrOutcome, outcome.String()))
	return newMeasureOpts(kvs...)
}
