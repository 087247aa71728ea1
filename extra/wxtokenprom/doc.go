// Package wxtokenprom exposes what a wxtoken.Client does as Prometheus
// metrics. It is a module of its own, so that the core module does not depend
// on the Prometheus client.
//
//	obs := wxtokenprom.NewObserver()
//	prometheus.MustRegister(obs) // an Observer is a prometheus.Collector
//	client, err := wxtoken.New(appID, secret, wxtoken.WithObserver(obs))
//
// One Observer serves any number of Clients: each event carries its Client's
// store key. The metrics (the same names package wxtokenotel's instruments
// get through a Prometheus exporter):
//
//	metric                        type       labels
//	wxtoken_events_total          counter    key, kind, outcome
//	wxtoken_duration_seconds      histogram  key, kind, outcome
//	wxtoken_gate_shut             gauge      key
//	wxtoken_gate_open_at_seconds  gauge      key
//
// wxtoken_events_total counts every event. kind is wxtoken.EventKind's String
// (fetch, store_load, store_save, lock_wait, wait, invalidate, gate_shut,
// gate_open) and outcome is wxtoken.Outcome's (ok, miss, retryable, permanent,
// canceled, refused, newer, cached).
//
// wxtoken_duration_seconds has a sample for each fetch, store_load,
// store_save, lock_wait and wait event: how long it took. Its buckets go from
// 1 ms to 30 s (DefaultBuckets; WithBuckets changes them).
//
// wxtoken_gate_shut is 1 while a failure keeps the Client from calling WeChat
// and 0 otherwise (0 from a key's first event on). wxtoken_gate_open_at_seconds
// is the Unix time at which a shut gate lets the next call through, and 0
// while the gate is open.
//
// The key label is the Client's store key, an appid and a mode, never a
// secret; no label carries a token, a secret or an error text. With thousands
// of keys, WithoutKey drops the label and sums all Clients. WithNamespace
// puts a prefix before the names.
//
// Observe does not allocate once a key, kind and outcome have been seen: the
// metrics for them are looked up once and kept.
package wxtokenprom
