package wxtest

import (
	"sync"
	"time"
)

// Clock is a manual clock for tests that want to jump hours without sleeping:
// pass its Now method to WithClock, then move it with Advance or Set. It is safe
// for concurrent use. Inside a testing/synctest bubble the default clock
// (time.Now) is already fake, so Clock is not needed there.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads start until it is moved. A zero start
// means 2024-01-02 10:00:00 Beijing time, a weekday morning well clear of the
// midnight at which daily quotas reset.
func NewClock(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Date(2024, 1, 2, 2, 0, 0, 0, time.UTC)
	}
	return &Clock{now: start}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward if d is negative) and returns
// the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
