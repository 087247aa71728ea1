package wxtoken

import (
	"context"
	"errors"
	"time"
)

// An Observer is told what a Client does, for metrics and traces: every
// request to WeChat, Store read and write, lock wait, caller's wait for a
// fetch, rejection and failure-gate change. Set one with WithObserver; the
// modules under extra/ adapt it to OpenTelemetry and Prometheus.
//
// Observe is called synchronously on the goroutine doing the work, so it must
// be fast and must not call back into the Client; a panic in it is recovered
// and logged. An Event never holds a token or a secret.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// Event is one thing a Client did.
type Event struct {
	Kind     EventKind
	Key      string        // the Client's store key: an appid and a mode, never a secret
	Outcome  Outcome       // how it ended
	Duration time.Duration // how long it took; zero for instant events
	Force    bool          // EventFetch: a stable-token force refresh
	Until    time.Time     // EventGateShut: when WeChat may be called again
	Err      error         // the failure, scrubbed of secrets and tokens; nil on success
}

// EventKind says what an Event is about.
type EventKind uint8

// The kinds of Event.
const (
	EventFetch      EventKind = iota + 1 // a request to WeChat's token endpoint
	EventStoreLoad                       // Store.Load
	EventStoreSave                       // Store.Save
	EventLockWait                        // Locker.Lock, from the first attempt until held or given up
	EventWait                            // a caller waited for a shared fetch (no valid token was cached)
	EventInvalidate                      // a caller reported a rejected token
	EventGateShut                        // a failure shut the gate: WeChat is not called until Until
	EventGateOpen                        // a successful fetch opened the gate again
	EventQuotaSpent                      // the token endpoint answered 45009: Until is when the daily quota resets
)

var eventKindNames = [...]string{
	EventFetch: "fetch", EventStoreLoad: "store_load", EventStoreSave: "store_save",
	EventLockWait: "lock_wait", EventWait: "wait", EventInvalidate: "invalidate",
	EventGateShut: "gate_shut", EventGateOpen: "gate_open", EventQuotaSpent: "quota_spent",
}

// String returns the kind's name in snake case, as metric labels use it.
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return "unknown"
}

// Outcome classifies how an Event ended.
type Outcome uint8

// The outcomes.
const (
	OutcomeOK        Outcome = iota + 1 // done: a token fetched, read, saved; a lock held
	OutcomeMiss                         // EventStoreLoad: nothing (usable) under the key
	OutcomeRetryable                    // failed in a way worth retrying (IsRetryable)
	OutcomePermanent                    // failed until something changes (IsPermanent)
	OutcomeCanceled                     // a context ended first
	OutcomeRefused                      // the Client's own guard said no (shut gate, rejection backoff, force budget)
	OutcomeNewer                        // EventStoreSave: the Store kept a newer token
	OutcomeCached                       // EventInvalidate: another valid token was at hand, no fetch
)

var outcomeNames = [...]string{
	OutcomeOK: "ok", OutcomeMiss: "miss", OutcomeRetryable: "retryable", OutcomePermanent: "permanent",
	OutcomeCanceled: "canceled", OutcomeRefused: "refused", OutcomeNewer: "newer", OutcomeCached: "cached",
}

// String returns the outcome's name in snake case, as metric labels use it.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) && outcomeNames[o] != "" {
		return outcomeNames[o]
	}
	return "unknown"
}

// outcomeOf classifies err for an Event.
func outcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
		return OutcomeMiss
	case errors.Is(err, ErrNewerToken):
		return OutcomeNewer
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrClosed):
		return OutcomeCanceled
	case ownRefusal(err):
		return OutcomeRefused
	case IsPermanent(err):
		return OutcomePermanent
	}
	return OutcomeRetryable
}

// observe hands e to the Observer, if any, filling in the key.
func (c *Client) observe(e Event) {
	if c.cfg.observer == nil {
		return
	}
	e.Key = c.key
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("wxtoken: the Observer panicked", "appid", c.appID, "kind", e.Kind.String())
		}
	}()
	c.cfg.observer.Observe(e)
}

// observeSince reports an Event of kind that started at start and ended with err.
func (c *Client) observeSince(kind EventKind, start time.Time, err error) {
	if c.cfg.observer == nil {
		return
	}
	c.observe(Event{Kind: kind, Outcome: outcomeOf(err), Duration: time.Since(start), Err: err})
}
