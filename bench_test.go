package wxtoken

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
)

func BenchmarkGet(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTicketGet is a jsapi ticket Client's Get: the same engine, the same
// one atomic load.
func BenchmarkTicketGet(b *testing.B) {
	tc, err := NewTicket(benchClient(b), TicketJSAPI)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tc.Close() })
	ctx := context.Background()
	if _, err := tc.Get(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tc.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func benchClient(b *testing.B) *Client {
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, tokenURL, body(`{"access_token":"bench","expires_in":7200}`))
	mt.RegisterResponder(http.MethodGet, "https://api.weixin.qq.com/cgi-bin/ticket/getticket",
		body(`{"errcode":0,"errmsg":"ok","ticket":"bench-ticket","expires_in":7200}`))
	c, err := New(testAppID, testSecret, WithHTTPClient(&http.Client{Transport: mt}),
		WithStore(NewMemoryStore()), WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := c.Get(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkBaselineAtomicLoad and BenchmarkBaselineTimeNow put BenchmarkGet in
// context on the machine at hand: the floor that one atomic load sets, and what
// a read path that checks the clock would pay for that alone.
func BenchmarkBaselineAtomicLoad(b *testing.B) {
	var p atomic.Pointer[entry]
	p.Store(&entry{tok: Token{AccessToken: "x"}})
	for b.Loop() {
		if p.Load().state != stateFresh {
			b.Fatal("not fresh")
		}
	}
}

func BenchmarkBaselineTimeNow(b *testing.B) {
	for b.Loop() {
		_ = time.Now()
	}
}

// BenchmarkGetDuringRenewal measures Get while the token keeps crossing its
// renewal point and every renewal takes 20 ms upstream. Tokens live 2 s, so the
// margin is 1 s and a renewal starts about every second. It reports the
// renewals that happened and how many Gets had to wait for one: none should.
func BenchmarkGetDuringRenewal(b *testing.B) {
	var n atomic.Int64
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, tokenURL, func(*http.Request) (*http.Response, error) {
		time.Sleep(20 * time.Millisecond) // the slow upstream being measured
		return httpmock.NewStringResponse(200,
			fmt.Sprintf(`{"access_token":"t%d","expires_in":2}`, n.Add(1))), nil
	})
	c, err := New(testAppID, testSecret, WithHTTPClient(&http.Client{Transport: mt}),
		WithStore(NewMemoryStore()), WithLogger(quietLogger()), WithMinRenewInterval(0))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Get(ctx); err != nil {
		b.Fatal(err)
	}
	waitsBefore := c.Stats().Waits
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(n.Load()-1), "renewals")
	b.ReportMetric(float64(c.Stats().Waits-waitsBefore), "waits")
}

// BenchmarkColdHerd measures 1,000 goroutines asking a new Client at once, and
// reports the upstream fetches per herd (one is the goal).
func BenchmarkColdHerd(b *testing.B) {
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, tokenURL, body(`{"access_token":"herd","expires_in":7200}`))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := New(testAppID, testSecret, WithHTTPClient(&http.Client{Transport: mt}),
			WithStore(NewMemoryStore()), WithLogger(quietLogger()))
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 1000 {
			wg.Go(func() {
				if _, err := c.Get(ctx); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		c.Close()
	}
	b.ReportMetric(float64(mt.GetTotalCallCount())/float64(b.N), "fetches/herd")
}
