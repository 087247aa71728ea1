package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const secretToken = "ACCESS-TOKEN-must-never-leak-0123456789"

// setup starts a Redis server and returns a Store on it and a raw client.
func setup(t *testing.T, opts ...Option) (*Store, *redis.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.NewClient(t)
	return New(rdb, opts...), rdb, srv
}

// tokenAt returns a two-hour token created at ct.
func tokenAt(ct time.Time, access string) wxtoken.Token {
	return wxtoken.Token{AccessToken: access, ExpiresIn: 7200, CreateTime: ct}
}

func requireSameToken(t *testing.T, want, got wxtoken.Token) {
	t.Helper()
	assert.Equal(t, want.AccessToken, got.AccessToken)
	assert.Equal(t, want.ExpiresIn, got.ExpiresIn)
	assert.True(t, want.CreateTime.Equal(got.CreateTime), "createTime: want %v, got %v", want.CreateTime, got.CreateTime)
}

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	st, _, _ := setup(t)
	ctx := t.Context()
	tok := tokenAt(time.Now().Add(-time.Minute), "tok-1")

	require.NoError(t, st.Save(ctx, "wxapp1", tok))
	got, err := st.Load(ctx, "wxapp1")
	require.NoError(t, err)
	requireSameToken(t, tok, got)
}

func TestStoredValueIsTheCacheFileJSON(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	// Milliseconds in UTC, as the Node recipe writes them.
	tok := tokenAt(time.Now().UTC().Truncate(time.Millisecond), "tok-json")

	require.NoError(t, st.Save(ctx, "wxapp1", tok))
	raw, err := rdb.Get(ctx, "wxtoken:{wxapp1}").Result()
	require.NoError(t, err)

	var fields map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &fields))
	assert.Len(t, fields, 3)
	assert.Equal(t, "tok-json", fields["access_token"])
	assert.Equal(t, 7200.0, fields["expires_in"])
	assert.Equal(t, tok.CreateTime.Format(time.RFC3339Nano), fields["createTime"])
	want, err := json.Marshal(tok)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), raw)
}

func TestTTLIsRemainingLifetime(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	tok := tokenAt(time.Now().Add(-30*time.Minute), "tok-ttl")
	before := time.Until(tok.ExpiresAt())

	require.NoError(t, st.Save(ctx, "wxapp1", tok))
	ttl, err := rdb.PTTL(ctx, "wxtoken:{wxapp1}").Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Duration(0))
	assert.LessOrEqual(t, ttl, before)
	assert.Greater(t, ttl, before-5*time.Second)
}

// A record with a refresh token never lapses: it is what obtains the next
// credential. It keeps no TTL, even once its access token expired.
func TestRecordWithRefreshTokenHasNoTTL(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	tok := tokenAt(time.Now().Add(-3*time.Hour), "tok-expired")
	tok.Refresh = "refresh-1"
	require.NoError(t, st.Save(ctx, "authorizer", tok))
	ttl, err := rdb.PTTL(ctx, "wxtoken:{authorizer}").Result()
	require.NoError(t, err)
	assert.Equal(t, time.Duration(-1), ttl, "no TTL")
	got, err := st.Load(ctx, "authorizer")
	require.NoError(t, err)
	assert.Equal(t, "refresh-1", got.Refresh)
}

func TestCustomPrefix(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t, WithPrefix("shop1:"))
	ctx := t.Context()
	require.NoError(t, st.Save(ctx, "wxapp1", tokenAt(time.Now(), "tok-p")))
	unlock, err := st.Lock(ctx, "wxapp1", time.Minute)
	require.NoError(t, err)
	defer unlock(ctx)

	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"shop1:{wxapp1}", "shop1:{wxapp1}:lock"}, keys)
}

func TestKeysHoldOnlyPrefixAndKey(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	key := "wx0123456789abcdef:stable"
	require.NoError(t, st.Save(ctx, key, tokenAt(time.Now(), secretToken)))
	_, err := st.Load(ctx, key)
	require.NoError(t, err)
	unlock, err := st.Lock(ctx, key, time.Minute)
	require.NoError(t, err)

	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"wxtoken:{" + key + "}", "wxtoken:{" + key + "}:lock"}, keys)
	for _, k := range keys {
		assert.NotContains(t, k, secretToken)
	}
	owner, err := rdb.Get(ctx, "wxtoken:{"+key+"}:lock").Result()
	require.NoError(t, err)
	assert.Regexp(t, `^[0-9a-f]{32}$`, owner, "the lock holds a random owner id and nothing else")

	require.NoError(t, unlock(ctx))
	keys, err = rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"wxtoken:{" + key + "}"}, keys)
}

func TestKeysShareAClusterSlot(t *testing.T) {
	st := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}))
	defer st.rdb.Close()
	for _, key := range []string{"wx0123456789abcdef", "wx0123:stable", "a}b", "{x}", "{"} {
		tk, lk := st.tokenKey(key), st.lockKey(key)
		assert.Equal(t, hashTag(tk), hashTag(lk), "key %q", key)
	}
}

// hashTag returns the part of k that Redis Cluster hashes.
func hashTag(k string) string {
	for i := 0; i < len(k); i++ {
		if k[i] != '{' {
			continue
		}
		for j := i + 1; j < len(k); j++ {
			if k[j] == '}' {
				if j > i+1 {
					return k[i+1 : j]
				}
				return k
			}
		}
		return k
	}
	return k
}

func TestLoadMissingIsNotFound(t *testing.T) {
	t.Parallel()
	st, _, _ := setup(t)
	_, err := st.Load(t.Context(), "nobody")
	require.ErrorIs(t, err, wxtoken.ErrNotFound)
	assert.Contains(t, err.Error(), "redisstore:")
}

func TestLoadCorruptValue(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for name, raw := range map[string]string{
		"not json":        "not json " + secretToken,
		"truncated":       `{"access_token":"` + secretToken,
		"array":           `["` + secretToken + `"]`,
		"null":            `null`,
		"empty token":     `{"access_token":"","expires_in":7200,"createTime":"` + now + `"}`,
		"zero lifetime":   `{"access_token":"` + secretToken + `","expires_in":0,"createTime":"` + now + `"}`,
		"no createTime":   `{"access_token":"` + secretToken + `","expires_in":7200}`,
		"bad createTime":  `{"access_token":"` + secretToken + `","expires_in":7200,"createTime":"` + secretToken + `"}`,
		"string lifetime": `{"access_token":"` + secretToken + `","expires_in":"` + secretToken + `","createTime":"` + now + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, rdb.Set(ctx, "wxtoken:{bad}", raw, time.Minute).Err())
			_, err := st.Load(ctx, "bad")
			require.ErrorIs(t, err, wxtoken.ErrCorrupt)
			assert.NotContains(t, err.Error(), secretToken)
			assert.NotContains(t, err.Error(), "ACCESS-TOKEN")
		})
	}
}

func TestOlderTokenDoesNotReplaceNewer(t *testing.T) {
	t.Parallel()
	st, _, _ := setup(t)
	ctx := t.Context()
	now := time.Now()
	newer := tokenAt(now, "tok-new")
	older := tokenAt(now.Add(-time.Nanosecond), "tok-old")

	require.NoError(t, st.Save(ctx, "wxapp1", newer))
	err := st.Save(ctx, "wxapp1", older)
	require.ErrorIs(t, err, wxtoken.ErrNewerToken)
	assert.NotContains(t, err.Error(), "tok-")

	got, err := st.Load(ctx, "wxapp1")
	require.NoError(t, err)
	requireSameToken(t, newer, got)

	// The same instant again, and a later one, replace it.
	same := tokenAt(now, "tok-same")
	require.NoError(t, st.Save(ctx, "wxapp1", same))
	later := tokenAt(now.Add(time.Nanosecond), "tok-later")
	require.NoError(t, st.Save(ctx, "wxapp1", later))
	got, err = st.Load(ctx, "wxapp1")
	require.NoError(t, err)
	requireSameToken(t, later, got)
}

// Records written by other programs (the Node recipe, another zone) compare
// by the instant they name, not by their text.
func TestNewerCheckReadsOtherTimeFormats(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	// A minute ago: a record dated after the Store's clock, even by
	// milliseconds, does not count as newer (Token.NewerThan).
	now := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	shanghai := time.FixedZone("CST", 8*3600)
	newfoundland := time.FixedZone("NST", -(3*3600 + 1800))
	for _, tc := range []struct {
		name    string
		stored  string // createTime of the stored record, an instant near now
		instant time.Time
	}{
		{"javascript millis", now.Add(123 * time.Millisecond).Format("2006-01-02T15:04:05.000Z"), now.Add(123 * time.Millisecond)},
		{"positive offset", now.In(shanghai).Format(time.RFC3339), now},
		{"negative half-hour offset", now.Add(5 * time.Microsecond).In(newfoundland).Format(time.RFC3339Nano), now.Add(5 * time.Microsecond)},
		{"trailing zeros", now.Format("2006-01-02T15:04:05") + ".500000000Z", now.Add(500 * time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := func() {
				raw := fmt.Sprintf(`{"createTime":%q,"access_token":"tok-stored","expires_in":7200}`, tc.stored)
				require.NoError(t, rdb.Set(ctx, "wxtoken:{fmt}", raw, time.Minute).Err())
			}
			store()
			err := st.Save(ctx, "fmt", tokenAt(tc.instant.Add(-time.Nanosecond), "tok-older"))
			require.ErrorIs(t, err, wxtoken.ErrNewerToken)
			got, err := st.Load(ctx, "fmt")
			require.NoError(t, err)
			assert.Equal(t, "tok-stored", got.AccessToken)

			// Older by hours in text order but newer in time: a zone must not fool it.
			store()
			require.NoError(t, st.Save(ctx, "fmt", tokenAt(tc.instant.Add(time.Nanosecond).In(shanghai), "tok-newer")))
			got, err = st.Load(ctx, "fmt")
			require.NoError(t, err)
			assert.Equal(t, "tok-newer", got.AccessToken)
		})
	}
}

// A record dated ahead of the clock (saved by a host whose clock was wrong)
// does not count as newer: a correctly dated token replaces it.
func TestSaveReplacesARecordDatedAhead(t *testing.T) {
	t.Parallel()
	st, _, _ := setup(t)
	ctx := t.Context()
	ahead := tokenAt(time.Now().Add(wxtoken.MaxClockSkew+time.Minute), "tok-ahead")
	require.NoError(t, st.Save(ctx, "skew", ahead))
	good := tokenAt(time.Now(), "tok-good")
	require.NoError(t, st.Save(ctx, "skew", good))
	got, err := st.Load(ctx, "skew")
	require.NoError(t, err)
	requireSameToken(t, good, got)

	within := tokenAt(time.Now().Add(wxtoken.MaxClockSkew/2), "tok-within")
	require.NoError(t, st.Save(ctx, "skew", within))
	require.NoError(t, st.Save(ctx, "skew", good),
		"a record dated ahead by less than the skew is replaced too")
	older := tokenAt(time.Now().Add(-time.Minute), "tok-older")
	assert.ErrorIs(t, st.Save(ctx, "skew", older), wxtoken.ErrNewerToken,
		"a correctly dated newer token still wins")
}

func TestSaveReplacesCorruptRecord(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for name, raw := range map[string]string{
		"not json":      "garbage",
		"empty token":   `{"access_token":"","expires_in":7200,"createTime":"` + future + `"}`,
		"zero lifetime": `{"access_token":"x","expires_in":0,"createTime":"` + future + `"}`,
		"fractional":    `{"access_token":"x","expires_in":7200.5,"createTime":"` + future + `"}`,
		"bad time":      `{"access_token":"x","expires_in":7200,"createTime":"tomorrow"}`,
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, rdb.Set(ctx, "wxtoken:{c}", raw, time.Minute).Err())
			tok := tokenAt(time.Now(), "tok-fresh")
			require.NoError(t, st.Save(ctx, "c", tok))
			got, err := st.Load(ctx, "c")
			require.NoError(t, err)
			requireSameToken(t, tok, got)
		})
	}
}

func TestConcurrentSavesKeepNewest(t *testing.T) {
	t.Parallel()
	st, _, _ := setup(t)
	ctx := t.Context()
	base := time.Now().Add(-time.Minute)
	const n = 50
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = st.Save(ctx, "wxapp1", tokenAt(base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("tok-%02d", i)))
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			require.ErrorIs(t, err, wxtoken.ErrNewerToken, "save %d", i)
		}
	}
	require.NoError(t, errs[n-1], "the newest token is never refused")
	got, err := st.Load(ctx, "wxapp1")
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("tok-%02d", n-1), got.AccessToken)
}

func TestSaveRejectsExpiredAndInvalidTokens(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	for name, tok := range map[string]wxtoken.Token{
		"expired":      tokenAt(time.Now().Add(-2*time.Hour-time.Second), secretToken),
		"expiring now": {AccessToken: secretToken, ExpiresIn: 1, CreateTime: time.Now().Add(-time.Second)},
		"no lifetime":  {AccessToken: secretToken, CreateTime: time.Now()},
		"no token":     tokenAt(time.Now(), ""),
		"no time":      {AccessToken: secretToken, ExpiresIn: 7200},
	} {
		t.Run(name, func(t *testing.T) {
			err := st.Save(ctx, "wxapp1", tok)
			require.ErrorIs(t, err, wxtoken.ErrInvalidToken)
			assert.NotContains(t, err.Error(), secretToken)
			n, err := rdb.Exists(ctx, "wxtoken:{wxapp1}").Result()
			require.NoError(t, err)
			assert.Zero(t, n, "nothing may be written")
		})
	}
}

func TestLockIsMutuallyExclusive(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t, WithLockRetry(time.Millisecond, 5*time.Millisecond))
	ctx := t.Context()
	const n = 20
	var inside, overlaps atomic.Int32
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { errs <- lockedIncrement(ctx, st, rdb, &inside, &overlaps) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Zero(t, overlaps.Load())
	// A read-modify-write that is not atomic in Redis counts right only
	// when the lock keeps the holders apart.
	count, err := rdb.Get(ctx, "counter").Int()
	require.NoError(t, err)
	assert.Equal(t, n, count)
}

func lockedIncrement(ctx context.Context, st *Store, rdb *redis.Client, inside, overlaps *atomic.Int32) error {
	unlock, err := st.Lock(ctx, "wxapp1", 10*time.Second)
	if err != nil {
		return err
	}
	if inside.Add(1) != 1 {
		overlaps.Add(1)
	}
	v, err := rdb.Get(ctx, "counter").Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	err = rdb.Set(ctx, "counter", v+1, 0).Err()
	inside.Add(-1)
	if err != nil {
		return err
	}
	return unlock(ctx)
}

func TestDeadHolderDelaysOthersAtMostTheLease(t *testing.T) {
	t.Parallel()
	st, _, srv := setup(t, WithLockRetry(time.Millisecond, 10*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	const lease = 300 * time.Millisecond

	// The holder "dies": its connection to Redis is gone, so nothing renews
	// its lease any more.
	holderRdb := srv.NewClient(t)
	holder := New(holderRdb)
	start := time.Now()
	unlockDead, err := holder.Lock(ctx, "wxapp1", lease)
	require.NoError(t, err)
	require.NoError(t, holderRdb.Close())

	unlock, err := st.Lock(ctx, "wxapp1", lease)
	waited := time.Since(start)
	require.NoError(t, err)
	defer unlock(ctx)
	// Wall-clock bounds on a real server: the lock cannot come before Redis
	// expires it, and should come soon after.
	assert.GreaterOrEqual(t, waited, lease-50*time.Millisecond)
	assert.Less(t, waited, lease+2*time.Second)
	require.Error(t, unlockDead(ctx), "the dead holder's client is closed")
}

func TestUnlockAfterLeaseLeavesNewOwnersLock(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	lk := "wxtoken:{wxapp1}:lock"

	unlockA, err := st.Lock(ctx, "wxapp1", time.Minute)
	require.NoError(t, err)
	require.NoError(t, rdb.Del(ctx, lk).Err()) // A's lease lapses
	unlockB, err := st.Lock(ctx, "wxapp1", time.Minute)
	require.NoError(t, err)
	ownerB, err := rdb.Get(ctx, lk).Result()
	require.NoError(t, err)

	require.NoError(t, unlockA(ctx))
	require.NoError(t, unlockA(ctx))
	got, err := rdb.Get(ctx, lk).Result()
	require.NoError(t, err, "A's late unlock must not delete B's lock")
	assert.Equal(t, ownerB, got)

	require.NoError(t, unlockB(ctx))
	require.NoError(t, unlockB(ctx))
	n, err := rdb.Exists(ctx, lk).Result()
	require.NoError(t, err)
	assert.Zero(t, n)

	// Once released, the lock is free at once.
	unlockC, err := st.Lock(ctx, "wxapp1", time.Minute)
	require.NoError(t, err)
	require.NoError(t, unlockC(ctx))
}

func TestLockLease(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	for lease, want := range map[time.Duration]time.Duration{
		0:                       DefaultLease,
		-time.Second:            DefaultLease,
		7 * time.Second:         7 * time.Second,
		1500 * time.Millisecond: 1500 * time.Millisecond,
	} {
		unlock, err := st.Lock(ctx, "wxapp1", lease)
		require.NoError(t, err)
		ttl, err := rdb.PTTL(ctx, "wxtoken:{wxapp1}:lock").Result()
		require.NoError(t, err)
		assert.LessOrEqual(t, ttl, want, "lease %v", lease)
		assert.Greater(t, ttl, want-5*time.Second, "lease %v", lease)
		require.NoError(t, unlock(ctx))
	}
}

func TestLockRespectsContext(t *testing.T) {
	t.Parallel()
	st, _, _ := setup(t)
	unlock, err := st.Lock(t.Context(), "wxapp1", time.Minute)
	require.NoError(t, err)
	defer unlock(t.Context())

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = st.Lock(ctx, "wxapp1", time.Minute)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "redisstore: lock")

	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	_, err = st.Lock(ctx, "wxapp1", time.Minute)
	require.ErrorIs(t, err, context.Canceled)
}

func TestRedisDownFailsPromptly(t *testing.T) {
	t.Parallel()
	st, _, srv := setup(t)
	tok := tokenAt(time.Now(), secretToken)
	require.NoError(t, st.Save(t.Context(), "wxapp1", tok))
	srv.Stop()

	for name, op := range map[string]func(context.Context) error{
		"load": func(ctx context.Context) error { _, err := st.Load(ctx, "wxapp1"); return err },
		"save": func(ctx context.Context) error { return st.Save(ctx, "wxapp1", tok) },
		"lock": func(ctx context.Context) error { _, err := st.Lock(ctx, "wxapp1", time.Second); return err },
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			began := time.Now()
			err := op(ctx)
			require.Error(t, err)
			assert.Less(t, time.Since(began), 3*time.Second)
			assert.NotErrorIs(t, err, wxtoken.ErrNotFound)
			assert.Contains(t, err.Error(), "redisstore: "+name)
			assert.NotContains(t, err.Error(), secretToken)
		})
	}

	// The same Store works again once Redis is back.
	srv.Restart()
	require.NoError(t, st.Save(t.Context(), "wxapp1", tokenAt(time.Now(), "tok-back")))
	got, err := st.Load(t.Context(), "wxapp1")
	require.NoError(t, err)
	assert.Equal(t, "tok-back", got.AccessToken)
}

func TestWorksWithUniversalClient(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                    []string{srv.Addr()},
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = rdb.Close() })
	st := New(rdb)
	ctx := t.Context()
	tok := tokenAt(time.Now(), "tok-u")
	require.NoError(t, st.Save(ctx, "k", tok))
	got, err := st.Load(ctx, "k")
	require.NoError(t, err)
	requireSameToken(t, tok, got)
}

func TestWithLockRetryKeepsSaneBounds(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, tc := range []struct{ lo, hi, wantLo, wantHi time.Duration }{
		{0, 0, defaultRetryMin, defaultRetryMax},
		{time.Millisecond, 50 * time.Millisecond, time.Millisecond, 50 * time.Millisecond},
		{time.Second, time.Millisecond, time.Second, time.Second},
		{-1, -1, defaultRetryMin, defaultRetryMax},
	} {
		st := New(rdb, WithLockRetry(tc.lo, tc.hi))
		assert.Equal(t, tc.wantLo, st.retryMin)
		assert.Equal(t, tc.wantHi, st.retryMax)
	}
}

func TestJitterStaysInRange(t *testing.T) {
	for _, d := range []time.Duration{time.Nanosecond, time.Millisecond, 200 * time.Millisecond} {
		for range 100 {
			j := jitter(d)
			assert.GreaterOrEqual(t, j, d/2)
			assert.LessOrEqual(t, j, d)
		}
	}
}
