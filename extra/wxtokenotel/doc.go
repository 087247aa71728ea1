// Package wxtokenotel records what a wxtoken.Client does as OpenTelemetry
// metrics. It is a module of its own, so that the core module does not depend
// on OpenTelemetry.
//
//	obs, err := wxtokenotel.New() // the global MeterProvider
//	client, err := wxtoken.New(appID, secret, wxtoken.WithObserver(obs))
//
// One Observer serves any number of Clients: each event carries its Client's
// store key. The instruments, and the names a Prometheus exporter gives them
// (the same names package wxtokenprom uses):
//
//	instrument            type       unit     attributes         Prometheus name
//	wxtoken.events        counter    {event}  key, kind, outcome wxtoken_events_total
//	wxtoken.duration      histogram  s        key, kind, outcome wxtoken_duration_seconds
//	wxtoken.gate.shut     gauge               key                wxtoken_gate_shut
//	wxtoken.gate.open_at  gauge      s        key                wxtoken_gate_open_at_seconds
//
// wxtoken.events counts every event. kind is wxtoken.EventKind's String
// (fetch, store_load, store_save, lock_wait, wait, invalidate, gate_shut,
// gate_open) and outcome is wxtoken.Outcome's (ok, miss, retryable, permanent,
// canceled, refused, newer, cached).
//
// wxtoken.duration has a sample for each fetch, store_load, store_save,
// lock_wait and wait event: how long it took, in seconds. Its buckets go from
// 1 ms to 30 s (DefaultBuckets; WithBuckets changes them, and so can an SDK
// view).
//
// wxtoken.gate.shut is 1 while a failure keeps the Client from calling WeChat
// and 0 otherwise (0 from a key's first event on). wxtoken.gate.open_at is the
// Unix time, in seconds, at which a shut gate lets the next call through, and
// 0 while the gate is open.
//
// The key attribute is the Client's store key, an appid and a mode, never a
// secret; no attribute carries a token, a secret or an error text. With
// thousands of keys, WithoutKey drops the attribute and sums all Clients.
//
// Observe does not allocate once a key, kind and outcome have been seen: the
// attribute sets are built once and kept.
package wxtokenotel
