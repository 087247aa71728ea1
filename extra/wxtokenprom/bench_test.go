package wxtokenprom_test

import (
	"testing"
	"time"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/extra/wxtokenprom"
)

// BenchmarkObserve measures one event: a fetch (a count and a histogram
// sample) and an invalidation (a count only), with and without the key
// label.
func BenchmarkObserve(b *testing.B) {
	events := []struct {
		name string
		e    wxtoken.Event
	}{
		{"fetch", wxtoken.Event{Kind: wxtoken.EventFetch, Outcome: wxtoken.OutcomeOK, Key: "wx0123456789abcdef", Duration: 80 * time.Millisecond}},
		{"invalidate", wxtoken.Event{Kind: wxtoken.EventInvalidate, Outcome: wxtoken.OutcomeCached, Key: "wx0123456789abcdef"}},
	}
	for _, keyed := range []bool{true, false} {
		for _, ev := range events {
			name := ev.name
			var opts []wxtokenprom.Option
			if !keyed {
				name += "/without_key"
				opts = append(opts, wxtokenprom.WithoutKey())
			}
			b.Run(name, func(b *testing.B) {
				obs := wxtokenprom.NewObserver(opts...)
				b.ReportAllocs()
				for b.Loop() {
					obs.Observe(ev.e)
				}
			})
		}
	}
}
