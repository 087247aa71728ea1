package redisstore

// The scripts decide nothing about tokens: what a valid record is and which of
// two tokens is newer is Go's to say (decodeToken, wxtoken.Token.NewerThan),
// so that the Store cannot keep what Load refuses. The scripts only make reads
// bounded and writes conditional.

// luaRead returns the value of KEYS[1], false when there is none, -1 when it
// is not a string (a hash or a list left by someone else: STRLEN would fail),
// or, when it is longer than ARGV[1] bytes, its length as an integer, so that
// an oversized value never crosses the network.
const luaRead = `
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return false end
if t ~= 'string' then return -1 end
local n = redis.call('STRLEN', KEYS[1])
if n > tonumber(ARGV[1]) then return n end
return redis.call('GET', KEYS[1])
`

// luaSwap sets KEYS[1] to ARGV[3] with a TTL of ARGV[4] milliseconds (none
// when ARGV[4] is 0: a record with a refresh token must not lapse), but only
// while the key is as Save last read it, and returns 1 when it wrote, 0 when
// the key had changed. ARGV[1] says what Save read: "absent" (no key),
// "oversize" (a value longer than ARGV[2] bytes), "wrongtype" (not a string)
// or "equal" (exactly the bytes ARGV[2]). The length is compared first so that a value that grew huge
// meanwhile is never copied into the script.
const luaSwap = `
local mode, want = ARGV[1], ARGV[2]
if mode == 'absent' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif mode == 'wrongtype' then
  local t = redis.call('TYPE', KEYS[1]).ok
  if t == 'string' or t == 'none' then return 0 end
elseif mode == 'oversize' then
  if redis.call('STRLEN', KEYS[1]) <= tonumber(want) then return 0 end
else
  if redis.call('STRLEN', KEYS[1]) ~= #want or redis.call('GET', KEYS[1]) ~= want then
    return 0
  end
end
if ARGV[4] == '0' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1
`

// luaLock takes the lock KEYS[1] for owner ARGV[1] with a lease of ARGV[2]
// milliseconds and returns 1, or returns 0 when somebody holds it. A lock key
// without a TTL (set by hand, or by a tool that forgot PX) would block every
// fetch until deleted: it gets the lease as TTL, so that it lapses like a
// holder that died.
const luaLock = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`

// luaRenew extends the lease of the lock KEYS[1] to ARGV[2] milliseconds
// while it still holds the owner ARGV[1], and returns 1; it returns 0 when the
// lock has lapsed or belongs to somebody else.
const luaRenew = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`

// luaUnlock deletes the lock KEYS[1] only while it still holds the owner
// ARGV[1]: after the lease lapsed somebody else may hold it.
const luaUnlock = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`
