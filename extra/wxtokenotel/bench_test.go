package wxtokenotel_test

import (
	"testing"
	"time"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/extra/wxtokenotel"
)

// BenchmarkObserve measures one event on an SDK provider: a fetch (a count
// and a histogram sample) and an invalidation (a count only), with and
// without the key attribute.
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
			opts := []wxtokenotel.Option{}
			if !keyed {
				name += "/without_key"
				opts = append(opts, wxtokenotel.WithoutKey())
			}
			b.Run(name, func(b *testing.B) {
				m := newMeter(b)
				obs, err := wxtokenotel.New(append(opts, wxtokenotel.WithMeterProvider(m.provider))...)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					obs.Observe(ev.e)
				}
			})
		}
	}
}
