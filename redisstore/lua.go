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

// luaSwapFunc defines swap(k, mode, want, raw, ttl, channel, msg), which
// sets k to raw with a TTL of ttl milliseconds (none when ttl is "0": a record
// with a refresh token must not lapse), but only while the key is as Save last
// read it, and returns 1 when it wrote, 0 when the key had changed. mode says
// what Save read: "absent" (no key), "oversize" (a value longer than want
// bytes), "wrongtype" (not a string) or "equal" (exactly the bytes want). The
// length is compared first so that a value that grew huge meanwhile is never
// copied into the script. A write is announced with PUBLISH channel msg, in the
// same script, so that no Save goes unannounced; channel is never empty. The
// announcement is best effort, called with pcall and its error ignored: a
// script cannot undo its SET, so a PUBLISH that fails (an ACL user without
// the channel, Redis 7's acl-pubsub-default resetchannels) must not turn a
// stored record into a failed Save. Watchers miss that change; the engine's
// slow safety re-read picks it up.
const luaSwapFunc = `
local function swap(k, mode, want, raw, ttl, channel, msg)
  if mode == 'absent' then
    if redis.call('EXISTS', k) == 1 then return 0 end
  elseif mode == 'wrongtype' then
    local t = redis.call('TYPE', k).ok
    if t == 'string' or t == 'none' then return 0 end
  elseif mode == 'oversize' then
    if redis.call('STRLEN', k) <= tonumber(want) then return 0 end
  else
    if redis.call('STRLEN', k) ~= #want or redis.call('GET', k) ~= want then
      return 0
    end
  end
  if ttl == '0' then
    redis.call('SET', k, raw)
  else
    redis.call('SET', k, raw, 'PX', ttl)
  end
  redis.pcall('PUBLISH', channel, msg)
  return 1
end
`

// luaSwap is Save's conditional write of KEYS[1]; ARGV holds swap's
// arguments after the key.
const luaSwap = luaSwapFunc + `
return swap(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
`

// luaSaveUnlock is luaSwap on the token key KEYS[1] followed by the release
// of the lock KEYS[2] while it still holds the owner ARGV[7], in one round
// trip: the second half of a renewal. It returns what swap returned. The lock
// is released only when swap wrote: when the record had changed, the caller
// still holds the lock while Save's compare-and-set decides, so that no other
// replica takes it, reads the old record and fetches a duplicate.
const luaSaveUnlock = luaSwapFunc + `
local wrote = swap(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
if wrote == 1 and redis.call('GET', KEYS[2]) == ARGV[7] then
  redis.call('DEL', KEYS[2])
end
return wrote
`

// luaReadMany is luaRead for every key of KEYS, in one round trip: an array
// with one reply per key, in order, each what luaRead would have returned
// (false comes back as a nil element). Only a standalone Redis runs it: on a
// Cluster the keys of one batch live in many slots.
const luaReadMany = `
local max, out = tonumber(ARGV[1]), {}
for i, k in ipairs(KEYS) do
  local t = redis.call('TYPE', k).ok
  if t == 'none' then
    out[i] = false
  elseif t ~= 'string' then
    out[i] = -1
  else
    local n = redis.call('STRLEN', k)
    if n > max then out[i] = n else out[i] = redis.call('GET', k) end
  end
end
return out
`

// luaLockRead is luaLock on the lock KEYS[1] followed, when the lock was
// taken, by luaRead of the token key KEYS[2] (ARGV[3] is the size limit): the
// first half of a renewal. It returns {0} when somebody holds the lock, and
// {1, what luaRead returns} when it took it.
const luaLockRead = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('PTTL', KEYS[1]) == -1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return {0}
end
local t = redis.call('TYPE', KEYS[2]).ok
if t == 'none' then return {1, false} end
if t ~= 'string' then return {1, -1} end
local n = redis.call('STRLEN', KEYS[2])
if n > tonumber(ARGV[3]) then return {1, n} end
return {1, redis.call('GET', KEYS[2])}
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
