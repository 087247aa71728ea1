package wxtokenprom_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/extra/wxtokenprom"
	"github.com/wxtoken/wxtoken/wxtest"
)

func Example() {
	// In a service, register with the registry that promhttp serves.
	reg := prometheus.NewRegistry()
	obs := wxtokenprom.NewObserver()
	reg.MustRegister(obs)

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

	text, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain, "wxtoken_events_total", "wxtoken_gate_shut")
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range strings.Split(string(text), "\n") {
		if strings.Contains(line, `kind="fetch"`) || strings.HasPrefix(line, "wxtoken_gate_shut") {
			fmt.Println(line)
		}
	}
	// Output:
	// wxtoken_events_total{key="wx0123456789abcdef",kind="fetch",outcome="ok"} 1
	// wxtoken_gate_shut{key="wx0123456789abcdef"} 0
}
