package openplatform

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/wxtoken/wxtoken"
)

// Recovery timings.
const (
	// listReuse is how long a walk of the authorizer list answers the
	// authorizers that need it (a 61023, a record without refresh token)
	// before another walk: a burst of them costs one walk.
	listReuse = time.Minute
	// listPage is the page size of api_get_authorizer_list, its maximum.
	listPage = 500
	// recoverMargin: a record saved less than this before the walk started
	// may come from an exchange the walk raced with, so Recover leaves it.
	recoverMargin = time.Minute
	// recoverLockWait bounds Recover's wait for one authorizer's lock.
	recoverLockWait = 10 * time.Second
)

// RecoverReport says what Recover changed.
type RecoverReport struct {
	Listed   int      // authorizers in the list
	Restored []string // appids that had no refresh token stored, and now have the listed one
	Replaced []string // appids whose stored refresh token differed from the listed one, replaced
	Skipped  []string // appids left alone: a tombstone, a record newer than the list, or a lock not had in time
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
	refresh map[string]string // appid → refresh token
	err     error
}

// Recover walks api_get_authorizer_list (500 a page) and restores into the
// Store every refresh token that is missing there, or that differs from the
// listed one in a record older than the walk: the way back after a record was
// lost (deleted, a Redis without persistence restarted) or a rotated refresh
// token was not saved. Each record is changed under the Store's lock of its
// key, so that no exchange runs meanwhile. Tombstones (unauthorized) are left
// alone. One walk runs at a time; a caller arriving during one shares it.
func (p *Platform) Recover(ctx context.Context) (RecoverReport, error) {
	l, err := p.walk(ctx, false)
	if err != nil {
		return RecoverReport{}, err
	}
	rep := RecoverReport{Listed: len(l.refresh)}
	for appID, refresh := range l.refresh {
		changed, err := p.restore(ctx, appID, refresh, l.started)
		switch {
		case err != nil:
			return rep, err
		case changed == restored:
			rep.Restored = append(rep.Restored, appID)
		case changed == replaced:
			rep.Replaced = append(rep.Replaced, appID)
		case changed == skipped:
			rep.Skipped = append(rep.Skipped, appID)
		}
	}
	if len(rep.Restored)+len(rep.Replaced) > 0 {
		p.log.Warn("openplatform: Recover restored refresh tokens from the authorizer list", "component", p.appID,
			"restored", rep.Restored, "replaced", rep.Replaced)
	}
	return rep, nil
}

type restoreOutcome int

const (
	unchanged restoreOutcome = iota
	restored
	replaced
	skipped
)

// restore puts refresh, listed by a walk that started at listed, into
// appID's record under its lock.
func (p *Platform) restore(ctx context.Context, appID, refresh string, listed time.Time) (restoreOutcome, error) {
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
// ("" when it is not listed), from a walk of the last minute if there was one.
func (p *Platform) listedRefresh(ctx context.Context, appID string) (string, error) {
	l, err := p.walk(ctx, true)
	if err != nil {
		return "", err
	}
	return l.refresh[appID], nil
}

// walk returns a walk of the authorizer list: the one under way, or, when
// reuse is set, one that ended less than listReuse ago, or a new one.
func (p *Platform) walk(ctx context.Context, reuse bool) (*listing, error) {
	r := &p.recovery
	r.mu.Lock()
	l := r.running
	switch {
	case l != nil:
	case reuse && r.last != nil && time.Since(r.last.ended) < listReuse:
		l = r.last
	default:
		l = &listing{done: make(chan struct{}), started: time.Now()}
		r.running = l
		r.mu.Unlock()
		l.refresh, l.err = p.list(ctx)
		l.ended = time.Now()
		r.mu.Lock()
		r.running = nil
		if l.err == nil { // a failed walk is not reused: the next caller tries again
			r.last = l
		}
		close(l.done)
	}
	r.mu.Unlock()
	select {
	case <-l.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("openplatform: waiting for the authorizer list: %w", context.Cause(ctx))
	}
	return l, l.err
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
func (p *Platform) list(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
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
				out[a.AppID] = a.RefreshToken
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
		s != "" && s != tombstoneRefresh
}
