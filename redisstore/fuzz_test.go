package redisstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

// rfc3339Plain matches the one timestamp form the Lua parser must read.
var rfc3339Plain = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`)

// FuzzLuaParseTimeAgreesWithGo runs the script's parse_time on a real Redis
// and checks it against Go's decoding of a createTime: whatever Lua reads must
// mean the same instant to Go, and Lua must read every plain RFC 3339 time
// that Go reads. Otherwise Save could keep or drop the wrong token.
func FuzzLuaParseTimeAgreesWithGo(f *testing.F) {
	for _, seed := range []string{
		"2020-12-11T03:05:48.123Z",
		"2020-12-11T11:05:48+08:00",
		"2020-12-10T23:35:48.123456789-03:30",
		"2024-02-29T23:59:59.9999999999Z",
		"2023-02-29T00:00:00Z",
		"2000-03-01T00:00:00Z",
		"1900-02-28T12:00:00+24:00",
		"0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999999-24:00",
		"1969-12-31T23:59:59.5Z",
		"2020-12-11T24:00:00Z",
		"2020-12-11T03:05:60Z",
		"2020-12-11T03:05:48+08:60",
		"2020-12-11T03:05:48+08:61",
		"2020-12-11T03:05:48",
		"2020-12-11T03:05:48.Z",
		"2020-12-11t03:05:48z",
		"2020-12-11T3:05:48Z",
		"2020-12-11T03:05:48,5Z",
		"",
	} {
		f.Add(seed)
	}
	srv := redistest.Start(f)
	rdb := srv.NewClient(f)
	script := redis.NewScript(luaParseTime + `
local sec, frac = parse_time(ARGV[1])
if not sec then return false end
return {sec, frac}`)

	f.Fuzz(func(t *testing.T, s string) {
		res, err := script.Run(t.Context(), rdb, nil, s).Slice()
		luaOK := !errors.Is(err, redis.Nil)
		if luaOK {
			require.NoError(t, err)
		}
		var want time.Time
		goErr := want.UnmarshalText([]byte(s))

		if !luaOK {
			if goErr == nil && rfc3339Plain.MatchString(s) {
				t.Fatalf("Lua rejected %q, which Go reads as %v", s, want)
			}
			return
		}
		require.NoError(t, goErr, "Lua read %q, which Go rejects", s)
		require.Len(t, res, 2)
		require.Equal(t, want.Unix(), res[0], "seconds of %q", s)
		require.Equal(t, fmt.Sprintf("%09d", want.Nanosecond()), res[1], "fraction of %q", s)
		require.False(t, strings.ContainsAny(s, "tz,"), "Lua accepted a form Go writes otherwise: %q", s)
	})
}

// TestLuaParseTimeMatchesGoOnRandomInstants compares parse_time with Go on
// random instants of years 1-9998, written in random zones with 0 to 9
// fraction digits, the forms Go and JavaScript write.
func TestLuaParseTimeMatchesGoOnRandomInstants(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.NewClient(t)
	script := redis.NewScript(luaParseTime + `
local out = {}
for i, s in ipairs(ARGV) do
  local sec, frac = parse_time(s)
  if sec then out[i] = {sec, frac} else out[i] = {} end
end
return out`)
	rng := rand.New(rand.NewPCG(1, 2))
	layouts := []string{
		time.RFC3339, time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00",
		"2006-01-02T15:04:05.000000Z07:00", "2006-01-02T15:04:05.000000000Z07:00",
	}
	lo := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix() + 86400
	hi := time.Date(9998, 12, 31, 0, 0, 0, 0, time.UTC).Unix()
	const n = 2000
	args := make([]any, n)
	want := make([]time.Time, n)
	for i := range n {
		zone := time.FixedZone("", (rng.IntN(48*60+1)-24*60)*60)
		tm := time.Unix(lo+rng.Int64N(hi-lo), rng.Int64N(1e9)).In(zone)
		s := tm.Format(layouts[rng.IntN(len(layouts))])
		require.NoError(t, want[i].UnmarshalText([]byte(s)))
		args[i] = s
	}
	res, err := script.Run(t.Context(), rdb, nil, args...).Slice()
	require.NoError(t, err)
	require.Len(t, res, n)
	for i, r := range res {
		got := r.([]any)
		require.Len(t, got, 2, "Lua rejected %q", args[i])
		require.Equal(t, want[i].Unix(), got[0], "seconds of %q", args[i])
		require.Equal(t, fmt.Sprintf("%09d", want[i].Nanosecond()), got[1], "fraction of %q", args[i])
	}
}
