package redisstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
)

// FuzzDecodeToken checks that any stored value decodes to a valid token or to
// an ErrCorrupt error that does not quote the token it may hold.
func FuzzDecodeToken(f *testing.F) {
	for _, seed := range []string{
		`{"createTime":"2020-12-11T03:05:48.123Z","access_token":"ACCESS_TOKEN_1234","expires_in":7200}`,
		`{"createTime":"2020-12-11T11:05:48+08:00","access_token":"ACCESS_TOKEN_1234","expires_in":7200}`,
		`{"createTime":"2020-12-11T03:05:48.123Z","access_token":"ACCESS_TOKEN_1234","expires_in":0}`,
		`{"createTime":"ACCESS_TOKEN_1234","access_token":"ACCESS_TOKEN_1234","expires_in":7200}`,
		`{"createTime":"2020-12-11T03:05:48Z","access_token":"ACCESS_TOKEN_1234","expires_in":"ACCESS_TOKEN_1234"}`,
		`{"access_token":"ACCESS_TOKEN_1234"`,
		`null`, `[]`, ``, `"ACCESS_TOKEN_1234"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		tok, err := decodeToken(raw)
		if err == nil {
			require.NoError(t, tok.Validate())
			return
		}
		require.ErrorIs(t, err, wxtoken.ErrCorrupt)
		var rec struct {
			AccessToken string `json:"access_token"`
		}
		// Whatever string the record offers as its token must stay out of
		// the error, as must long runs of the raw value.
		if json.Unmarshal(raw, &rec) == nil && len(rec.AccessToken) >= 8 {
			require.NotContains(t, err.Error(), rec.AccessToken)
		}
		if len(raw) >= 24 {
			require.NotContains(t, err.Error(), string(raw))
		}
	})
}

// fuzzNow is the Store's clock in FuzzSaveAgreesWithLoad, so that what counts
// as newer does not move while it runs.
var fuzzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// FuzzSaveAgreesWithLoad stores any value under a key, then saves a token
// created offset seconds from the clock: Save must refuse with ErrNewerToken
// and leave the value alone exactly when Go's decoding of the value (what Load
// returns) is newer by Token.NewerThan, and must otherwise replace it. A
// script that judged records on its own could keep a value Load calls
// corrupt, and then nobody could load or replace the key.
func FuzzSaveAgreesWithLoad(f *testing.F) {
	rec := func(ct, expires string) []byte {
		return []byte(`{"createTime":"` + ct + `","access_token":"ACCESS_TOKEN_1234","expires_in":` + expires + `}`)
	}
	at := func(d time.Duration, layout string, zone *time.Location) string {
		return fuzzNow.Add(d).In(zone).Format(layout)
	}
	utc, shanghai := time.UTC, time.FixedZone("CST", 8*3600)
	for _, seed := range []struct {
		raw    []byte
		offset int64
	}{
		{rec(at(-time.Minute, time.RFC3339Nano, utc), "7200"), -120},
		{rec(at(-time.Minute, time.RFC3339Nano, utc), "7200"), 0},
		{rec(at(-time.Minute, time.RFC3339, shanghai), "7200"), -61},
		{rec(at(-time.Minute, time.RFC3339, shanghai), "7200"), -59},
		{rec(at(-time.Minute+123*time.Millisecond, "2006-01-02T15:04:05.000Z07:00", utc), "7200"), -60},
		{rec(at(-time.Minute, time.RFC3339, utc), "7200.0"), -3600},
		{rec(at(-time.Minute, time.RFC3339, utc), "7200.5"), -3600},
		{rec(at(-time.Minute, time.RFC3339, utc), "1e3"), -3600},
		{rec(at(-time.Minute, time.RFC3339, utc), "0"), -3600},
		{rec(at(-time.Minute, time.RFC3339, utc), "86401"), -3600},
		{rec(at(-time.Minute, time.RFC3339, utc), "-7200"), -3600},
		{rec(at(-time.Minute, time.RFC3339, utc), `"7200"`), -3600},
		{rec(at(time.Minute, time.RFC3339, utc), "7200"), 0},
		{rec(at(wxtoken.MaxClockSkew+time.Minute, time.RFC3339, utc), "7200"), -3600},
		{rec("2026-06-01T11:00:00", "7200"), -7000},
		{rec("2026-06-01t11:00:00z", "7200"), -7000},
		{rec("2026-06-01T11:00:00+08:60", "7200"), -7000},
		{rec("0001-01-01T00:00:00Z", "7200"), -7000},
		{rec("9999-12-31T23:59:59Z", "7200"), -7000},
		{[]byte(`{"createTime":"2026-06-01T11:00:00Z","access_token":"has space","expires_in":7200}`), -7000},
		{[]byte(`{"createTime":"2026-06-01T11:00:00Z","access_token":"","expires_in":7200}`), -7000},
		{[]byte(`{"createTime":"2026-06-01T11:00:00Z","access_token":"T","expires_in":7200,"extra":1}`), -7000},
		{[]byte(`{"createTime":"2026-06-01T11:00:00Z","access_token":"T","expires_in":7200}` + " \n"), -7000},
		{[]byte(`{"createTime":"2026-06-01T11:00:00Z","access_token":"T","ACCESS_TOKEN":"U","expires_in":7200}`), -7000},
		{[]byte(`null`), 0}, {[]byte(`[]`), 0}, {[]byte(``), 0}, {[]byte("garbage"), 0},
	} {
		f.Add(seed.raw, seed.offset)
	}
	srv := redistest.Start(f)
	rdb := srv.NewClient(f)
	st := New(rdb)
	st.now = func() time.Time { return fuzzNow }
	const key = "fuzz"
	tk := st.tokenKey(key)

	f.Fuzz(func(t *testing.T, raw []byte, offset int64) {
		// Tokens from a lifetime ago to beyond the skew, all unexpired.
		const span = 7200 + 600
		offset = (offset%span+span)%span - 7199
		tok := tokenAt(fuzzNow.Add(time.Duration(offset)*time.Second), "tok-new")
		want, err := json.Marshal(tok)
		require.NoError(t, err)
		require.NoError(t, rdb.Set(t.Context(), tk, raw, 0).Err())

		old, decErr := decodeToken(raw)
		keep := decErr == nil && old.NewerThan(tok, fuzzNow)
		err = st.Save(t.Context(), key, tok)
		got, getErr := rdb.Get(t.Context(), tk).Result()
		require.NoError(t, getErr)
		if keep {
			require.ErrorIs(t, err, wxtoken.ErrNewerToken, "Load says the stored token is newer")
			require.Equal(t, string(raw), got, "a refused Save must leave the value alone")
			loaded, err := st.Load(t.Context(), key)
			require.NoError(t, err)
			requireSameToken(t, old, loaded)
			return
		}
		require.NoError(t, err, "Load says the stored value is older or corrupt (%v)", decErr)
		require.Equal(t, string(want), got)
	})
}
