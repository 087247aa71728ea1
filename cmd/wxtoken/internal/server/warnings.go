package server

import (
	"sync"
	"time"
)

// warnEvery is how often a failing credential's failure is logged: anyone
// who can reach the port can make requests fail, and one outage answered to
// a thousand callers is one problem, not a thousand log lines.
const warnEvery = 10 * time.Second

// warnGate lets one warning a period through and counts the ones it holds
// back. The zero warnGate lets the first warning through.
type warnGate struct {
	mu   sync.Mutex
	next time.Time
	held int
}

// allow reports whether a warning may be logged at now, and how many were
// held back since the last one that was.
func (g *warnGate) allow(now time.Time) (ok bool, held int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.next) {
		g.held++
		return false, 0
	}
	held, g.held, g.next = g.held, 0, now.Add(warnEvery)
	return true, held
}
