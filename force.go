package wxtoken

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Stable-token force refreshes: WeChat allows one per 30 s and 20 a day, per
// account, and each one kills the previous token at once. They are booked in
// the Store, under the token's key plus forceKeySuffix, so that a fleet shares
// one budget; the booking is read and written under the Store's lock.
const (
	forceInterval  = 30 * time.Second
	forcePerDay    = 20
	forceKeySuffix = ".force"
	// forceRecordPrefix starts the text of a booking record, which a Store
	// keeps as a Token: its AccessToken lists the Unix seconds of the force
	// refreshes of the last day in base 36, such as "force.t1x9k2.t1xa0c".
	forceRecordPrefix = "force"
)

// bookForce books a force refresh at now if WeChat's limits allow one, for
// this Client and for every other process sharing its Store.
func (c *Client) bookForce(ctx context.Context, now time.Time) error {
	c.mu.Lock()
	local := c.rareLocked().forces
	c.mu.Unlock()
	perDay, interval := c.info.ForcePerDay, c.info.ForceInterval
	if err := checkForces(recentForces(local, now), now, perDay, interval); err != nil {
		return err // known here already: no need to ask the Store
	}
	key := c.key + forceKeySuffix
	rec, err := c.loadStore(ctx, key)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("%w: the booking in the store cannot be read: %w", ErrForceRefreshLimited, err)
	}
	forces := recentForces(mergeForces(local, decodeForces(rec.AccessToken, perDay)), now)
	if err := checkForces(forces, now, perDay, interval); err != nil {
		return err
	}
	forces = append(forces, now)
	booking := Token{AccessToken: encodeForces(forces), ExpiresIn: maxExpiresIn, CreateTime: now}
	if err := c.saveStore(ctx, key, booking); err != nil {
		return fmt.Errorf("%w: the booking cannot be saved: %w", ErrForceRefreshLimited, err)
	}
	c.mu.Lock()
	c.rareLocked().forces = forces
	c.mu.Unlock()
	return nil
}

// checkForces refuses a force refresh at now after forces (the last day's),
// when perDay were made or the last was less than interval ago.
func checkForces(forces []time.Time, now time.Time, perDay int, interval time.Duration) error {
	if n := len(forces); n >= perDay {
		return fmt.Errorf("%w: %d force refreshes in the last 24 h", ErrForceRefreshLimited, n)
	} else if n > 0 && now.Sub(forces[n-1]) < interval {
		return fmt.Errorf("%w: the last one was %s ago, WeChat requires %s",
			ErrForceRefreshLimited, now.Sub(forces[n-1]).Round(time.Second), interval)
	}
	return nil
}

// recentForces returns the force refreshes of the day before now, oldest first.
func recentForces(forces []time.Time, now time.Time) []time.Time {
	var recent []time.Time
	for _, t := range forces {
		if now.Sub(t) < 24*time.Hour {
			recent = append(recent, t)
		}
	}
	return recent
}

// mergeForces joins two sorted lists of force refreshes, counting one made
// within the same second once (the booking keeps whole seconds, this
// process's own list the precise time, which sorts after them).
func mergeForces(a, b []time.Time) []time.Time {
	merged := make([]time.Time, 0, len(a)+len(b))
	for len(a) > 0 || len(b) > 0 {
		var next time.Time
		if len(b) == 0 || (len(a) > 0 && a[0].Before(b[0])) {
			next, a = a[0], a[1:]
		} else {
			next, b = b[0], b[1:]
		}
		if n := len(merged); n > 0 && next.Unix() == merged[n-1].Unix() {
			merged[n-1] = next // the precise one, not the booking's whole second
			continue
		}
		merged = append(merged, next)
	}
	return merged
}

func encodeForces(forces []time.Time) string {
	var b strings.Builder
	b.WriteString(forceRecordPrefix)
	for _, t := range forces {
		b.WriteByte('.')
		b.WriteString(strconv.FormatInt(t.Unix(), 36))
	}
	return b.String()
}

// decodeForces reads a booking record's text, sorted; anything it cannot read
// counts as no booking.
func decodeForces(s string, perDay int) []time.Time {
	fields := strings.Split(s, ".")
	if fields[0] != forceRecordPrefix || len(fields) > perDay+2 {
		return nil
	}
	var forces []time.Time
	for _, f := range fields[1:] {
		sec, err := strconv.ParseInt(f, 36, 64)
		if err != nil {
			return nil
		}
		t := time.Unix(sec, 0)
		if n := len(forces); n > 0 && t.Before(forces[n-1]) {
			return nil
		}
		forces = append(forces, t)
	}
	return forces
}
