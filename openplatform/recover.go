package openplatform

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wxtoken/wxtoken"
)

// Recovery timings.
const (
	// listReuse is how long a walk of the authorizer list answers the
	// authorizers whose record has no refresh token before another walk: a
	// burst of them costs one walk. After a 61023 only a walk that started
	// after the failing exchange will do.
	listReuse = time.Minute
	// listPage is the page size of api_get_authorizer_list, its maximum.
	listPage = 500
	// recoverMargin: a record saved less than this before the walk started
	// may come from an exchange the walk raced with, so Recover leaves it.
	recoverMargin = time.Minute
	// recoverLockWait bounds Recover's wait for one authorizer's lock.
	recoverLockWait = 10 * time.Second
	// walkTimeout bounds a walk of the list, which runs on a context of its
	// own: the caller that started it may leave, the others still wait for it.
	walkTimeout = 2 * time.Minute
)

// RecoverReport says what Recover changed.
type RecoverReport struct {
	Listed   int      // authorizers in the list
	Restored []string // appids that had no refresh token stored, and now have the listed one
	Replaced []string // appids whose stored refresh token differed from the listed one, replaced
	Skipped  []string // appids left alone: a tombstone, a record newer than the list, or a lock not had in time
	// Reauthorized lists the appids whose tombstone (an unauthorized event)
	// is older than the authorization the list gives: the tombstone is
	// lifted and the listed refresh token restored.
	Reauthorized []string
}

// recovery is the one walk of the authorizer list at a time.
type recovery struct {
	mu      sync.Mutex
	running *listing
	last    *listing
}

// listing is one walk of the authorizer list.
type listing struct {
	done    chan struct{} // closed when the walk ended
	started time.Time
	ended   time.Time
	listed  map[string]listed // appid → what the list says of it
	err     error
}

// listed is what the authorizer list says of one authorizer.
type listed struct {
	refresh    string
	authorized time.Time // auth_time: when it last authorized the platform; zero when not given
}

// Recover walks api_get_authorizer_list (500 a page) and restores into the
// Store every refresh token that is missing there, or that differs from the
// listed one in a record older than the walk: the way back after a record was
// lost (deleted, a Redis without persistence restarted) or a rotated refresh
// token was not saved. Each record is changed under the Store's lock of its
// key, so that no exchange runs meanwhile. Tombstones (unauthorized) are left
// alone, unless the list shows an authorization newer than their
// unauthorized event: then the listed refresh token replaces them. One walk
// runs at a time; a caller arriving during one waits for it and shares the
// next.
func (p *Platform) Recover(ctx context.Context) (RecoverReport, error) {
	l, err := p.walk(ctx, time.Now())
	if err != nil {
		return RecoverReport{}, err
	}
	rep := RecoverReport{Listed: len(l.listed)}
	for appID, a := range l.listed {
		changed, err := p.restore(ctx, appID, a, l.started)
		switch {
		case err != nil:
			return rep, err
		case changed == restored:
			rep.Restored = append(rep.Restored, appID)
		case changed == replaced:
			rep.Replaced = append(rep.Replaced, appID)
		case changed == skipped:
			rep.Skipped = append(rep.Skipped, appID)
		case changed == reauthorized:
			rep.Reauthorized = append(rep.Reauthorized, appID)
		}
	}
	if len(rep.Restored)+len(rep.Replaced)+len(rep.Reauthorized) > 0 {
		p.log.Warn("openplatform: Recover restored refresh tokens from the authorizer list", "component", p.appID,
			"restored", rep.Restored, "replaced", rep.Replaced, "reauthorized", rep.Reauthorized)
	}
	return rep, nil
}

type restoreOutcome int

const (
	unchanged restoreOutcome = iota
	restored
	replaced
	skipped
	reauthorized
)

// restore puts a's refresh token, listed by a walk that started at listed,
// into appID's record under its lock.
func (p *Platform) restore(ctx context.Context, appID string, a listed, listedAt time.Time) (restoreOutcome, error) {
	refresh, listed := a.refresh, listedAt
	key := p.authorizerKey(appID)
	if p.locker != nil {
		lctx, cancel := context.WithTimeout(ctx, recoverLockWait)
		unlock, err := p.locker.Lock(lctx, key, wxtoken.DefaultLockLease)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return skipped, ctx.Err()
			}
			return skipped, nil
		}
		defer func() { _ = unlock(context.WithoutCancel(ctx)) }()
	}
	cur, err := p.store.Load(ctx, key)
	found := err == nil
	switch {
	case err != nil && !errors.Is(err, wxtoken.ErrNotFound) && !errors.Is(err, wxtoken.ErrCorrupt):
		return skipped, fmt.Errorf("openplatform: Recover: reading %s: %w", key, err)
	case found && isTombstone(cur) && !a.authorized.IsZero() && !a.authorized.Before(cancelledAt(cur)):
		return p.lift(ctx, appID, cur, a, listed)
	case found && isTombstone(cur):
		return skipped, nil
	case found && cur.Refresh == refresh:
		return unchanged, nil
	case found && !cur.CreateTime.Before(listed.Add(-recoverMargin)):
		return skipped, nil
	}
	rec := recoveredRecord(cur, found, refresh, listed)
	err = p.store.Save(ctx, key, rec)
	switch {
	case errors.Is(err, wxtoken.ErrNewerToken):
		return skipped, nil
	case err != nil:
		return skipped, wxtoken.ScrubError(fmt.Errorf("openplatform: Recover: saving %s: %w", key, err), refresh)
	case found && cur.Refresh != "":
		return replaced, nil
	}
	return restored, nil
}

// lift replaces the tombstone cur of appID, which an authorization newer
// than its event supersedes, with a's refresh token; the caller holds the
// key's lock.
func (p *Platform) lift(ctx context.Context, appID string, cur wxtoken.Token, a listed, listedAt time.Time) (restoreOutcome, error) {
	rec := recoveredRecord(cur, false, a.refresh, listedAt)
	if !rec.CreateTime.After(cur.CreateTime) {
		rec.CreateTime = cur.CreateTime.Add(time.Millisecond) // newer than the tombstone, for the Store
	}
	if err := p.noteAuthorized(ctx, appID, a.authorized); err != nil {
		return skipped, err
	}
	err := p.store.Save(ctx, p.authorizerKey(appID), rec)
	switch {
	case errors.Is(err, wxtoken.ErrNewerToken):
		return skipped, nil
	case err != nil:
		return skipped, wxtoken.ScrubError(fmt.Errorf("openplatform: Recover: saving %s: %w", appID, err), a.refresh)
	}
	p.registry.Forget(appID)
	return reauthorized, nil
}

// recoveredRecord is the record that gives appID the listed refresh token:
// the stored access token, if it still works, dated at the walk with its
// lifetime shortened to match, so that it expires when it did; otherwise an
// expired placeholder that the engine never serves, whose refresh token the
// next exchange uses.
func recoveredRecord(cur wxtoken.Token, found bool, refresh string, listed time.Time) wxtoken.Token {
	if found && cur.AccessToken != placeholderAccess && cur.ExpiresAt().After(listed.Add(time.Minute)) {
		rec := cur
		rec.Refresh = refresh
		rec.ExpiresIn = int64(cur.ExpiresAt().Sub(listed) / time.Second)
		rec.CreateTime = listed
		return rec
	}
	return wxtoken.Token{AccessToken: placeholderAccess, ExpiresIn: 1, CreateTime: listed.Add(-time.Second),
		Refresh: refresh}
}

// listedRefresh returns the refresh token the authorizer list gives appID
// ("" when it is not listed), from a walk that started at or after after:
// one that started before may list a refresh token rotated since.
func (p *Platform) listedRefresh(ctx context.Context, appID string, after time.Time) (string, error) {
	l, err := p.walk(ctx, after)
	if err != nil {
		return "", err
	}
	return l.listed[appID].refresh, nil
}

// walk returns a walk of the authorizer list that started at or after
// after: the last one or the one under way, when it did, or a new one. A
// walk runs on a goroutine and a context of its own (ctx's values, not its
// cancellation, with walkTimeout), so that the caller that started it may
// leave while others still wait for it; a failed walk is not reused.
func (p *Platform) walk(ctx context.Context, after time.Time) (*listing, error) {
	for {
		l, err := p.pickWalk(ctx, after)
		if err != nil {
			return nil, err
		}
		select {
		case <-l.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("openplatform: waiting for the authorizer list: %w", context.Cause(ctx))
		}
		if !l.started.Before(after) {
			return l, l.err
		}
		// A walk that was under way already: its list may be too old.
	}
}

// pickWalk returns the walk to wait for: the one under way, the last one if
// it started at or after after and did not fail, or a new one it starts.
func (p *Platform) pickWalk(ctx context.Context, after time.Time) (*listing, error) {
	r := &p.recovery
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.running != nil:
		return r.running, nil
	case r.last != nil && !r.last.started.Before(after):
		return r.last, nil
	case p.ctx.Err() != nil:
		return nil, wxtoken.ErrClosed
	}
	l := &listing{done: make(chan struct{}), started: time.Now()}
	r.running = l
	p.wg.Add(1)
	go p.runWalk(context.WithoutCancel(ctx), l)
	return l, nil
}

// runWalk walks the list for l and publishes it. A panic (in a user's
// RoundTripper, say) becomes l's error: the walks after it still run.
func (p *Platform) runWalk(ctx context.Context, l *listing) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, walkTimeout)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel) // Close ends it
	defer stop()
	r := &p.recovery
	defer func() {
		if v := recover(); v != nil {
			l.err = fmt.Errorf("openplatform: reading the authorizer list panicked: %s",
				wxtoken.ScrubText(fmt.Sprint(v), p.secret()))
			p.log.Error("openplatform: recovered from a panic while reading the authorizer list",
				"component", p.appID, "err", l.err)
		}
		l.ended = time.Now()
		r.mu.Lock()
		r.running = nil
		if l.err == nil {
			r.last = l
		}
		r.mu.Unlock()
		close(l.done)
	}()
	l.listed, l.err = p.list(ctx)
}

// listAnswer is a page of api_get_authorizer_list.
type listAnswer struct {
	Total int `json:"total_count"`
	List  []struct {
		AppID        string `json:"authorizer_appid"`
		RefreshToken string `json:"refresh_token"`
		AuthTime     int64  `json:"auth_time"`
	} `json:"list"`
}

// list reads the whole authorizer list, page by page.
func (p *Platform) list(ctx context.Context) (map[string]listed, error) {
	out := map[string]listed{}
	for offset, pages := 0, 0; ; pages++ {
		var page listAnswer
		err := p.withComponentToken(ctx, func(ctok string) error {
			body := map[string]any{"component_appid": p.appID, "offset": offset, "count": listPage}
			return call(ctx, p.hc, p.baseURL, "/cgi-bin/component/api_get_authorizer_list",
				url.Values{"component_access_token": {ctok}}, body, &page, classifyWithToken, p.secret(), ctok)
		})
		if err != nil {
			return nil, fmt.Errorf("openplatform: reading the authorizer list at offset %d: %w", offset, err)
		}
		for _, a := range page.List {
			if validAppID(a.AppID) && validRefresh(a.RefreshToken) {
				l := listed{refresh: a.RefreshToken}
				if a.AuthTime > 0 && a.AuthTime < 1<<40 {
					l.authorized = time.Unix(a.AuthTime, 0)
				}
				out[a.AppID] = l
			}
		}
		offset += len(page.List)
		// The list may shrink while it is walked; a short page or the
		// total reached ends it, and so does a page bound well past the total.
		if len(page.List) < listPage || offset >= page.Total || pages > page.Total/listPage+1 {
			return out, nil
		}
	}
}

// validRefresh reports whether s can be a stored refresh token.
func validRefresh(s string) bool {
	return (wxtoken.Token{AccessToken: placeholderAccess, ExpiresIn: 1, CreateTime: time.Unix(1, 0), Refresh: s}).Validate() == nil &&
		s != "" && !strings.HasPrefix(s, tombstoneRefresh)
}
