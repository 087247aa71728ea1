package wxtoken

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventRecorder is an Observer that keeps every Event.
type eventRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *eventRecorder) Observe(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// take returns the events so far and forgets them.
func (r *eventRecorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// of returns the events of kind among ev.
func of(ev []Event, kind EventKind) []Event {
	var out []Event
	for _, e := range ev {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// requireClean fails if any event shows a token or the secret, or names
// another key.
func requireClean(t *testing.T, ev []Event, tokens ...string) {
	t.Helper()
	for _, e := range ev {
		text := fmt.Sprintf("%+v %v", e, e.Err)
		assert.NotContains(t, text, testSecret)
		for _, tok := range tokens {
			assert.NotContains(t, text, tok)
		}
		assert.Equal(t, testAppID, e.Key)
	}
}

func TestObserverSeesAColdFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &eventRecorder{}
		s := &script{reply: func(n int64) (*http.Response, error) {
			time.Sleep(20 * time.Millisecond) // the upstream's latency, in fake time
			return okToken(n, 7200)
		}}
		c := newTestClient(t, newUpstream(t, s.responder), WithStore(newHeldLocker()), WithObserver(rec))
		require.Equal(t, "token-1", mustGet(t, c))
		c.waitIdle()
		ev := rec.take()
		requireClean(t, ev, "token-1")

		loads := of(ev, EventStoreLoad)
		require.Len(t, loads, 2, "before the lock and after it")
		assert.Equal(t, OutcomeMiss, loads[0].Outcome)
		require.Len(t, of(ev, EventLockWait), 1)
		assert.Equal(t, OutcomeOK, of(ev, EventLockWait)[0].Outcome)
		fetch := of(ev, EventFetch)
		require.Len(t, fetch, 1)
		assert.Equal(t, OutcomeOK, fetch[0].Outcome)
		assert.Equal(t, 20*time.Millisecond, fetch[0].Duration)
		assert.False(t, fetch[0].Force)
		wait := of(ev, EventWait)
		require.Len(t, wait, 1)
		assert.Equal(t, 20*time.Millisecond, wait[0].Duration)
		require.Len(t, of(ev, EventStoreSave), 1)
		assert.Equal(t, OutcomeOK, of(ev, EventStoreSave)[0].Outcome)
		assert.Empty(t, of(ev, EventGateShut))

		require.Equal(t, "token-1", mustGet(t, c))
		assert.Empty(t, rec.take(), "a cached Get is not an event")
	})
}

func TestObserverSeesTheGateShutAndOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &eventRecorder{}
		var fail atomic.Bool
		fail.Store(true)
		s := &script{reply: func(n int64) (*http.Response, error) {
			if fail.Load() {
				return apiErr(CodeIPNotWhitelisted)
			}
			return okToken(n, 7200)
		}}
		c := newTestClient(t, newUpstream(t, s.responder), WithObserver(rec))
		_, err := c.Get(context.Background())
		require.Error(t, err)
		ev := rec.take()
		requireClean(t, ev)
		require.Len(t, of(ev, EventFetch), 1)
		assert.Equal(t, OutcomePermanent, of(ev, EventFetch)[0].Outcome)
		shut := of(ev, EventGateShut)
		require.Len(t, shut, 1)
		assert.Equal(t, OutcomePermanent, shut[0].Outcome)
		assert.Equal(t, time.Now().Add(cooldown), shut[0].Until)
		assert.True(t, IsPermanent(shut[0].Err))
		assert.Equal(t, OutcomePermanent, of(ev, EventWait)[0].Outcome)

		fail.Store(false)
		advance(cooldown)
		require.Equal(t, "token-2", mustGet(t, c))
		ev = rec.take()
		require.Len(t, of(ev, EventGateOpen), 1)
		assert.Equal(t, OutcomeOK, of(ev, EventFetch)[0].Outcome)
	})
}

func TestObserverSeesInvalidations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &eventRecorder{}
		c := newTestClient(t, newUpstream(t, countingTokens().responder), WithObserver(rec))
		require.Equal(t, "token-1", mustGet(t, c))
		rec.take()

		_, err := c.Invalidate(context.Background(), "token-1")
		require.ErrorIs(t, err, ErrRejectedTooSoon)
		advance(time.Minute)
		_, err = c.Invalidate(context.Background(), "token-1")
		require.NoError(t, err)
		_, err = c.Invalidate(context.Background(), "token-1")
		require.NoError(t, err)

		inv := of(rec.take(), EventInvalidate)
		require.Len(t, inv, 3)
		assert.Equal(t, []Outcome{OutcomeRefused, OutcomeOK, OutcomeCached},
			[]Outcome{inv[0].Outcome, inv[1].Outcome, inv[2].Outcome})
		requireClean(t, inv, "token-1", "token-2")
	})
}

func TestObserverSeesStoreFailuresAndReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &eventRecorder{}
		st := &failingSaves{MemoryStore: NewMemoryStore()}
		c := newTestClient(t, newUpstream(t, countingTokens().responder), WithStore(st), WithObserver(rec))
		st.fail.Store(true)
		require.Equal(t, "token-1", mustGet(t, c))
		c.waitIdle()
		save := of(rec.take(), EventStoreSave)
		require.Len(t, save, 1)
		assert.Equal(t, OutcomeRetryable, save[0].Outcome)
		assert.Equal(t, "disk full", save[0].Err.Error())

		st.fail.Store(false)
		newer := Token{AccessToken: "newer", ExpiresIn: 7200, CreateTime: time.Now().Add(time.Second)}
		require.NoError(t, st.Save(context.Background(), testAppID, newer))
		advance(time.Minute)
		_, err := c.Invalidate(context.Background(), "token-1") // adopts "newer" from the Store
		require.NoError(t, err)
		assert.Equal(t, OutcomeOK, of(rec.take(), EventStoreLoad)[0].Outcome)
	})
}

// A panicking Observer is recovered and logged, and changes nothing.
func TestPanickingObserverIsHarmless(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := ObserverFunc(func(Event) { panic("observer exploded") })
		c := newTestClient(t, newUpstream(t, countingTokens().responder), WithObserver(boom))
		assert.Equal(t, "token-1", mustGet(t, c))
	})
}

func TestEventNames(t *testing.T) {
	var kinds, outcomes []string
	for k := EventFetch; k <= EventQuotaSpent; k++ {
		kinds = append(kinds, k.String())
	}
	for o := OutcomeOK; o <= OutcomeCached; o++ {
		outcomes = append(outcomes, o.String())
	}
	assert.Equal(t, "fetch store_load store_save lock_wait wait invalidate gate_shut gate_open quota_spent", strings.Join(kinds, " "))
	assert.Equal(t, "ok miss retryable permanent canceled refused newer cached", strings.Join(outcomes, " "))
	assert.Equal(t, "unknown", EventKind(0).String())
	assert.Equal(t, "unknown", Outcome(99).String())
}
