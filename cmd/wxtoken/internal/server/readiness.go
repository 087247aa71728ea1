package server

import (
	"log/slog"
	"sync"
	"time"
)

// readyFor is how long one Store check answers /readyz: the probe needs no
// authentication, so that many probes (or anyone) cost one Store call a
// second, not one each.
const readyFor = time.Second

// readiness caches the result of the last Store check and logs only its
// changes: a Redis that is down is one warning, not one per probe.
type readiness struct {
	mu      sync.Mutex
	checked time.Time
	err     error
}

// check returns whether the Store answered at its last check, made anew
// by probe when that one is older than readyFor. Concurrent callers wait
// for one probe, bounded by its own timeout.
func (r *readiness) check(now time.Time, probe func() error, log *slog.Logger) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.checked.IsZero() && !now.Before(r.checked) && now.Sub(r.checked) < readyFor {
		return r.err == nil
	}
	err := probe()
	switch {
	case err != nil && (r.err == nil || r.checked.IsZero()):
		log.Warn("wxtoken serve: the store does not answer", "err", err)
	case err == nil && r.err != nil:
		log.Info("wxtoken serve: the store answers again")
	}
	r.checked, r.err = now, err
	return err == nil
}
