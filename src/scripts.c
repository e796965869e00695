/* scripts.c - Lua sources, their SHA1s, and EVALSHA with EVAL fallback. */
#include "scripts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "log.h"
#include "parley.h"

#define SCRIPT_MAX_ARGS 16

/* Answers in progress.  An answer's chunks are entries of its room's
 * stream ("type ai_chunk request_id RID asker USER content TEXT", in that
 * order), so they have ids in
 * the room's order; the room's answers hash holds, per request id,
 * "START|ASKER|AGENT|MAXLEN|TTL|INSTANCE|OWNER" (START: no chunk is older)
 * and the producing worker's instance presence hash the field
 * "OWNER|ROOM|ASKER|RID", so that a worker or instance gone ends it.
 * finish() ends one: the chunks make the stored message (with its request
 * id, and a status unless complete), are deleted, and their id range is
 * remembered in the room's gone set so that resuming from one still works;
 * then the message and ai_done are published.  A private scope ("~user")
 * keeps its chunks (until trimmed with the stream): a stream resumed after
 * the end still gets the text it missed.  Returns the message's id,
 * "" when there was no text, false when the answer had already ended. */
#define LUA_ANSWER_FINISH_FN \
    "local function esc(s)\n" \
    "  return (string.gsub(s, '[%z\\1-\\31\"\\\\]', function(c)\n" \
    "    if c == '\"' then return '\\\\\"' elseif c == '\\\\' then return '\\\\\\\\'\n" \
    "    elseif c == '\\n' then return '\\\\n' elseif c == '\\r' then return '\\\\r'\n" \
    "    elseif c == '\\t' then return '\\\\t' elseif c == '\\b' then return '\\\\b'\n" \
    "    elseif c == '\\f' then return '\\\\f' end\n" \
    "    return string.format('\\\\u%04x', string.byte(c))\n" \
    "  end))\n" \
    "end\n" \
    "local function finish(P, room, rid, status)\n" \
    "  local R = P .. 'room:' .. room\n" \
    "  local rec = redis.call('HGET', R .. ':answers', rid)\n" \
    "  if not rec then return false end\n" \
    "  redis.call('HDEL', R .. ':answers', rid)\n" \
    "  local start, asker, agent, maxlen, ttl, inst, owner =\n" \
    "    string.match(rec, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')\n" \
    "  if not start then return false end\n" \
    "  redis.call('HDEL', P .. 'instance:' .. inst .. ':presence', owner .. '|' .. room .. '|' .. asker .. '|' .. rid)\n" \
    "  redis.call('ZREM', P .. 'user:' .. asker .. ':answers', rid)\n" \
    "  local log, parts, ids = R .. ':log', {}, {}\n" \
    "  for _, e in ipairs(redis.call('XRANGE', log, start, '+')) do\n" \
    "    local f = e[2]\n" \
    "    if f[2] == 'ai_chunk' and f[4] == rid then parts[#parts + 1] = f[8]; ids[#ids + 1] = e[1] end\n" \
    "  end\n" \
    "  local left = redis.call('DECRBY', R .. ':chunks', #ids)\n" \
    "  if left <= 0 then redis.call('DEL', R .. ':chunks'); left = 0 end\n" \
    "  if string.sub(room, 1, 1) == '~' then ids = {} end\n" \
    "  for i = 1, #ids, 500 do redis.call('XDEL', log, unpack(ids, i, math.min(i + 499, #ids))) end\n" \
    "  if #ids > 0 then\n" \
    "    redis.call('ZADD', R .. ':gone', tonumber(string.match(ids[1], '^(%d+)')), ids[1] .. ' ' .. ids[#ids])\n" \
    "    redis.call('ZREMRANGEBYRANK', R .. ':gone', 0, -101)\n" \
    "  end\n" \
    "  local text, id, extra = table.concat(parts), '', ',\"request_id\":\"' .. rid .. '\"'\n" \
    "  if status ~= 'complete' then extra = extra .. ',\"status\":\"' .. status .. '\"' end\n" \
    "  if text ~= '' then\n" \
    "    if status == 'complete' then\n" \
    "      id = redis.call('XADD', log, 'MAXLEN', '~', tonumber(maxlen) + left, '*', 'type', 'message',\n" \
    "                      'from', agent, 'content', text, 'request_id', rid)\n" \
    "    else\n" \
    "      id = redis.call('XADD', log, 'MAXLEN', '~', tonumber(maxlen) + left, '*', 'type', 'message',\n" \
    "                      'from', agent, 'content', text, 'request_id', rid, 'status', status)\n" \
    "    end\n" \
    "    redis.call('PUBLISH', R, 'message ' .. id .. ' ' .. agent .. '\\n' ..\n" \
    "      '{\"type\":\"message\",\"id\":\"' .. id .. '\",\"room\":\"' .. room .. '\",\"from\":\"' .. agent ..\n" \
    "      '\",\"content\":\"' .. esc(text) .. '\",\"ts\":' .. string.match(id, '^(%d+)') .. extra .. '}')\n" \
    "  end\n" \
    "  redis.call('PUBLISH', R, 'ai_done - ' .. agent .. '\\n' .. '{\"type\":\"ai_done\",\"request_id\":\"' ..\n" \
    "    rid .. '\",\"id\":' .. (id ~= '' and ('\"' .. id .. '\"') or 'null') .. ',\"status\":\"' .. status .. '\"}')\n" \
    "  if tonumber(ttl) > 0 then\n" \
    "    redis.call('EXPIRE', log, ttl)\n" \
    "    redis.call('EXPIRE', R .. ':gone', ttl)\n" \
    "  end\n" \
    "  return id\n" \
    "end\n"

/* Stream ids compared in Lua (ms fits a double exactly). */
#define LUA_ID_CMP_FN \
    "local function idcmp(a, b)\n" \
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n" \
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n" \
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n" \
    "  if am ~= bm then return am < bm and -1 or 1 end\n" \
    "  if as ~= bs then return as < bs and -1 or 1 end\n" \
    "  return 0\n" \
    "end\n"

/* Taking back presence is needed when a worker dies, when a whole instance
 * does, and when an instance finds its earlier run's, so the scripts start
 * with this function: it takes back the fields that start with OWNER ("":
 * all), or with OTHERS those that do not.  The leave event matches what
 * the workers publish (names need no JSON escaping). */
#define LUA_RELEASE_FN \
    LUA_ANSWER_FINISH_FN \
    "local function release(prefix, key, owner, others)\n" \
    "  local fields = redis.call('HGETALL', key)\n" \
    "  for i = 1, #fields, 2 do\n" \
    "    local f, c = fields[i], tonumber(fields[i + 1])\n" \
    "    if (owner == '' or string.sub(f, 1, #owner) == owner) ~= others then\n" \
    "      local _, _, room, user = string.find(f, '^[^|]*|([^|]*)|([^|]*)$')\n" \
    "      local _, _, aroom, rid = string.find(f, '^[^|]*|([^|]*)|[^|]*|([^|]*)$')\n" \
    "      if aroom then finish(prefix, aroom, rid, 'incomplete') end\n" \
    "      if room and c then\n" \
    "        local mk = prefix .. 'room:' .. room .. ':members'\n" \
    "        local n = redis.call('HINCRBY', mk, user, -c)\n" \
    "        if n <= 0 then\n" \
    "          redis.call('HDEL', mk, user)\n" \
    "          redis.call('PUBLISH', prefix .. 'room:' .. room, 'presence - ' .. user .. '\\n' ..\n" \
    "            '{\"type\":\"presence\",\"event\":\"leave\",\"user\":\"' .. user .. '\",\"room\":\"' .. room .. '\"}')\n" \
    "        end\n" \
    "      end\n" \
    "      redis.call('HDEL', key, f)\n" \
    "    end\n" \
    "  end\n" \
    "end\n"

/* A token bucket in a hash, shared by every worker and host: takes one
 * token, or returns the milliseconds until one is there.  RATE per second. */
#define LUA_TAKE_FN \
    "local function take(key, rate, burst)\n" \
    "  local t = redis.call('TIME')\n" \
    "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
    "  local b = redis.call('HMGET', key, 'tokens', 'ts')\n" \
    "  local tokens = tonumber(b[1]) or burst\n" \
    "  local ts = tonumber(b[2]) or now\n" \
    "  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)\n" \
    "  if tokens < 1 then return math.ceil((1 - tokens) * 1000 / rate) end\n" \
    "  redis.call('HSET', key, 'tokens', tostring(tokens - 1), 'ts', now)\n" \
    "  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)\n" \
    "  return 0\n" \
    "end\n"

/* The control event that makes workers check the sessions of a user's
 * open connections (and close those revoked); names need no escaping. */
#define LUA_REVOKED_FN \
    "local function revoked(channel, user)\n" \
    "  redis.call('PUBLISH', channel, 'revoked - ' .. user .. '\\n' ..\n" \
    "    '{\"type\":\"revoked\",\"user\":\"' .. user .. '\"}')\n" \
    "end\n"

/* Revokes session TOKEN under prefix P: returns 1, or 0 when there was none. */
#define LUA_REVOKE_SESSION_FN \
    LUA_REVOKED_FN \
    "local function revoke_session(P, token)\n" \
    "  local user = redis.call('HGET', P .. 'session:' .. token, 'user')\n" \
    "  if type(user) ~= 'string' or not string.match(user, '^[A-Za-z0-9_.-]+$') then return 0 end\n" \
    "  redis.call('DEL', P .. 'session:' .. token)\n" \
    "  redis.call('ZREM', P .. 'user:' .. user .. ':sessions', token)\n" \
    "  revoked(P .. 'user:' .. user, user)\n" \
    "  return 1\n" \
    "end\n"

static const char *const script_source[SCRIPT_COUNT] = {
    [SCRIPT_PUBLISH_MESSAGE] =
        LUA_TAKE_FN
        "local P, from, session, cmid = ARGV[1], ARGV[4], ARGV[5], ARGV[9]\n"
        "if session ~= '' then\n"
        "  local user = redis.call('HGET', P .. 'session:' .. session, 'user')\n"
        "  if type(user) ~= 'string' or #user > 64 or not string.match(user, '^[A-Za-z0-9_.-]+$')\n"
        "     or user == '.' or user == '..' or (from ~= '' and user ~= from) then return {'', 'unknown'} end\n"
        "  if string.find(ARGV[14], ' ' .. string.lower(user) .. ' ', 1, true) then return {user, 'reserved'} end\n"
        "  from = user\n"
        "end\n"
        "local dedup = P .. 'dedup:' .. from .. ':' .. cmid\n"
        "if cmid ~= '' then\n"
        "  local seen = redis.call('GET', dedup)\n"
        "  if seen then return {seen, 0} end\n"
        "end\n"
        "local rate = tonumber(ARGV[11])\n"
        "if rate > 0 then\n"
        "  local wait = take(P .. 'rate:' .. from, rate, tonumber(ARGV[12]))\n"
        "  if wait > 0 then return {'', -wait} end\n"
        "end\n"
        /* The chunks of answers in progress do not count against the history. */
        "local maxlen = tonumber(ARGV[2]) + tonumber(redis.call('GET', string.sub(KEYS[1], 1, -5) .. ':chunks') or 0)\n"
        "local id\n"
        "if cmid ~= '' then\n"
        "  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'type', 'message',\n"
        "                  'from', from, 'content', ARGV[6], 'client_msg_id', cmid)\n"
        "else\n"
        "  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'type', 'message',\n"
        "                  'from', from, 'content', ARGV[6])\n"
        "end\n"
        "local ms = string.match(id, '^(%d+)')\n"
        "redis.call('PUBLISH', ARGV[3], 'message ' .. id .. ' ' .. from .. '\\n' ..\n"
        "  '{\"type\":\"message\",\"id\":\"' .. id .. '\",' .. ARGV[7] .. ',\"from\":\"' .. from .. '\"' ..\n"
        "  ARGV[8] .. ',\"ts\":' .. ms .. '}')\n"
        "if cmid ~= '' then redis.call('SET', dedup, id, 'EX', ARGV[10]) end\n"
        "if tonumber(ARGV[13]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[13]) end\n"
        "return {id, 1}\n",
    [SCRIPT_PRESENCE] =
        "local has = redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1\n"
        "if has == (ARGV[3] == 'in') then return 0 end\n"
        "local n\n"
        "if has then\n"
        "  redis.call('HDEL', KEYS[2], ARGV[2])\n"
        "  n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)\n"
        "  if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end\n"
        "else\n"
        "  redis.call('HSET', KEYS[2], ARGV[2], 1)\n"
        "  n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
        "end\n"
        "if (has and n <= 0) or (not has and n == 1) then redis.call('PUBLISH', ARGV[4], ARGV[5]) end\n"
        "return n\n",
    [SCRIPT_RELEASE] =
        LUA_RELEASE_FN
        "release(ARGV[1], KEYS[1], ARGV[2], ARGV[3] == 'others')\n"
        "return 1\n",
    [SCRIPT_REAP] =
        LUA_RELEASE_FN
        "local reaped = 0\n"
        "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
        "  if id ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. 'instance:' .. id) == 0 then\n"
        "    local key = ARGV[1] .. 'instance:' .. id .. ':presence'\n"
        "    release(ARGV[1], key, '', false)\n"
        "    redis.call('DEL', key)\n"
        "    redis.call('SREM', KEYS[1], id)\n"
        "    reaped = reaped + 1\n"
        "  end\n"
        "end\n"
        "return reaped\n",
    [SCRIPT_RETIRE] =
        LUA_RELEASE_FN
        "release(ARGV[1], KEYS[1], '', false)\n"
        "redis.call('DEL', KEYS[1], KEYS[3])\n"
        "redis.call('SREM', KEYS[2], ARGV[2])\n"
        "return 1\n",
    [SCRIPT_RATE] =
        LUA_TAKE_FN
        "return take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))\n",
    [SCRIPT_SESSION_CREATE] =
        LUA_TAKE_FN
        LUA_REVOKED_FN
        "local token, user, mode, channel = ARGV[1], ARGV[2], ARGV[4], ARGV[7]\n"
        "local rate, most = tonumber(ARGV[6]), tonumber(ARGV[8])\n"
        "if rate > 0 then\n"
        "  local wait = take(KEYS[3], rate / 60, rate)\n"
        "  if wait > 0 then return {0, wait} end\n"
        "end\n"
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "local sessions = string.sub(KEYS[1], 1, #KEYS[1] - #token)\n"
        "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
        /* Open sign-in: the name must be free; anyone: at most MOST sessions,
         * and an index entry whose session was deleted is gone. */
        "if mode == 'open' or redis.call('ZCARD', KEYS[2]) >= most then\n"
        "  for _, t in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
        "    if redis.call('EXISTS', sessions .. t) == 0 then redis.call('ZREM', KEYS[2], t)\n"
        "    elseif mode == 'open' then return {-1, 0} end\n"
        "  end\n"
        "  if mode == 'open' and redis.call('PUBSUB', 'NUMSUB', channel)[2] > 0 then return {-1, 0} end\n"
        "  if redis.call('ZCARD', KEYS[2]) >= most then\n"
        "    local oldest = redis.call('ZPOPMIN', KEYS[2])\n"
        "    redis.call('DEL', sessions .. oldest[1])\n"
        "    revoked(channel, user)\n"
        "  end\n"
        "end\n"
        "local expires = now + tonumber(ARGV[3]) * 1000\n"
        "redis.call('HSET', KEYS[1], 'user', user, 'created_at', now, 'expires_at', expires,\n"
        "           'mode', mode, 'addr', ARGV[5])\n"
        "redis.call('PEXPIREAT', KEYS[1], expires)\n"
        "redis.call('ZADD', KEYS[2], expires, token)\n"
        "local until_ = redis.call('PEXPIRETIME', KEYS[2])\n"
        "if until_ < expires then redis.call('PEXPIREAT', KEYS[2], expires) end\n"
        "return {1, expires}\n",
    [SCRIPT_SESSION_REVOKE] =
        LUA_REVOKE_SESSION_FN
        "return revoke_session(ARGV[1], ARGV[2])\n",
    [SCRIPT_TICKET_CREATE] =
        "redis.call('HSET', KEYS[1], 'user', ARGV[1], 'session', ARGV[2], 'expires', ARGV[3])\n"
        "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
        "return 1\n",
    [SCRIPT_TICKET_REDEEM] =
        "local t = redis.call('HMGET', KEYS[1], 'user', 'session', 'expires')\n"
        "if not t[1] then return nil end\n"
        "redis.call('DEL', KEYS[1])\n"
        "if t[2] ~= '' and redis.call('EXISTS', ARGV[1] .. 'session:' .. t[2]) == 0 then return nil end\n"
        "return t\n",
    [SCRIPT_RESUME] =
        LUA_ID_CMP_FN
        "local log, last = KEYS[1], ARGV[1]\n"
        "local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)\n"
        "local oid = oldest[1] and oldest[1][1] or ''\n"
        "local newest = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)\n"
        "local nid = newest[1] and newest[1][1] or ''\n"
        /* The chunks so far of the answers in progress: what a client
         * starting afresh needs to see them from their first chunk. */
        "local function inprogress()\n"
        "  local from\n"
        "  for _, rec in ipairs(redis.call('HVALS', KEYS[2])) do\n"
        "    local s = string.match(rec, '^(%d+-%d+)|')\n"
        "    if s and (not from or idcmp(s, from) < 0) then from = s end\n"
        "  end\n"
        "  local out = {}\n"
        "  if from then\n"
        "    for _, e in ipairs(redis.call('XRANGE', log, from, '+')) do\n"
        "      if e[2][2] == 'ai_chunk' then out[#out + 1] = e end\n"
        "    end\n"
        "  end\n"
        "  return out\n"
        "end\n"
        "if last == '' then return {1, oid, inprogress(), nid} end\n"
        "if #redis.call('XRANGE', log, last, last, 'COUNT', 1) == 0 then\n"
        "  local known = false\n"
        "  for _, m in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[3], string.match(last, '^(%d+)'), '-inf',\n"
        "                                'LIMIT', 0, 20)) do\n"
        "    local a, b = string.match(m, '^(%S+) (%S+)$')\n"
        "    if a and idcmp(a, last) <= 0 and idcmp(last, b) <= 0 then known = true; break end\n"
        "  end\n"
        "  if not known then return {0, oid, inprogress(), nid} end\n"
        "end\n"
        "return {1, oid, redis.call('XRANGE', log, '(' .. last, '+'), nid}\n",
    [SCRIPT_HISTORY] =
        "local log, lo, hi, limit, rev, all = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5] == '1'\n"
        "local out = {}\n"
        "while #out < limit do\n"
        "  local want = limit - #out\n"
        "  local batch\n"
        "  if rev then batch = redis.call('XREVRANGE', log, hi, lo, 'COUNT', want)\n"
        "  else batch = redis.call('XRANGE', log, lo, hi, 'COUNT', want) end\n"
        "  for _, e in ipairs(batch) do\n"
        "    if all or e[2][2] ~= 'ai_chunk' then out[#out + 1] = e end\n"
        "  end\n"
        "  if #batch < want then break end\n"
        "  if rev then hi = '(' .. batch[#batch][1] else lo = '(' .. batch[#batch][1] end\n"
        "end\n"
        "return out\n",
    [SCRIPT_ANSWER_START] =
        "local P, room, rid, asker, inst, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[8], ARGV[9]\n"
        "local session, most = ARGV[10], tonumber(ARGV[11])\n"
        "local R, mine = P .. 'room:' .. room, P .. 'user:' .. asker .. ':answers'\n"
        "if session ~= '' and redis.call('HGET', P .. 'session:' .. session, 'user') ~= asker then\n"
        "  return {'', 'unknown'}\n"
        "end\n"
        "local t = redis.call('TIME')\n"
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "redis.call('ZREMRANGEBYSCORE', mine, '-inf', now - tonumber(ARGV[12]))\n"
        "if most > 0 and redis.call('ZCARD', mine) >= most then return {'', 'busy'} end\n"
        "redis.call('ZADD', mine, now, rid)\n"
        "redis.call('PEXPIRE', mine, ARGV[12])\n"
        "local start = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) .. '-0'\n"
        "redis.call('HSET', R .. ':answers', rid, table.concat({ start, asker, ARGV[5], ARGV[6], ARGV[7], inst, owner }, '|'))\n"
        "if tonumber(ARGV[7]) > 0 then redis.call('EXPIRE', R .. ':answers', ARGV[7]) end\n"
        "redis.call('HSET', P .. 'instance:' .. inst .. ':presence', owner .. '|' .. room .. '|' .. asker .. '|' .. rid, 1)\n"
        "return {start, 'ok'}\n",
    [SCRIPT_ANSWER_CHUNK] =
        "local P, room, rid = ARGV[1], ARGV[2], ARGV[3]\n"
        "local R = P .. 'room:' .. room\n"
        "local rec = redis.call('HGET', R .. ':answers', rid)\n"
        "if not rec then return false end\n"
        "local asker = string.match(rec, '^[^|]*|([^|]*)|')\n"
        "local id = redis.call('XADD', R .. ':log', '*', 'type', 'ai_chunk', 'request_id', rid, 'asker', asker,\n"
        "                      'content', ARGV[4])\n"
        "redis.call('INCR', R .. ':chunks')\n"
        "redis.call('PUBLISH', R, 'ai_chunk ' .. id .. ' ' .. ARGV[5] .. '\\n' ..\n"
        "  '{\"type\":\"ai_chunk\",\"id\":\"' .. id .. '\",\"request_id\":\"' .. rid .. '\",\"asker\":\"' .. asker ..\n"
        "  '\",\"content\":\"' .. ARGV[6] .. '\"}')\n"
        "return id\n",
    [SCRIPT_ANSWER_END] =
        LUA_ANSWER_FINISH_FN
        "return finish(ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n",
    [SCRIPT_ANSWER_CANCEL] =
        LUA_ANSWER_FINISH_FN
        "local rec = redis.call('HGET', ARGV[1] .. 'room:' .. ARGV[2] .. ':answers', ARGV[3])\n"
        "if not rec then return 0 end\n"
        "if string.match(rec, '^[^|]*|([^|]*)|') ~= ARGV[4] then return -1 end\n"
        "finish(ARGV[1], ARGV[2], ARGV[3], 'cancelled')\n"
        "return 1\n",
};

/* Functions for operators, FCALLed with redis-cli (docs/redis.md): revoke
 * every session of a user, or one session, and tell the instances so that
 * open connections of those sessions close.  %1$s is the library's name,
 * %2$s the key prefix as a Lua string. */
static const char script_library[] =
    "#!lua name=%1$s\n"
    "local P = %2$s\n"
    LUA_REVOKE_SESSION_FN
    "local function name(v)\n"
    "  return type(v) == 'string' and #v <= 64 and string.match(v, '^[A-Za-z0-9_.-]+$') ~= nil\n"
    "end\n"
    "redis.register_function('%1$s_revoke_user', function(keys, args)\n"
    "  local user = args[1]\n"
    "  if not name(user) then return redis.error_reply('usage: FCALL %1$s_revoke_user 0 USER') end\n"
    "  local index = P .. 'user:' .. user .. ':sessions'\n"
    "  local n = 0\n"
    "  for _, t in ipairs(redis.call('ZRANGE', index, 0, -1)) do\n"
    "    n = n + redis.call('DEL', P .. 'session:' .. t)\n"
    "  end\n"
    "  redis.call('DEL', index)\n"
    "  revoked(P .. 'user:' .. user, user)\n"
    "  return n\n"
    "end)\n"
    "redis.register_function('%1$s_revoke_session', function(keys, args)\n"
    "  if type(args[1]) ~= 'string' then return redis.error_reply('usage: FCALL %1$s_revoke_session 0 TOKEN') end\n"
    "  return revoke_session(P, args[1])\n"
    "end)\n";

static char script_sha[SCRIPT_COUNT][SHA_DIGEST_LENGTH * 2 + 1];

void scripts_library_name(const char *prefix, char *out, size_t outlen)
{
    size_t n = 0;

    for (const char *p = prefix; *p != '\0' && n + 1 < outlen; p++) {
        out[n++] = isalnum((unsigned char)*p) ? *p : '_';
    }
    while (n > 0 && out[n - 1] == '_') {
        n--;
    }
    out[n] = '\0';
    if (n == 0 || isdigit((unsigned char)out[0])) {
        snprintf(out, outlen, "parley");
    }
}

/* Redis versions before 7 or ACLs may refuse functions: sessions still
 * work, only the operators' shortcuts are missing. */
static void scripts_on_library(redisReply *r, void *arg)
{
    PL_UNUSED(arg);
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        log_warn("event=function_load_failed reply=\"%.200s\"", r->str);
    }
}

void scripts_load_library(struct redis_conn *rc, const char *prefix)
{
    char lib[64], quoted[64 * 4 + 3], *code;
    size_t q = 0;
    int n;

    scripts_library_name(prefix, lib, sizeof(lib));
    /* Every byte as a decimal escape: any prefix is a valid Lua string. */
    quoted[q++] = '"';
    for (const char *p = prefix; *p != '\0' && q + 5 < sizeof(quoted); p++) {
        q += (size_t)snprintf(quoted + q, sizeof(quoted) - q, "\\%u", (unsigned char)*p);
    }
    quoted[q++] = '"';
    quoted[q] = '\0';
    n = snprintf(NULL, 0, script_library, lib, quoted);
    if (n < 0 || (code = malloc((size_t)n + 1)) == NULL) {
        return;
    }
    snprintf(code, (size_t)n + 1, script_library, lib, quoted);
    {
        const char *argv[] = { "FUNCTION", "LOAD", "REPLACE", code };
        redis_conn_command(rc, scripts_on_library, NULL, 4, argv, NULL);
    }
    free(code);
}

void scripts_init(void)
{
    unsigned char digest[SHA_DIGEST_LENGTH];

    for (int i = 0; i < SCRIPT_COUNT; i++) {
        SHA1((const unsigned char *)script_source[i], strlen(script_source[i]), digest);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            snprintf(&script_sha[i][j * 2], 3, "%02x", digest[j]);
        }
    }
}

void scripts_load(struct redis_conn *rc)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        const char *argv[] = { "SCRIPT", "LOAD", script_source[i] };
        redis_conn_command(rc, NULL, NULL, 3, argv, NULL);
    }
}

/* A call in flight: kept so that a NOSCRIPT reply can be retried as EVAL. */
struct script_call {
    struct redis_conn *rc;
    enum script_id id;
    redis_reply_cb cb;
    void *arg;
    int argc;
    char *argv[SCRIPT_MAX_ARGS + 3];
    size_t lens[SCRIPT_MAX_ARGS + 3];
};

static void script_call_free(struct script_call *call)
{
    for (int i = 2; i < call->argc; i++) {
        free(call->argv[i]);
    }
    free(call);
}

static void script_on_reply(redisReply *reply, void *arg)
{
    struct script_call *call = arg;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0
        && strcmp(call->argv[0], "EVALSHA") == 0) {
        call->argv[0] = "EVAL";
        call->lens[0] = 4;
        call->argv[1] = (char *)script_source[call->id];
        call->lens[1] = strlen(script_source[call->id]);
        if (redis_conn_command(call->rc, script_on_reply, call, call->argc,
                               (const char **)call->argv, call->lens) == PL_OK) {
            return;
        }
        reply = NULL;
    }
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_warn("event=script_failed script=%d reply=\"%.200s\"", call->id, reply->str);
    }
    if (call->cb != NULL) {
        call->cb(reply, call->arg);
    }
    script_call_free(call);
}

int script_run(struct redis_conn *rc, enum script_id id, redis_reply_cb cb, void *arg,
               int nkeys, int argc, const char **argv, const size_t *lens)
{
    struct script_call *call;
    char numkeys[8];

    if (argc > SCRIPT_MAX_ARGS || !redis_conn_is_up(rc)) {
        return PL_ERR;
    }
    call = calloc(1, sizeof(*call));
    if (call == NULL) {
        return PL_ERR;
    }
    *call = (struct script_call){ .rc = rc, .id = id, .cb = cb, .arg = arg, .argc = argc + 3 };
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
    call->argv[0] = "EVALSHA";
    call->argv[1] = script_sha[id];
    call->lens[0] = 7;
    call->lens[1] = strlen(script_sha[id]);
    call->argv[2] = strdup(numkeys);
    call->lens[2] = strlen(numkeys);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        call->argv[i + 3] = malloc(n + 1);
        if (call->argv[i + 3] != NULL) {
            memcpy(call->argv[i + 3], argv[i], n);
            call->argv[i + 3][n] = '\0';
        }
        call->lens[i + 3] = n;
    }
    if (redis_conn_command(rc, script_on_reply, call, call->argc, (const char **)call->argv,
                           call->lens) != PL_OK) {
        script_call_free(call);
        return PL_ERR;
    }
    return PL_OK;
}
