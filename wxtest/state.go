package wxtest

import "time"

// token is one access_token the fake issued.
type token struct {
	value   string
	appID   string
	stable  bool
	expires time.Time
	// invalidAt, when set, is when the token stops working before its expiry:
	// superseded by a newer one, force-refreshed away or revoked.
	invalidAt time.Time
}

// check returns the errcode a business endpoint answers for t at now: 0 when
// valid, 40001 when superseded or revoked, 42001 when expired. Whichever
// happened first decides.
func (t *token) check(now time.Time) int {
	if !t.invalidAt.IsZero() && !now.Before(t.invalidAt) && t.invalidAt.Before(t.expires) {
		return CodeInvalidCredential
	}
	if !now.Before(t.expires) {
		return CodeTokenExpired
	}
	return CodeOK
}

// invalidateAt makes t stop working at at, unless it already stops earlier.
func (t *token) invalidateAt(at time.Time) {
	if t.invalidAt.IsZero() || at.Before(t.invalidAt) {
		t.invalidAt = at
	}
}

// remaining is the expires_in to report for t at now, in whole seconds.
func (t *token) remaining(now time.Time) int64 {
	return int64(t.expires.Sub(now) / time.Second)
}

// window counts calls in one quota period (a day or a minute).
type window struct {
	period int64
	n      int
}

// take counts one call in period and reports whether it is within limit.
// A refused call is not counted. limit <= 0 means no limit.
func (w *window) take(period int64, limit int) bool {
	if w.period != period {
		w.period, w.n = period, 0
	}
	if limit > 0 && w.n >= limit {
		return false
	}
	w.n++
	return true
}

// beijingDay numbers the day of t in Beijing time (UTC+8), where WeChat's
// daily quotas reset at midnight.
func beijingDay(t time.Time) int64 {
	const offset = 8 * 60 * 60
	return floorDiv(t.Unix()+offset, 24*60*60)
}

func minuteOf(t time.Time) int64 { return floorDiv(t.Unix(), 60) }

func hourOf(t time.Time) int64 { return floorDiv(t.Unix(), 60*60) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// app is one account and its tokens and quota counters.
type app struct {
	id, secret string

	plain     *token // latest /cgi-bin/token token
	prevPlain *token // the one before, working until its overlap ends
	stable    *token // current /cgi-bin/stable_token token
	lastForce time.Time

	tokenDay     window
	stableDay    window
	stableMinute window
	forceDay     window

	tickets map[string]*ticketSlot // by type, made on first use
}

// issuePlain makes a new /cgi-bin/token token at now. The previous token keeps
// working for Overlap; any older one stops at once.
func (s *Server) issuePlain(a *app, now time.Time) *token {
	if a.prevPlain != nil {
		a.prevPlain.invalidateAt(now)
	}
	if a.plain != nil {
		a.plain.invalidateAt(now.Add(Overlap))
	}
	a.prevPlain = a.plain
	a.plain = s.newToken(a.id, false, now)
	return a.plain
}

// stableToken answers a /cgi-bin/stable_token call that passed its checks.
func (s *Server) stableToken(a *app, now time.Time, force bool) *token {
	cur := a.stable
	usable := cur != nil && cur.check(now) == CodeOK
	if force {
		if usable && !a.lastForce.IsZero() && now.Sub(a.lastForce) < s.cfg.forceInterval {
			// WeChat does not refresh again within the interval: same token back.
			return cur
		}
		if cur != nil {
			cur.invalidateAt(now)
		}
		a.lastForce = now
		a.stable = s.newToken(a.id, true, now)
		return a.stable
	}
	if usable && cur.expires.Sub(now) > Overlap {
		return cur
	}
	// Rotated early: the old token still works until its own expiry.
	a.stable = s.newToken(a.id, true, now)
	return a.stable
}

func (s *Server) newToken(appID string, stable bool, now time.Time) *token {
	t := &token{value: randomToken(), appID: appID, stable: stable, expires: now.Add(s.cfg.lifetime)}
	s.tokens[t.value] = t
	return t
}
