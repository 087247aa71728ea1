package redisstore

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
)

// netOutput returns how many bytes the server has sent its clients so far.
func netOutput(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(t.Context(), "stats").Result()
	require.NoError(t, err)
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	require.FailNow(t, "no total_net_output_bytes in INFO stats")
	return 0
}

// setHuge makes the value of k n bytes long without sending them.
func setHuge(t *testing.T, rdb *redis.Client, k string, n int64) {
	t.Helper()
	require.NoError(t, rdb.SetRange(t.Context(), k, n-int64(len(secretToken)), secretToken).Err())
}

const hugeValue = 200 << 20

func TestLoadDoesNotTransferAnOversizedValue(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	setHuge(t, rdb, "wxtoken:{big}", hugeValue)

	before := netOutput(t, rdb)
	_, err := st.Load(t.Context(), "big")
	sent := netOutput(t, rdb) - before
	require.ErrorIs(t, err, wxtoken.ErrCorrupt)
	assert.Contains(t, err.Error(), "the value is 209715200 bytes long, the limit is 65536")
	assert.NotContains(t, err.Error(), secretToken)
	assert.Less(t, sent, int64(64<<10), "Load read the value")
}

func TestSaveReplacesAnOversizedValueWithoutReadingIt(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	setHuge(t, rdb, "wxtoken:{big}", hugeValue)

	before := netOutput(t, rdb)
	tok := tokenAt(time.Now(), "tok-small")
	require.NoError(t, st.Save(t.Context(), "big", tok))
	sent := netOutput(t, rdb) - before
	assert.Less(t, sent, int64(64<<10), "Save read the value")
	got, err := st.Load(t.Context(), "big")
	require.NoError(t, err)
	requireSameToken(t, tok, got)
}

// A record just over the cap is corrupt; the largest valid record fits.
func TestRecordSizeCap(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	require.NoError(t, rdb.Set(ctx, "wxtoken:{cap}", strings.Repeat(" ", MaxRecordLen+1), time.Minute).Err())
	_, err := st.Load(ctx, "cap")
	require.ErrorIs(t, err, wxtoken.ErrCorrupt)

	longest := tokenAt(time.Now(), strings.Repeat("A", wxtoken.MaxTokenLen))
	require.NoError(t, st.Save(ctx, "cap", longest))
	got, err := st.Load(ctx, "cap")
	require.NoError(t, err)
	requireSameToken(t, longest, got)
}

// Tokens of WeChat's stated maximum length pass; a 60 KB "token" does not,
// neither into the store nor out of it.
func TestTokenLength(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	for _, n := range []int{512, wxtoken.MaxTokenLen} {
		tok := tokenAt(time.Now(), strings.Repeat("x", n))
		require.NoError(t, st.Save(ctx, "len", tok), "%d characters", n)
		got, err := st.Load(ctx, "len")
		require.NoError(t, err)
		assert.Len(t, got.AccessToken, n)
	}

	huge := strings.Repeat("T", 60<<10)
	err := st.Save(ctx, "len", tokenAt(time.Now(), huge))
	require.ErrorIs(t, err, wxtoken.ErrInvalidToken)
	assert.NotContains(t, err.Error(), huge[:64])

	raw := `{"createTime":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","access_token":"` + huge + `","expires_in":7200}`
	require.Less(t, len(raw), MaxRecordLen, "under the record cap: Validate must refuse it")
	require.NoError(t, rdb.Set(ctx, "wxtoken:{len}", raw, time.Minute).Err())
	_, err = st.Load(ctx, "len")
	require.ErrorIs(t, err, wxtoken.ErrCorrupt)
	assert.NotContains(t, err.Error(), huge[:64])
}

// A record whose expires_in is written as 7200.0 is corrupt to Load (it is no
// integer), so Save must replace it even when it claims to be newer; a Store
// that kept it would leave a key nobody can load or replace.
func TestSaveReplacesARecordLoadCallsCorrupt(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	ct := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	for name, raw := range map[string]string{
		"float lifetime":    `{"createTime":"` + ct + `","access_token":"tok-float","expires_in":7200.0}`,
		"exponent lifetime": `{"createTime":"` + ct + `","access_token":"tok-exp","expires_in":7.2e3}`,
		"space in token":    `{"createTime":"` + ct + `","access_token":"tok space","expires_in":7200}`,
		"long lifetime":     `{"createTime":"` + ct + `","access_token":"tok-long","expires_in":86401}`,
		"no zone":           `{"createTime":"` + ct[:19] + `","access_token":"tok-nozone","expires_in":7200}`,
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, rdb.Set(ctx, "wxtoken:{c}", raw, time.Minute).Err())
			_, err := st.Load(ctx, "c")
			require.ErrorIs(t, err, wxtoken.ErrCorrupt)

			older := tokenAt(time.Now().Add(-time.Hour), "tok-older")
			require.NoError(t, st.Save(ctx, "c", older), "Save kept a record Load cannot read")
			got, err := st.Load(ctx, "c")
			require.NoError(t, err)
			requireSameToken(t, older, got)
		})
	}
}

// swapHook runs before each swap script the client sends, so that a test can
// write between Save's read and its write.
type swapHook struct {
	sha    string
	swaps  atomic.Int32
	before func(n int32)
}

func (h *swapHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *swapHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); len(args) > 1 && cmd.Name() == "evalsha" && args[1] == h.sha {
			h.before(h.swaps.Add(1))
		}
		return next(ctx, cmd)
	}
}
func (h *swapHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A newer token written between Save's read and its write is not
// overwritten: the write finds the key changed, Save reads again and refuses.
func TestSaveLosesTheRaceToANewerToken(t *testing.T) {
	t.Parallel()
	st, _, srv := setup(t)
	ctx := t.Context()
	now := time.Now()
	require.NoError(t, st.Save(ctx, "race", tokenAt(now.Add(-time.Hour), "tok-old")))

	rdb := srv.NewClient(t)
	h := &swapHook{sha: redis.NewScript(luaSwap).Hash()}
	h.before = func(n int32) {
		if n == 1 {
			require.NoError(t, st.Save(ctx, "race", tokenAt(now, "tok-newest")))
		}
	}
	rdb.AddHook(h)
	racer := New(rdb)
	err := racer.Save(ctx, "race", tokenAt(now.Add(-time.Minute), "tok-mid"))
	require.ErrorIs(t, err, wxtoken.ErrNewerToken)
	assert.EqualValues(t, 1, h.swaps.Load(), "the second read saw the newer token")
	got, err := st.Load(ctx, "race")
	require.NoError(t, err)
	assert.Equal(t, "tok-newest", got.AccessToken)
}

// A record that changes under every attempt ends Save with an error of its
// own after a bounded number of tries, leaving the other writer's record.
func TestSaveGivesUpWhenTheRecordKeepsChanging(t *testing.T) {
	t.Parallel()
	st, other, srv := setup(t)
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	rdb := srv.NewClient(t)
	h := &swapHook{sha: redis.NewScript(luaSwap).Hash()}
	h.before = func(n int32) {
		// An older token each time, so that Save never has a reason to refuse.
		raw := `{"createTime":"` + base.Add(-time.Duration(n)*time.Second).UTC().Format(time.RFC3339Nano) +
			`","access_token":"tok-other","expires_in":7200}`
		require.NoError(t, other.Set(ctx, "wxtoken:{busy}", raw, time.Minute).Err())
	}
	rdb.AddHook(h)
	err := New(rdb).Save(ctx, "busy", tokenAt(time.Now(), "tok-mine"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, wxtoken.ErrNewerToken)
	assert.Contains(t, err.Error(), "the record changed under every attempt")
	assert.EqualValues(t, swapAttempts, h.swaps.Load())
	got, err := st.Load(ctx, "busy")
	require.NoError(t, err)
	assert.Equal(t, "tok-other", got.AccessToken)
}

// A key of another type (a hash, a list) is a corrupt record: Load says so,
// and Save replaces it, instead of both failing as if Redis were down (which
// made every cold replica fetch a token of its own).
func TestAKeyOfAnotherTypeIsCorruptAndReplaced(t *testing.T) {
	t.Parallel()
	st, rdb, _ := setup(t)
	ctx := t.Context()
	require.NoError(t, rdb.HSet(ctx, "wxtoken:{wxapp1}", "f", "v").Err())
	_, err := st.Load(ctx, "wxapp1")
	require.ErrorIs(t, err, wxtoken.ErrCorrupt)
	tok := tokenAt(time.Now(), "tok-after-hash")
	require.NoError(t, st.Save(ctx, "wxapp1", tok))
	got, err := st.Load(ctx, "wxapp1")
	require.NoError(t, err)
	requireSameToken(t, tok, got)
}
