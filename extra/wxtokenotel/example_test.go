package wxtokenotel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/extra/wxtokenotel"
	"github.com/wxtoken/wxtoken/wxtest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func Example() {
	// In a service the MeterProvider exports to a collector; here a manual
	// reader shows what it would send.
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	obs, err := wxtokenotel.New(wxtokenotel.WithMeterProvider(provider))
	if err != nil {
		log.Fatal(err)
	}
	srv := wxtest.NewHandler() // a fake WeChat, served in-process
	client, err := wxtoken.New(wxtest.DefaultAppID, wxtest.DefaultSecret,
		wxtoken.WithBaseURL(srv.URL()), wxtoken.WithHTTPClient(srv.Client()),
		wxtoken.WithStore(wxtoken.NewMemoryStore()), wxtoken.WithObserver(obs), quiet)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Get(context.Background()); err != nil {
		log.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name != "wxtoken.events" {
			continue
		}
		for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
			if kind, _ := p.Attributes.Value("kind"); kind.AsString() == "fetch" {
				outcome, _ := p.Attributes.Value("outcome")
				fmt.Println(kind.AsString(), outcome.AsString(), p.Value)
			}
		}
	}
	// Output: fetch ok 1
}
