package redisstore

// luaParseTime defines parse_time(s), which reads an RFC 3339 timestamp in the
// form Go's encoding/json and JavaScript's Date.toISOString write
// ("2020-12-11T03:05:48.123Z", "2020-12-11T11:05:48+08:00") and returns its Unix
// seconds and its fraction as exactly nine digits, or nil for anything else.
// Comparing (seconds, nine-digit string) is exact, unlike comparing the
// timestamps as text (zones and fraction lengths differ) or as Lua numbers
// (doubles cannot hold Unix nanoseconds). Ranges follow Go's parser, so that a
// time this accepts means the same instant to Go.
const luaParseTime = `
local function days_in(y, m)
  if m == 2 then
    if y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then return 29 end
    return 28
  end
  if m == 4 or m == 6 or m == 9 or m == 11 then return 30 end
  return 31
end

local function parse_time(s)
  if type(s) ~= 'string' then return nil end
  local y, mo, d, h, mi, se, rest =
    string.match(s, '^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(.*)$')
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  h, mi, se = tonumber(h), tonumber(mi), tonumber(se)
  if mo < 1 or mo > 12 or d < 1 or d > days_in(y, mo) or h > 23 or mi > 59 or se > 59 then
    return nil
  end
  local frac = ''
  local digits, tail = string.match(rest, '^%.(%d+)(.*)$')
  if digits then frac, rest = digits, tail end
  frac = string.sub(frac .. '000000000', 1, 9)
  local off = 0
  if rest ~= 'Z' then
    local sign, oh, om = string.match(rest, '^([+-])(%d%d):(%d%d)$')
    if not sign then return nil end
    oh, om = tonumber(oh), tonumber(om)
    if oh > 24 or om > 60 then return nil end
    off = (oh * 60 + om) * 60
    if sign == '-' then off = -off end
  end
  -- Days from 1970-01-01 to the proleptic Gregorian date, counting in
  -- 400-year eras of years that start on 1 March.
  if mo <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + h * 3600 + mi * 60 + se - off, frac
end
`

// luaSave stores a token unless the key holds a newer one.
//
// KEYS[1] is the token key; ARGV[1] the JSON record, ARGV[2] its TTL in
// milliseconds (positive), ARGV[3] and ARGV[4] the new token's createTime as
// Unix seconds and nine fraction digits, ARGV[5] the Unix second of the
// caller's clock: a stored createTime past it does not count as newer
// (wxtoken.Token.NewerThan). It returns 1 when it stored the
// record and 0 when it kept a newer one. A stored record that is not a usable
// token (the checks mirror Token.Validate) is replaced: Load reports it as
// corrupt, so keeping it would help nobody.
const luaSave = luaParseTime + `
local old = redis.call('GET', KEYS[1])
if old then
  local ok, rec = pcall(cjson.decode, old)
  if ok and type(rec) == 'table'
    and type(rec.access_token) == 'string' and rec.access_token ~= ''
    and type(rec.expires_in) == 'number' and rec.expires_in > 0
    and rec.expires_in <= 86400 and rec.expires_in == math.floor(rec.expires_in) then
    local sec, frac = parse_time(rec.createTime)
    if sec then
      local new_sec = tonumber(ARGV[3])
      local ahead = sec > tonumber(ARGV[5])
      if not ahead and (sec > new_sec or (sec == new_sec and frac > ARGV[4])) then
        return 0
      end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`

// luaUnlock deletes the lock KEYS[1] only while it still holds the owner
// ARGV[1]: after the lease lapsed somebody else may hold it.
const luaUnlock = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`
